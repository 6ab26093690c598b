"""The ISO library: import is all or nothing, the index is stored (no rescan after a restart),
SHA256SUMS verification, progress, events, removal."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pycdlib
import pytest
from netns import require_tool
from services import base_config

from pxetui.config import Config
from pxetui.events import Event, IsoImported, MenuChanged
from pxetui.files import Client, Resolver
from pxetui.iso import library, testiso
from pxetui.iso.library import import_iso, list_isos, remove_iso
from pxetui.iso.reader import IsoError
from pxetui.library import provider
from pxetui.menus import model

MEMTEST = "/usr/lib/memtest86+/memtest86+x64.iso"


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    c = base_config(tmp_path)
    c.tftp.root = str(tmp_path / "tftp")
    Path(c.tftp.root).mkdir()
    return c


def dump(cfg: Config) -> list[str]:
    if not cfg.db_path.exists():
        return []
    conn = sqlite3.connect(cfg.db_path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_import_real_memtest_stores_index_and_menu_entries(cfg: Config) -> None:
    require_tool(MEMTEST, package="memtest86+")
    events: list[Event] = []
    res = import_iso(cfg, MEMTEST, emit=events.append)
    assert res.record.name == "memtest86-x64" and res.record.family == "memtest86+"
    assert res.record.files == 2
    assert res.record.entries == ["memtest86-x64-bios", "memtest86-x64-uefi"]
    conn = library.connect(cfg)
    try:
        menu = model.load_menu(conn)
        assert [e.id for e in menu.entries] == ["memtest86-x64-bios", "memtest86-x64-uefi", "local"]
        assert list_isos(conn)[0].entries == res.record.entries
        assert set(library.load_files(conn, "memtest86-x64")) == {"boot/floppy.img", "EFI/BOOT/bootx64.efi"}
    finally:
        conn.close()
    imported = [e for e in events if isinstance(e, IsoImported)]
    assert imported and imported[0].family == "memtest86+" and imported[0].entries == res.record.entries
    assert any(isinstance(e, MenuChanged) for e in events)


def test_restart_serves_from_stored_index_without_opening_the_iso(cfg: Config, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("xorriso")
    files = testiso.layout("debian-live")
    iso = testiso.build(tmp_path / "live.iso", files)
    import_iso(cfg, iso, name="live")

    def no_open(*a: object, **k: object) -> None:
        raise AssertionError("the ISO was opened again after import")

    monkeypatch.setattr(pycdlib.PyCdlib, "open", no_open)
    monkeypatch.setattr(pycdlib.PyCdlib, "open_fp", no_open)
    provider._STATES.clear()  # a fresh process: nothing cached
    res = Resolver(cfg.tftp_root, provider.virtual_providers(cfg))
    src = res.resolve("iso/live/live/filesystem.squashfs", Client())
    assert src.origin == "iso" and src.path == str(iso)
    fd = src.open_fd()
    try:
        assert src.read(fd, 0, src.size) == files["live/filesystem.squashfs"]
    finally:
        import os

        os.close(fd)


def test_failed_imports_leave_the_library_unchanged(cfg: Config, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("xorriso")
    good = testiso.build(tmp_path / "good.iso", testiso.layout("alpine"))
    import_iso(cfg, good, name="alpine")
    before = dump(cfg)
    bad = tmp_path / "bad.iso"
    bad.write_bytes(b"\0" * 70000)
    with pytest.raises(IsoError, match="not an ISO 9660"):
        import_iso(cfg, bad)
    cut = tmp_path / "cut.iso"
    cut.write_bytes(good.read_bytes()[:40000])
    with pytest.raises(IsoError, match="truncated|corrupt"):
        import_iso(cfg, cut)
    with pytest.raises(IsoError, match="already in the library"):
        import_iso(cfg, good, name="alpine")
    assert dump(cfg) == before

    # A failure after the rows are written (while saving the menu) rolls everything back.
    other = testiso.build(tmp_path / "arch.iso", testiso.layout("arch"))

    def boom(conn: sqlite3.Connection, menu: model.Menu) -> None:
        raise model.MenuError("disk full (simulated)")

    monkeypatch.setattr(library, "save_menu", boom)
    with pytest.raises(model.MenuError, match="simulated"):
        import_iso(cfg, other, name="arch")
    assert dump(cfg) == before


def test_sha256sums_verification(cfg: Config, tmp_path: Path) -> None:
    require_tool("xorriso")
    iso = testiso.build(tmp_path / "fedora.iso", testiso.layout("fedora-live"))
    digest = hashlib.sha256(iso.read_bytes()).hexdigest()
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'0' * 64}  other.iso\n{digest} *fedora.iso\n")
    steps: list[str] = []
    res = import_iso(cfg, iso, sha256sums=sums, progress=lambda s, d, t: steps.append(s))
    assert res.record.sha256 == digest
    assert "verifying SHA256" in steps and "indexing files" in steps

    copy = tmp_path / "copy" / "fedora.iso"
    copy.parent.mkdir()
    shutil.copyfile(iso, copy)
    sums.write_text(f"{'1' * 64}  fedora.iso\n")
    before = dump(cfg)
    with pytest.raises(IsoError, match="SHA256 mismatch"):
        import_iso(cfg, copy, name="fedora2", sha256sums=sums)
    sums.write_text(f"{digest}  something-else.iso\n")
    with pytest.raises(IsoError, match="no SHA256 line for fedora.iso"):
        import_iso(cfg, copy, name="fedora2", sha256sums=sums)
    assert dump(cfg) == before


def test_remove_drops_rows_and_entries(cfg: Config, tmp_path: Path) -> None:
    require_tool("xorriso")
    iso = testiso.build(tmp_path / "arch.iso", testiso.layout("arch"))
    import_iso(cfg, iso, name="arch")
    assert remove_iso(cfg, "arch") == ["arch"]
    conn = library.connect(cfg)
    try:
        assert list_isos(conn) == []
        assert [e.id for e in model.load_menu(conn).entries] == ["local"]
        assert conn.execute("SELECT COUNT(*) FROM iso_files").fetchone()[0] == 0
    finally:
        conn.close()
    with pytest.raises(IsoError, match="not in the library"):
        remove_iso(cfg, "arch")


def test_an_iso_changed_on_disk_is_not_served(cfg: Config, tmp_path: Path) -> None:
    require_tool("xorriso")
    iso = testiso.build(tmp_path / "alp.iso", testiso.layout("alpine"))
    import_iso(cfg, iso, name="alp")
    provider._STATES.clear()
    prov = provider.IsoProvider(provider.state_for(cfg))
    assert prov.lookup("iso/alp/boot/vmlinuz-lts", Client()) is not None
    assert prov.lookup("iso/alp.iso", Client()) is not None
    testiso.build(iso, {"other": b"x" * 9000})  # rebuilt in place: the stored extents are stale
    provider._STATES.clear()
    prov = provider.IsoProvider(provider.state_for(cfg))
    assert prov.lookup("iso/alp/boot/vmlinuz-lts", Client()) is None
    assert prov.lookup("iso/alp.iso", Client()) is None  # nor the whole image
    conn = library.connect(cfg)
    try:
        assert "changed since it was imported" in (list_isos(conn)[0].changed() or "")
    finally:
        conn.close()
