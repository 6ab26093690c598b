"""The program: the engine's command line (pxetui/) composed with the Textual UI (screens/).

The one module that imports both. The engine never imports the UI (docs/ARCHITECTURE.md, "Who
imports whom"); it is handed `run_ui` here and calls it for `pxetui` and `pxetui lab`. This is
the `pxetui` console script and `python -m pxetui_app`."""

from __future__ import annotations

from pxetui import cli, exitcodes
from screens.run import run_ui


def main(argv: list[str] | None = None) -> int:
    """The console script: every pxetui command, with the UI; the exit code (pxetui/exitcodes.py)."""
    return exitcodes.run_process(lambda: cli.main(argv, run_ui=run_ui))
