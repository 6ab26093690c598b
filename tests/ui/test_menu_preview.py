"""The menu editor's preview draws what `pxetui menu render` prints: both ask
pxetui.menus.formats which renderer and firmware a menu format means."""

from __future__ import annotations

from pathlib import Path

import pytest
from services import base_config

from pxetui import store
from pxetui.cli import main
from pxetui.menus import formats
from pxetui.menus.model import Entry, Menu, update_menu
from pxetui.state import EngineInfo
from screens.preview import PREVIEWS, preview

SERVER = "10.9.9.9"


@pytest.fixture(autouse=True)
def no_site_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("pxetui.cliconfig.DEFAULT_CONFIG", tmp_path / "absent.toml")


def add_entries(m: Menu) -> None:
    m.add(Entry(id="bios-only", label="BIOS only", kernel="bios/linux", archs=["bios"]))
    m.add(Entry(id="efi-only", label="EFI only", kernel="efi/linux", archs=["uefi64"]))


def test_each_preview_tab_is_the_cli_render_of_its_format(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = base_config(tmp_path)
    cfg.state_path.mkdir(parents=True)
    conn = store.connect(cfg.db_path)
    try:
        menu = update_menu(conn, add_entries)
    finally:
        conn.close()
    engine = EngineInfo(address=SERVER, netmask="255.255.255.0", http_port=80)
    assert sorted(PREVIEWS.values()) == sorted(formats.PREVIEW)
    for tab, fmt in PREVIEWS.items():
        shown = preview(tab, menu, engine)
        assert main(["menu", "render", "--format", fmt, "--server", SERVER,
                     "--state-dir", str(cfg.state_path)]) == 0
        assert capsys.readouterr().out == shown + "\n", tab
        # The format's firmware decides the entries: PXELINUX draws the BIOS menu, the others UEFI.
        want, other = ("bios-only", "efi-only") if fmt == "pxelinux" else ("efi-only", "bios-only")
        assert want in shown and other not in shown, tab
