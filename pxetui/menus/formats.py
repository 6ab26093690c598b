"""Which renderer draws which menu, and for which firmware: the one answer that
`pxetui menu render --format` and the UI's menu preview both use."""

from __future__ import annotations

from dataclasses import dataclass

from pxetui.config import Config
from pxetui.menus import render_grub, render_ipxe, render_pxelinux
from pxetui.menus.model import Menu, Mint


@dataclass(frozen=True, slots=True)
class MenuFormat:
    name: str  # `pxetui menu render --format NAME`
    loader: str  # the boot loader that reads it (the preview's tab)
    firmware: str  # the menu family whose entries it lists (pxetui.archtypes.MENU_FAMILIES)


FORMATS: dict[str, MenuFormat] = {f.name: f for f in (
    MenuFormat("pxelinux", "PXELINUX", "bios"),  # PXELINUX runs on BIOS only
    MenuFormat("grub", "GRUB", "uefi64"),
    MenuFormat("ipxe-bios", "iPXE", "bios"),
    MenuFormat("ipxe-efi", "iPXE", "uefi64"),
)}
# One menu per boot loader for the preview: the x64 UEFI one where a loader runs on both.
PREVIEW = ("pxelinux", "grub", "ipxe-efi")


def render(menu: Menu, cfg: Config, fmt: str, default: str | None = None,
           mint: Mint | None = None) -> str:
    """The menu as the format's loader reads it; ValueError names an unknown format."""
    f = FORMATS.get(fmt)
    if f is None:
        raise ValueError(f"unknown menu format {fmt!r}; use one of {', '.join(FORMATS)}")
    if f.loader == "PXELINUX":
        return render_pxelinux.render(menu, cfg, default, mint)
    if f.loader == "GRUB":
        return render_grub.render(menu, cfg, f.firmware, default, mint)
    return render_ipxe.render(menu, cfg, f.firmware, default, mint)
