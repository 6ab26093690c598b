"""pxetui.menus.formats: which renderer and firmware each menu format means."""

from __future__ import annotations

from pathlib import Path

import pytest
from services import base_config

from pxetui.menus import formats
from pxetui.menus.model import Entry, Menu


def test_each_format_lists_its_firmwares_entries(tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    menu = Menu()
    menu.add(Entry(id="bios-only", label="BIOS only", kernel="bios/linux", archs=["bios"]))
    menu.add(Entry(id="efi-only", label="EFI only", kernel="efi/linux", archs=["uefi64"]))
    heads = {"pxelinux": "DEFAULT", "grub": "set timeout=", "ipxe-bios": "#!ipxe", "ipxe-efi": "#!ipxe"}
    assert set(heads) == set(formats.FORMATS)
    for name, f in formats.FORMATS.items():
        text = formats.render(menu, cfg, name)
        assert heads[name] in text, name
        want, other = ("bios-only", "efi-only") if f.firmware == "bios" else ("efi-only", "bios-only")
        assert want in text and other not in text, name


def test_an_unknown_format_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown menu format 'syslinux'; use one of pxelinux, grub"):
        formats.render(Menu(), base_config(tmp_path), "syslinux")
