"""A client's installer and kernel log lines (ClientLog events, docs/CLIENT-LOGS.md): the live
tail in the client's detail screen, its filter, and writing the lines to a file.

The lines come from the UI's fold (`EngineState.client_logs`: the supervisor's replay of the
last lines, then the live ones), each already decoded by the engine: nothing here parses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Log

from pxetui.events import ClientLog
from pxetui.state import CLIENT_LOG_LINES
from screens import fmt

# syslog severity (RFC 5424 section 6.2.1: 0 emergency ... 7 debug) as the Logs screen marks
# its levels; a plain netconsole line has none.
SEVERITY_MARK = {0: "E", 1: "E", 2: "E", 3: "E", 4: "W", 7: "D"}


def line_text(ev: ClientLog) -> str:
    mark = SEVERITY_MARK.get(ev.severity, " ") if ev.severity is not None else " "
    app = f"{ev.app}: " if ev.app else ""
    cut = " [cut]" if ev.truncated else ""
    return f"{fmt.clock(ev.ts)} {mark} {app}{ev.message}{cut}"


def matches(text: str, needle: str) -> bool:
    return not needle or needle.lower() in text.lower()


def default_path(mac: str, now: float | None = None) -> str:
    """A new file in the working directory, named after the client and the moment."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return f"pxetui-{mac.replace(':', '-')}-{stamp}.log"


def write_lines(path: str, lines: Iterable[str]) -> tuple[Path, int]:
    """Write to a new file (relative paths under the working directory): an existing file is
    never overwritten (FileExistsError), the caller says so."""
    target = Path(os.path.abspath(os.path.expanduser(path)))
    n = 0
    with open(target, "x", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
            n += 1
    return target, n


class ClientLogPane(Vertical):
    """Filter input over a bounded Log: at most `max_lines` lines are drawn."""

    def __init__(self, max_lines: int = CLIENT_LOG_LINES, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.max_lines = max_lines
        self.needle = ""
        self.last_seq = 0
        self.lines: list[tuple[int, ClientLog]] = []

    def compose(self) -> ComposeResult:
        # shown while typing a filter or while one is set: a row of the pane's few at 80x24
        yield Input(placeholder="filter these lines (Enter to leave)", id="clog-filter",
                    compact=True)
        yield Log(id="clog", max_lines=self.max_lines, auto_scroll=True)

    def on_mount(self) -> None:
        self.border_title = "Logs"
        self.border_subtitle = "/ filter  w write to a file  o follow in Logs"

    def start_filter(self) -> None:
        box = self.query_one("#clog-filter", Input)
        box.add_class("on")
        box.focus()

    def shown(self) -> list[str]:
        """The lines the filter lets through, oldest first."""
        texts = (line_text(ev) for _, ev in self.lines)
        return [t for t in texts if matches(t, self.needle)]

    def update_lines(self, lines: Iterable[tuple[int, ClientLog]], full: bool) -> None:
        """Take the client's tail as the fold holds it; draw only what is new unless `full`."""
        self.lines = list(lines)
        self.display = bool(self.lines)  # no pane for a client that never logged
        log = self.query_one("#clog", Log)
        if full:
            log.clear()
            log.write_lines(self.shown())
            # the newest line in view once the pane has its final size (it appears, or the
            # filter row comes and goes)
            self.call_after_refresh(log.scroll_end, animate=False)
        else:
            new = [line_text(ev) for seq, ev in self.lines if seq > self.last_seq]
            fresh = [t for t in new if matches(t, self.needle)]
            if fresh:
                log.write_lines(fresh)
        self.last_seq = self.lines[-1][0] if self.lines else self.last_seq
        self._title()

    def _title(self) -> None:
        n = len(self.lines)
        self.border_title = f"Logs ({n} line{'s' if n != 1 else ''}" + (
            f", filter {self.needle!r})" if self.needle else ")")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.needle = event.value.strip()
        self.update_lines(self.lines, full=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.input.set_class(bool(self.needle), "on")
        self.screen.set_focus(None)  # back to the screen's keys (b, l, f, w, o)


class SaveLogScreen(ModalScreen[str | None]):
    """Where to write a client's lines: a path, prefilled with a new file here."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, mac: str, lines: int, path: str) -> None:
        super().__init__()
        self.mac, self.count, self.path = mac, lines, path

    def compose(self) -> ComposeResult:
        with Vertical(id="save-log"):
            yield Label(f"Write {self.count} log line{'s' if self.count != 1 else ''} of {self.mac} to:")
            yield Input(value=self.path, id="save-path")
            yield Label("a relative path is under the directory pxetui started in; "
                        "Enter to write, Esc to cancel", classes="dim")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
