"""The ISO library in the state dir: imported images, their stored index and menu entries.

Import is all or nothing: the image is verified and indexed first (nothing written), then the
library row, the file index and the new menu entries go in with one SQLite transaction, so a
failure at any point leaves the library and the menu as they were. The index is stored, so a
restart serves files from the .iso without opening pycdlib again (opening a 50,000-file image
costs ~2 s and 167 MiB).

Each row pins the image it indexed: device, inode, size and mtime (ns) of the real file, taken
from the descriptor that was indexed. Every open for serving checks the pin on the open fd
(docs/SECURITY.md, "Files cannot be swapped under us"). Rows from before the pin columns have
none: they are refused until imported again, since a pin taken later would trust whatever the
path names at that moment, not the file that was verified and indexed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pxetui import store
from pxetui.config import Config
from pxetui.events import Event, IsoImported, MenuChanged
from pxetui.iso.profiles import Detection, detect
from pxetui.iso.reader import IsoError, IsoFile, IsoIndex, Progress, read_index
from pxetui.menus.model import (
    Menu,
    MenuError,
    load_menu,
    save_menu,
    slug,
)
from pxetui.safeopen import Pin, PinMismatch, open_pinned
from pxetui.store import write_transaction

LIBRARY_DDL = """
CREATE TABLE IF NOT EXISTS iso_library (
    name TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    volume_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    el_torito INTEGER NOT NULL,
    family TEXT NOT NULL,
    label TEXT NOT NULL,
    root_fs TEXT,
    notes TEXT NOT NULL,          -- JSON list
    sha256 TEXT,                  -- set when verified against a SHA256SUMS file
    files INTEGER NOT NULL,
    imported REAL NOT NULL,
    dev INTEGER,                  -- the pin (NULL in rows imported before pins existed)
    ino INTEGER,
    mtime_ns INTEGER
);
CREATE TABLE IF NOT EXISTS iso_files (
    iso TEXT NOT NULL,
    path TEXT NOT NULL,
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL,
    extents TEXT,                 -- JSON [[offset, length], ...] when not one contiguous run
    PRIMARY KEY (iso, path)
) WITHOUT ROWID;
"""


@dataclass
class IsoRecord:
    name: str
    path: str
    size: int
    mtime: float
    volume_id: str
    family: str
    label: str
    root_fs: str | None
    notes: list[str]
    sha256: str | None
    files: int
    imported: float
    entries: list[str] = field(default_factory=list)
    pin: Pin | None = None

    def unpinned(self) -> str | None:
        """Why a row without a pin is refused (imported by an older pxetui), or None."""
        if self.pin is not None:
            return None
        return (f"{self.path} was imported before pxetui pinned images; import it again "
                f"(pxetui isos --remove {self.name}; pxetui import {self.path})")

    def open(self) -> tuple[int, os.stat_result]:
        """The image opened for serving: the stored real path with O_NOFOLLOW, checked against
        the pin on the fd. PinMismatch says what changed; the caller owns the fd."""
        if self.pin is None:
            raise PinMismatch(self.path, "has no pin")
        return open_pinned(self.path, self.pin)

    def changed(self) -> str | None:
        """Why the image on disk is no longer the one imported, or None (for `pxetui isos` and
        the UI; the services check the same on every open)."""
        why = self.unpinned()
        if why is not None:
            return why
        try:
            fd, _ = self.open()
        except PinMismatch as exc:
            return f"{exc.path} {exc.reason}; import it again"
        os.close(fd)
        return None


_PIN_COLUMNS = (("dev", "INTEGER"), ("ino", "INTEGER"), ("mtime_ns", "INTEGER"))


def ensure_schema(conn: sqlite3.Connection) -> None:
    store.ensure_schema(conn, LIBRARY_DDL)
    # Migration: a library from before pins gains the columns (NULL: refused until re-imported).
    have = {r[1] for r in conn.execute("PRAGMA table_info(iso_library)")}
    for col, kind in _PIN_COLUMNS:
        if col not in have:
            try:
                conn.execute(f"ALTER TABLE iso_library ADD COLUMN {col} {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another process migrated meanwhile
                    if "readonly" in str(exc):
                        return  # a service that may only read: rows load without pins
                    raise


def connect(cfg: Config) -> sqlite3.Connection:
    conn = store.connect(cfg.db_path)
    ensure_schema(conn)
    return conn


# -- SHA256SUMS -----------------------------------------------------------------------------


def expected_sha256(sums_file: str | Path, iso_path: str | Path) -> str:
    """The digest listed for the image (by file name) in a SHA256SUMS file."""
    want = Path(iso_path).name
    try:
        text = Path(sums_file).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise IsoError(f"{sums_file}: cannot read: {exc.strerror}") from None
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            continue
        name = parts[1].strip().lstrip("*").lstrip("./")  # "*name" = binary mode in sha256sum
        if name == want or Path(name).name == want:
            try:
                int(parts[0], 16)
            except ValueError:
                continue
            return parts[0].lower()
    raise IsoError(f"{sums_file}: no SHA256 line for {want}")


def sha256_file(path: str | Path, progress: Progress | None = None, chunk: int = 4 << 20,
                pin: Pin | None = None) -> str:
    """The file's SHA256; with `pin`, of the pinned file only (PinMismatch -> IsoError)."""
    h = hashlib.sha256()
    try:
        if pin is not None:
            fd, st = open_pinned(str(path), pin)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            st = os.fstat(fd)
    except PinMismatch as exc:
        raise IsoError(f"{exc.path} {exc.reason} while it was being imported") from None
    except OSError as exc:
        raise IsoError(f"{path}: cannot read: {exc.strerror}") from None
    total = st.st_size
    done = 0
    try:
        with os.fdopen(fd, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
                done += len(block)
                if progress is not None:
                    progress("verifying SHA256", done, total)
    except OSError as exc:
        raise IsoError(f"{path}: cannot read: {exc.strerror}") from None
    return h.hexdigest()


def _still_pinned(index: IsoIndex) -> None:
    """The file indexed (and hashed) is still the one at the path, unchanged, as it is stored."""
    assert index.pin is not None
    try:
        fd, _ = open_pinned(index.iso_path, index.pin)
    except PinMismatch as exc:
        raise IsoError(f"{exc.path} {exc.reason} while it was being imported; import it again") from None
    os.close(fd)


# -- import / remove / list -----------------------------------------------------------------


@dataclass
class ImportResult:
    record: IsoRecord
    detection: Detection
    index: IsoIndex
    seconds: float


def import_iso(cfg: Config, path: str | Path, name: str | None = None,
               sha256sums: str | Path | None = None, progress: Progress | None = None,
               emit: Callable[[Event], None] | None = None) -> ImportResult:
    """Verify, index, detect and store an image; IsoError/MenuError leave everything unchanged."""
    t0 = time.monotonic()
    given = os.path.abspath(str(path))
    iso_path = os.path.realpath(given)  # a symlink is resolved once, here: the real file is stored
    name = slug(name or Path(given).stem, "iso")
    conn = connect(cfg)
    try:
        row = conn.execute("SELECT path FROM iso_library WHERE name = ?", (name,)).fetchone()
        if row is not None:
            raise IsoError(f"{name}: already in the library (from {row[0]}); choose another "
                           "--name or remove it first")
        want = expected_sha256(sha256sums, given) if sha256sums is not None else None
        index = read_index(iso_path, progress)  # opened once, with O_NOFOLLOW, and pinned
        digest = None
        if want is not None:
            digest = sha256_file(iso_path, progress, pin=index.pin)  # the pinned file's bytes
            if digest != want:
                raise IsoError(f"{iso_path}: SHA256 mismatch: {digest} but {sha256sums} lists {want}")
        det = detect(index, name)
        for e in det.entries:
            e.source_iso = name
        if progress is not None:
            progress("storing index", 0, 1)
        _still_pinned(index)
        try:
            with write_transaction(conn):
                menu = load_menu(conn)
                added = [menu.add(e).id for e in det.entries]
                _store(conn, name, index, det, digest)
                save_menu(conn, menu)
        except sqlite3.IntegrityError:  # rolled back: another import took the name meanwhile
            raise IsoError(f"{name}: already in the library; choose another --name") from None
        record = _record(conn, name)
    finally:
        conn.close()
    assert record is not None
    record.entries = added
    if progress is not None:
        progress("storing index", 1, 1)
    if emit is not None:
        emit(IsoImported(service="library", name=name, family=det.family, path=iso_path,
                         entries=added))
        emit(MenuChanged(service="library", entries=len(menu.entries), source=f"import {name}"))
    return ImportResult(record, det, index, time.monotonic() - t0)


def _store(conn: sqlite3.Connection, name: str, index: IsoIndex, det: Detection,
           digest: str | None) -> None:
    pin = index.pin
    assert pin is not None  # read_index pins every image it indexes
    conn.execute(
        "INSERT INTO iso_library(name, path, size, mtime, volume_id, namespace, el_torito, family,"
        " label, root_fs, notes, sha256, files, imported, dev, ino, mtime_ns)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (name, index.iso_path, index.iso_size, index.iso_mtime, index.volume_id, index.namespace,
         int(index.el_torito), det.family, det.label, det.root_fs, json.dumps(det.notes), digest,
         len(index.files), time.time(), pin.dev, pin.ino, pin.mtime_ns))
    conn.executemany(
        "INSERT INTO iso_files(iso, path, offset, size, extents) VALUES (?,?,?,?,?)",
        ((name, f.path, f.offset, f.size, json.dumps(f.extents) if f.extents else None)
         for f in index.files.values()))


def _from_row(r: sqlite3.Row) -> IsoRecord:
    keys = r.keys()  # a library not migrated yet (read-only to this process) has no pin columns
    pinned = "dev" in keys and None not in (r["dev"], r["ino"], r["mtime_ns"])
    pin = Pin(r["dev"], r["ino"], r["size"], r["mtime_ns"]) if pinned else None
    return IsoRecord(name=r["name"], path=r["path"], size=r["size"], mtime=r["mtime"],
                     volume_id=r["volume_id"], family=r["family"], label=r["label"],
                     root_fs=r["root_fs"], notes=json.loads(r["notes"]), sha256=r["sha256"],
                     files=r["files"], imported=r["imported"], pin=pin)


def _record(conn: sqlite3.Connection, name: str) -> IsoRecord | None:
    r = conn.execute("SELECT * FROM iso_library WHERE name = ?", (name,)).fetchone()
    return None if r is None else _from_row(r)


def list_isos(conn: sqlite3.Connection, menu: Menu | None = None) -> list[IsoRecord]:
    """Every imported image with its menu entries; pass `menu` when it is already loaded."""
    ensure_schema(conn)
    if menu is None:
        menu = load_menu(conn)
    out = [_from_row(r) for r in conn.execute("SELECT * FROM iso_library ORDER BY name")]
    for rec in out:
        rec.entries = [e.id for e in menu.entries if e.source_iso == rec.name]
    return out


def load_files(conn: sqlite3.Connection, name: str) -> dict[str, IsoFile]:
    """The stored index of one image (no need to open the .iso)."""
    ensure_schema(conn)
    out = {}
    for path, off, size, ext in conn.execute(
            "SELECT path, offset, size, extents FROM iso_files WHERE iso = ?", (name,)):
        runs = tuple(tuple(x) for x in json.loads(ext)) if ext else ()
        out[path] = IsoFile(path, off, size, runs)  # type: ignore[arg-type]
    return out


def remove_iso(cfg: Config, name: str, emit: Callable[[Event], None] | None = None) -> list[str]:
    """Drop an image, its index and its menu entries (one transaction); the .iso stays on disk."""
    conn = connect(cfg)
    try:
        if _record(conn, name) is None:
            raise IsoError(f"{name}: not in the library")
        with write_transaction(conn):
            menu: Menu = load_menu(conn)
            gone = [e.id for e in menu.entries if e.source_iso == name]
            for eid in gone:
                menu.remove(eid)
            conn.execute("DELETE FROM iso_files WHERE iso = ?", (name,))
            conn.execute("DELETE FROM iso_library WHERE name = ?", (name,))
            save_menu(conn, menu)
    finally:
        conn.close()
    if emit is not None:
        emit(MenuChanged(service="library", entries=len(menu.entries), source=f"remove {name}"))
    return gone


__all__ = ["ImportResult", "IsoError", "IsoRecord", "MenuError", "import_iso", "list_isos",
           "load_files", "remove_iso", "expected_sha256", "sha256_file"]
