"""`python -m pxetui`: the engine's command line, without a UI (pxetui/uiport.py). The UI and
the lab start their engines with it; people run `pxetui` (pxetui_app)."""

from pxetui import cli, exitcodes

raise SystemExit(exitcodes.run_process(cli.main))
