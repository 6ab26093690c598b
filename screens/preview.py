"""Live preview of the menu as each boot loader will read it, from the engine's renderers."""

from __future__ import annotations

import importlib
from typing import Any

from pxetui.config import Config
from pxetui.menus.model import Menu, MenuError
from pxetui.state import EngineInfo

PREVIEWS = ("PXELINUX", "GRUB", "iPXE")
MODULES = {"PXELINUX": "render_pxelinux", "GRUB": "render_grub", "iPXE": "render_ipxe"}
# Which firmware each preview is drawn for (a menu lists only the entries that firmware boots).
ARCH = {"GRUB": "uefi64", "iPXE": "uefi64"}


def preview_config(engine: EngineInfo) -> Config:
    """Enough of a config for the renderers to fill in {http} and {server}."""
    cfg = Config()
    cfg.server_ip = engine.address or "SERVER"
    cfg.netmask = engine.netmask or "255.255.255.0"
    if engine.http_port:
        cfg.http.port = int(engine.http_port)
    return cfg


def preview(name: str, menu: Menu, engine: EngineInfo) -> str:
    try:
        mod: Any = importlib.import_module(f"pxetui.menus.{MODULES[name]}")
    except ImportError as exc:
        return f"({name} renderer not available: {exc})"
    try:
        cfg = preview_config(engine)
        if name in ARCH:
            return str(mod.render(menu, cfg, ARCH[name]))
        return str(mod.render(menu, cfg))
    except (MenuError, ValueError, KeyError, TypeError) as exc:
        return f"({name} cannot render this menu: {exc})"
