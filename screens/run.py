"""Entry point the CLI calls: `run_ui(source_factory, console_path)`."""

from __future__ import annotations

from screens.source import LabControl, SourceFactory


def run_ui(source_factory: SourceFactory, console_path: str | None, *,
           state_dir: str | None = None, config_path: str | None = None,
           lab: LabControl | None = None) -> int:
    """Run the UI attached to the engine `source_factory()` connects to (and, under
    `pxetui lab`, to the lab's VM); the exit status."""
    from screens.app import PxetuiApp

    app = PxetuiApp(source_factory=source_factory, console_path=console_path,
                    state_dir=state_dir, config_path=config_path, lab=lab)
    app.run()
    return app.return_code or 0
