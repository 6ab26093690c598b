"""The ISO library: import is all or nothing, the index is stored (no rescan after a restart),
SHA256SUMS verification, progress, events, removal."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pycdlib
import pytest
from netns import require_tool
from services import base_config

from pxetui.config import Config
from pxetui.events import Alert, Event, IsoImported, Log, MenuChanged
from pxetui.files import Client, Forbidden, Resolver
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
    with src:
        assert src.read(src.fd, 0, src.size) == files["live/filesystem.squashfs"]


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


def _refusal(prov: provider.IsoProvider, path: str) -> Forbidden:
    with pytest.raises(Forbidden) as info:
        prov.lookup(path, Client())
    return info.value


def test_an_iso_changed_on_disk_is_refused_with_an_alert_once(cfg: Config, tmp_path: Path) -> None:
    require_tool("xorriso")
    iso = testiso.build(tmp_path / "alp.iso", testiso.layout("alpine"))
    import_iso(cfg, iso, name="alp")
    provider._STATES.clear()
    prov = provider.IsoProvider(provider.state_for(cfg))
    for path in ("iso/alp/boot/vmlinuz-lts", "iso/alp.iso"):
        src = prov.lookup(path, Client())
        assert src is not None and src.fd is not None
        src.close()
    testiso.build(iso, {"other": b"x" * 9000})  # rebuilt in place: the stored extents are stale
    first = _refusal(prov, "iso/alp/boot/vmlinuz-lts")
    assert "ISO alp:" in first.reason and str(iso) in first.reason
    assert "imported again" in first.reason
    alerts = [e for e in first.events if isinstance(e, Alert)]
    assert [a.key for a in alerts] == ["iso-changed:alp"] and alerts[0].severity == "error"
    assert any(isinstance(e, Log) and "ISO alp" in e.message for e in first.events)
    again = _refusal(prov, "iso/alp.iso")  # nor the whole image; the alert is not repeated
    assert again.reason == first.reason and again.events == ()
    conn = library.connect(cfg)
    try:
        assert "import it again" in (list_isos(conn)[0].changed() or "")
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["touched", "grown", "replaced", "symlink", "deleted"])
def test_each_kind_of_change_is_named(cfg: Config, tmp_path: Path, how: str) -> None:
    require_tool("xorriso")
    iso = testiso.build(tmp_path / "alp.iso", testiso.layout("alpine"))
    import_iso(cfg, iso, name="alp")
    size = iso.stat().st_size
    if how == "touched":  # same inode and size, new mtime (rewritten in place)
        os.utime(iso, ns=(0, iso.stat().st_mtime_ns + 1_000_000_000))
    elif how == "grown":
        with open(iso, "ab") as fh:
            fh.write(b"\0" * 2048)
    elif how == "replaced":  # another file of the same size, the same mtime, renamed over it
        other = tmp_path / "other"
        other.write_bytes(b"\0" * size)
        st = iso.stat()
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        other.replace(iso)
    elif how == "symlink":
        iso.unlink()
        iso.symlink_to("/etc/shadow")
    else:
        iso.unlink()
    want = {"touched": "modified after import", "grown": "changed size", "replaced": "replaced by another file",
            "symlink": "replaced by a symlink", "deleted": "is gone"}[how]
    provider._STATES.clear()
    prov = provider.IsoProvider(provider.state_for(cfg))
    assert want in _refusal(prov, "iso/alp.iso").reason
    assert want in _refusal(prov, "iso/alp/boot/vmlinuz-lts").reason


def test_a_swapped_iso_stays_refused_until_imported_again(cfg: Config, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("xorriso")
    monkeypatch.setattr(provider, "_RECHECK", 0.0)
    iso = testiso.build(tmp_path / "alp.iso", testiso.layout("alpine"))
    import_iso(cfg, iso, name="alp")
    provider._STATES.clear()
    prov = provider.IsoProvider(provider.state_for(cfg))
    iso.rename(tmp_path / "kept.iso")
    iso.symlink_to("/etc/shadow")
    _refusal(prov, "iso/alp.iso")
    iso.unlink()
    (tmp_path / "kept.iso").rename(iso)  # the original is back: still refused
    assert "replaced by a symlink" in _refusal(prov, "iso/alp.iso").reason
    remove_iso(cfg, "alp")
    import_iso(cfg, iso, name="alp")  # imported again: served again
    src = prov.lookup("iso/alp.iso", Client())
    assert src is not None and src.size == iso.stat().st_size
    src.close()


def test_a_symlinked_iso_is_stored_by_its_real_path(cfg: Config, tmp_path: Path) -> None:
    require_tool("xorriso")
    real = testiso.build(tmp_path / "real-alpine.iso", testiso.layout("alpine"))
    link = tmp_path / "alpine.iso"
    link.symlink_to(real)
    rec = import_iso(cfg, link).record
    st = real.stat()
    assert (rec.name, rec.path) == ("alpine", str(real))
    assert rec.pin is not None and (rec.pin.dev, rec.pin.ino, rec.pin.size, rec.pin.mtime_ns) == (
        st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    link.unlink()  # the link the user typed is not what is served
    provider._STATES.clear()
    src = provider.IsoProvider(provider.state_for(cfg)).lookup("iso/alpine.iso", Client())
    assert src is not None
    src.close()


def test_rows_from_before_pins_are_migrated_and_refused_until_reimported(cfg: Config, tmp_path: Path) -> None:
    require_tool("xorriso")
    iso = testiso.build(tmp_path / "alp.iso", testiso.layout("alpine"))
    import_iso(cfg, iso, name="alp")
    # Make it look like a library written before pins existed: the table without the columns.
    conn = sqlite3.connect(cfg.db_path)
    cols = "name, path, size, mtime, volume_id, namespace, el_torito, family, label, root_fs, notes, sha256, files, imported"
    conn.executescript(f"""
        CREATE TABLE old AS SELECT {cols} FROM iso_library;
        DROP TABLE iso_library;
        ALTER TABLE old RENAME TO iso_library;
    """)
    conn.close()
    conn = library.connect(cfg)  # migrates
    try:
        have = {r[1] for r in conn.execute("PRAGMA table_info(iso_library)")}
        assert {"dev", "ino", "mtime_ns"} <= have
        (rec,) = list_isos(conn)
    finally:
        conn.close()
    assert rec.pin is None and "import it again" in (rec.changed() or "")
    provider._STATES.clear()
    first = _refusal(provider.IsoProvider(provider.state_for(cfg)), "iso/alp/boot/vmlinuz-lts")
    assert "before pxetui pinned images" in first.reason and "pxetui isos --remove alp" in first.reason
    assert [e.key for e in first.events if isinstance(e, Alert)] == ["iso-changed:alp"]
    remove_iso(cfg, "alp")
    assert import_iso(cfg, iso, name="alp").record.pin is not None
