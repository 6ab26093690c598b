"""The engine's one handle on a user interface: a callable the program's entry point passes in.

The engine never imports a UI (docs/ARCHITECTURE.md, "Who imports whom"): the composition root
(pxetui_app) hands `pxetui.cli.main` a `RunUi`, and `pxetui` and `pxetui lab` call it with a
way to connect to the engine's control socket. `python -m pxetui` has none: the engine's own
command line, which the UI and the lab start their engines with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from pxetui.control import ControlClient

if TYPE_CHECKING:
    from pxetui.lab.keeper import Keeper

Connect = Callable[[], Awaitable[ControlClient]]


class RunUi(Protocol):
    def __call__(self, source_factory: Connect, console_path: str | None, *,
                 state_dir: str | None = None, config_path: str | None = None,
                 lab: Keeper | None = None) -> int:
        """Run the UI attached to what `source_factory()` connects to until the user quits; the
        exit status. Under `pxetui lab`, `lab` is its VM's keeper: the UI shows whether the VM
        runs and boots it again."""
        ...


NO_UI = ("this is the engine's command line (python -m pxetui), which has no UI; run `pxetui` "
         "or `python -m pxetui_app`")
