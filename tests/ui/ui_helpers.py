"""Building apps for the UI tests: an in-memory feed, fake interfaces, no pacing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.screen import Screen
from ui_feed import LAB_MAC, T0, lab_feed

from pxetui.events import LabVm
from pxetui.netinfo import InterfaceInfo
from screens.app import PxetuiApp
from screens.source import MemorySource


def fake_ifaces() -> dict[str, InterfaceInfo]:
    return {
        "eth1": InterfaceInfo("eth1", True, "10.99.0.1", "255.255.255.0", "52:54:00:12:34:56",
                              1000, 1500),
        "wlan0": InterfaceInfo("wlan0", False, None, None, None, 0, 1500),
    }


def make_app(tmp_path: Path | None = None, events: list[dict[str, Any]] | None = None,
             **kwargs: Any) -> tuple[PxetuiApp, MemorySource]:
    source = kwargs.pop("source", None) or MemorySource(lab_feed() if events is None else events)
    if tmp_path is not None:
        kwargs.setdefault("config_path", str(tmp_path / "pxetui.toml"))
        kwargs.setdefault("state_dir", str(tmp_path / "state"))
    app = PxetuiApp(source, interfaces_fn=fake_ifaces, pacing=False, **kwargs)
    app.animation_level = "none"  # tab underlines and scrolls land at once: stable snapshots
    return app, source


async def settle(app: PxetuiApp, pilot: Any) -> None:
    """Let the feed worker run, then redraw as the 4 Hz tick would."""
    await pilot.pause()
    app.flush()
    await pilot.pause()


async def goto(app: PxetuiApp, pilot: Any, key: str) -> Screen:
    """Press a screen's key (F1..F9), let the feed land and draw it: the screen shown."""
    await pilot.press(key)
    await settle(app, pilot)
    return app.screen


def screen_text(app: PxetuiApp) -> str:
    return "\n".join(s.text for s in app.screen._compositor.render_strips())


class FakeLab:
    """The lab VM's keeper as the UI sees it (pxetui.lab.keeper.Keeper): a state to poll, and a
    boot that starts the VM again (counted). Fixed time stamps, for snapshots."""

    def __init__(self, state: str = "off", booted: bool = True,
                 detail: str = "powered off after its system booted") -> None:
        self.vm = LabVm(ts=T0 + 60, service="lab", mac=LAB_MAC, state=state, boots=1,
                        booted=booted, exit_code=0 if state == "off" else None,
                        detail=detail if state == "off" else "")
        self.boots_asked = 0

    def status(self) -> LabVm:
        return self.vm

    def boot(self) -> LabVm:
        self.boots_asked += 1
        self.vm = LabVm(ts=T0 + 61, service="lab", mac=LAB_MAC, state="running",
                        boots=self.vm.boots + 1)
        return self.vm
