"""The self-test from the UI: `pxetui doctor --self-test` for the engine this UI is attached to,
run in a worker thread (it takes seconds: every boot file over TFTP), its report in a modal.

It runs as a command with the engine's own options, where the engine runs (under `pxetui lab`
inside the lab's namespace): pxetui/doctor/engineargs.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from pxetui.doctor.engineargs import NoEngine, self_test_command
from pxetui.doctor.selftest import Report

TIMEOUT = 600.0  # seconds: six boot files and a kernel and initrd on a slow link


def run_self_test(sock: Path) -> list[str]:
    """The report's lines, or why there is none; never raises (the UI shows whatever it gets)."""
    try:
        cmd, cwd = self_test_command(sock)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)
    except NoEngine as exc:
        return [f"The self-test cannot run: {exc}"]
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"The self-test did not finish: {exc}"]
    try:
        return Report.from_dict(json.loads(r.stdout)).lines()
    except (ValueError, TypeError, AttributeError):
        err = (r.stderr or r.stdout).strip().splitlines()[-5:]
        return [f"The self-test failed (exit {r.returncode}):", *err]


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
        lines = run_self_test(self.sock)
        self.app.call_from_thread(self.show, lines)

    def show(self, lines: list[str]) -> None:
        self.query_one("#selftest-report", Static).update("\n".join(lines))

    def action_close(self) -> None:
        self.dismiss(None)
