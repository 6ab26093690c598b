"""The self-test from the UI: `pxetui doctor --self-test` for the engine this UI is attached to,
run in a worker thread (it takes seconds: every boot file over TFTP), its report in a modal.

It runs as a command with the engine's own options, where the engine runs (under `pxetui lab`
inside the lab's namespace): pxetui/doctor/engineargs.py."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from pxetui.doctor import engineargs


class SelfTestScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, sock: Path) -> None:
        super().__init__()
        self.sock = sock

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="selftest"):
            yield Label("Self-test: what each architecture gets from the engine (TFTP and HTTP)")
            yield Static("Running: fetching every boot file as a client would ...", id="selftest-report",
                         markup=False)
            yield Label("Esc to close", classes="dim")

    def on_mount(self) -> None:
        self.run_test()

    @work(thread=True, group="selftest", exclusive=True, exit_on_error=False)
    def run_test(self) -> None:
        lines = engineargs.run(self.sock).lines()
        self.app.call_from_thread(self.show, lines)

    def show(self, lines: list[str]) -> None:
        self.query_one("#selftest-report", Static).update("\n".join(lines))

    def action_close(self) -> None:
        self.dismiss(None)
