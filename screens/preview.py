"""Live preview of the menu as each boot loader will read it, from the engine's renderers."""

from __future__ import annotations

from pxetui.config import Config
from pxetui.menus import formats
from pxetui.menus.model import Menu, MenuError
from pxetui.state import EngineInfo

# Tab title (the boot loader) -> the menu format drawn in it (pxetui.menus.formats).
PREVIEWS = {formats.FORMATS[f].loader: f for f in formats.PREVIEW}


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
        return formats.render(menu, preview_config(engine), PREVIEWS[name])
    except (MenuError, ValueError, KeyError, TypeError) as exc:
        return f"({name} cannot render this menu: {exc})"
