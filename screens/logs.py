"""Logs: every event in words, filterable by service, client and level."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import takewhile

from textual.app import SystemCommand
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Log, Select

from pxetui.state import LEVELS, LogRecord
from screens import fmt
from screens.base import PxeScreen

MARK = {"debug": "D", "info": " ", "warning": "W", "error": "E"}
KNOWN_SERVICES = ("dhcp", "tftp", "http", "capture", "supervisor", "tracker", "logs")


def log_line(r: LogRecord) -> str:
    return f"{fmt.clock(r.ts)} {MARK.get(r.level, ' ')} {r.service or '-':<8} {r.text}"


class LogsScreen(PxeScreen):
    WATCH = frozenset({"logs"})
    TITLE_TEXT = "Logs"
    NAV_MODE = "logs"

    class Follow(Message):
        """The app asked to follow a client (PxetuiApp.follow_client)."""

    def __init__(self) -> None:
        super().__init__()
        self.service: str | None = None
        self.client = ""
        self.min_level = "info"
        self.last_seq = 0
        self._services: set[str] = set(KNOWN_SERVICES)

    def body(self) -> Iterable[Widget]:
        with Horizontal(id="log-filters"):
            yield Select(self._service_options(), prompt="all services", id="log-service",
                         allow_blank=True, compact=True)
            yield Input(placeholder="client MAC or IP", id="log-client", compact=True)
            yield Select([(f"{lv} and up", lv) for lv in LEVELS], value="info", id="log-level",
                         allow_blank=False, compact=True)
        yield Log(id="log", max_lines=3000, auto_scroll=True)

    def setup(self) -> None:
        self.take_follow()

    def on_screen_resume(self) -> None:  # PxeScreen's redraw runs too (Textual calls both)
        self.take_follow()

    def on_logs_screen_follow(self, message: Follow) -> None:
        self.take_follow()

    def take_follow(self) -> None:
        """Filter on the client the app was asked to follow: every service, its MAC."""
        mac, self.papp.follow = self.papp.follow, None
        if mac:
            self.set_filter(None, mac, self.min_level)
            self.notify(f"Logs: following {mac} (clear the client filter to see everyone)",
                        markup=False)

    def _service_options(self) -> list[tuple[str, str]]:
        return [(s, s) for s in sorted(self._services)]

    def matches(self, r: LogRecord) -> bool:
        if LEVELS.index(r.level) < LEVELS.index(self.min_level):
            return False
        if self.service and r.service != self.service:
            return False
        if self.client:
            needle = self.client.lower()
            return needle in (r.mac or "").lower() or needle in (r.ip or "")
        return True

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        if full:
            self.rebuild()
        elif "logs" in changed:
            self.append_new()

    def _note_services(self, records: list[LogRecord]) -> None:
        new = {r.service for r in records if r.service} - self._services
        if new:
            self._services |= new
            sel = self.query_one("#log-service", Select)
            value = sel.value
            sel.set_options(self._service_options())
            if isinstance(value, str):
                sel.value = value

    def rebuild(self) -> None:
        log = self.query_one("#log", Log)
        log.clear()
        records = list(self.state.logs)
        self._note_services(records)
        log.write_lines([log_line(r) for r in records if self.matches(r)])
        self.last_seq = records[-1].seq if records else self.last_seq

    def append_new(self) -> None:
        # The ring is in seq order: walk back from the newest only as far as what is new
        # (not the whole ring of 3,000 on every redraw).
        records = list(takewhile(lambda r: r.seq > self.last_seq, reversed(self.state.logs)))
        records.reverse()
        if not records:
            return
        self._note_services(records)
        self.last_seq = records[-1].seq
        lines = [log_line(r) for r in records if self.matches(r)]
        if lines:
            self.query_one("#log", Log).write_lines(lines)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "log-service":
            self.service = event.value if isinstance(event.value, str) else None
        elif event.select.id == "log-level" and isinstance(event.value, str):
            self.min_level = event.value
        self.rebuild()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.client = event.value.strip()
        self.rebuild()

    def set_filter(self, service: str | None = None, client: str = "", level: str = "info") -> None:
        self.query_one("#log-service", Select).value = service if service else Select.NULL
        self.query_one("#log-client", Input).value = client
        self.query_one("#log-level", Select).value = level

    def palette(self) -> Iterable[SystemCommand]:
        for lv in LEVELS:
            yield SystemCommand(f"Logs: show {lv} and up", "level filter",
                                lambda lv=lv: self.set_filter(self.service, self.client, lv))
        for s in sorted(self._services):
            yield SystemCommand(f"Logs: only {s}", "service filter",
                                lambda s=s: self.set_filter(s, self.client, self.min_level))
        yield SystemCommand("Logs: clear filters", "every service, client, info and up",
                            lambda: self.set_filter())
