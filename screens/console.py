"""Console: the lab VM's serial output, tailed from a file (e.g. <state_dir>/lab/console.log)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Log, Static

from screens.base import PxeScreen
from screens.widgets import LAB_KEY

POLL_SECONDS = 0.25
READ_LIMIT = 256 * 1024  # per poll: a firmware that floods the port cannot stall the UI
TAIL_START = 64 * 1024  # on open, show only the end of a long log
# Firmware and GRUB paint the serial screen with ANSI/VT100 sequences; a log wants plain text.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78cDEHM]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> list[str]:
    text = ANSI.sub("", text).replace("\r\n", "\n")
    lines = []
    for raw in text.split("\n"):
        # A bare CR redraws the line: keep what the terminal would finally show.
        line = raw.rsplit("\r", 1)[-1] if "\r" in raw else raw
        lines.append(CONTROL.sub("", line))
    return lines


class ConsoleTail:
    """Reads what was appended to a file since the last call; handles truncation and absence."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos: int | None = None
        self.partial = ""

    def read(self) -> list[str] | None:
        """New complete lines; None when the file does not exist."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return None
        if self.pos is None:
            self.pos = max(0, size - TAIL_START)
        if size < self.pos:  # truncated or replaced: start over
            self.pos, self.partial = 0, ""
        if size == self.pos:
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.pos)
            data = fh.read(READ_LIMIT)
        self.pos += len(data)
        lines = clean(self.partial + data.decode("utf-8", errors="replace"))
        self.partial = lines.pop()
        return lines


class ConsoleScreen(PxeScreen):
    TITLE_TEXT = "Console"
    NAV_MODE = "console"

    def body(self) -> Iterable[Widget]:
        yield Static(id="console-info")
        yield Log(id="console", max_lines=5000, auto_scroll=True)

    def setup(self) -> None:
        path = self.papp.console_path
        self.tail = ConsoleTail(Path(path)) if path else None
        self._info = ""
        self._boot: int | None = None  # the lab VM boot whose output is shown
        self.set_interval(POLL_SECONDS, self.poll)
        self.poll()

    def poll(self) -> None:
        if self.tail is None:
            self.info("No console file: start the UI with --console FILE (the lab sets it).")
            return
        vm = self.state.lab_vm
        if vm is not None and vm.boots != self._boot:
            if self._boot is not None:  # booted again: the file starts over, and so does the view
                self.query_one("#console", Log).clear()
                self.tail.pos, self.tail.partial = 0, ""
            self._boot = vm.boots
        lines = self.tail.read()
        if lines is None:
            self.info(f"{self.vm_words()}waiting for the file to appear: {self.tail.path}")
            return
        self.info(f"{self.vm_words()}serial console: {self.tail.path}")
        if lines:
            self.query_one("#console", Log).write_lines(lines)

    def vm_words(self) -> str:
        """The lab VM's state, first on the line (pxetui lab); "" elsewhere."""
        vm = self.state.lab_vm
        if vm is None:
            return ""
        if vm.state == "off":
            return f"VM off ({LAB_KEY} boots it again) · "
        return f"VM running (boot {vm.boots}{', up' if vm.booted else ''}) · "

    def info(self, text: str) -> None:
        if text != self._info:  # polled 4 times a second: redraw only on change
            self._info = text
            self.query_one("#console-info", Static).update(
                Text(text, no_wrap=True, overflow="ellipsis"))
