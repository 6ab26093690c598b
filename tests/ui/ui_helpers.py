"""Building apps for the UI tests: an in-memory feed, fake interfaces, no pacing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.screen import Screen
from ui_feed import lab_feed

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
