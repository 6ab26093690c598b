"""SQLite (WAL) storage shared by the engine: leases, host overrides, client history, ISOs.

Each module owns its tables and creates them through `ensure_schema`; this file only knows how
to open the database safely from several processes (WAL, busy timeout).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pxetui.safeopen import Refused, open_own_file


class UnsafeDatabase(sqlite3.DatabaseError):
    """The database path is a symlink, a hard link or not a plain file (see `connect`)."""


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in WAL mode: readers never block the writer, and a crash loses nothing
    committed. `synchronous=NORMAL` keeps a commit to one fsync-free WAL append.

    Root opens databases in the state directory, which belongs to the unprivileged service user,
    and SQLite follows a symlink in the database's place (creating its target). So the file is
    opened first without following links and must be a plain file of its own, and the file
    SQLite opened must be that one; a swap in between is refused after the fact
    (docs/SECURITY.md, "Local users"). SQLite itself refuses a symlinked -wal or -shm."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pinned = _pin(p)
    conn = sqlite3.connect(str(p), timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        opened = conn.execute("PRAGMA database_list").fetchone()[2]
        st = os.stat(opened, follow_symlinks=False)
        if (st.st_dev, st.st_ino) != (pinned.st_dev, pinned.st_ino):
            raise UnsafeDatabase(f"database {p} was replaced while it was opened: refused")
    except BaseException:
        conn.close()
        raise
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.row_factory = sqlite3.Row
    return conn


def _pin(p: Path) -> os.stat_result:
    """Create or open `p` without following a link; its stat when it is a plain file of its own."""
    try:
        fd, st = open_own_file(p, os.O_RDONLY, 0o644)
    except Refused as exc:
        raise UnsafeDatabase(f"database {p} {exc.reason}: refused") from None
    except OSError as exc:
        raise sqlite3.OperationalError(f"unable to open database {p}: {exc.strerror}") from None
    os.close(fd)
    return st


def anchor(path: str | Path) -> sqlite3.Connection:
    """A connection the engine keeps open from start to stop, opened before any service runs.

    Every process maps the WAL index (`pxetui.db-shm`); the first connection to open it, when
    no process holds its lock, re-initialises it (it truncates the file). Two processes opening
    at the same moment once cost the HTTP service a SIGBUS, and a file root just created is
    briefly unreadable by the service user. Held here, the index is set up once, by the engine,
    and stays set up while services come and go (docs/ARCHITECTURE.md, "One database")."""
    conn = connect(path)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # maps the index now
    return conn


def ensure_schema(conn: sqlite3.Connection, ddl: str) -> None:
    """CREATE IF NOT EXISTS, one statement at a time: `executescript` would COMMIT an open
    transaction (and break an all-or-nothing import half-way)."""
    for stmt in ddl.split(";"):
        if stmt.strip():
            conn.execute(stmt)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock first, so what is read inside stays current), COMMIT at
    the end of the block, ROLLBACK if anything in it (or the COMMIT) raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


HOSTS_DDL = """
CREATE TABLE IF NOT EXISTS host_overrides (
    mac TEXT PRIMARY KEY,
    boot_once TEXT,          -- 'local' or a menu entry id: applies to the next boot only
    boot_file TEXT,          -- a per-MAC boot file or URL (sticky)
    entry TEXT,              -- a per-MAC default menu entry (sticky)
    updated REAL NOT NULL DEFAULT (strftime('%s','now'))
);
"""


def host_overrides(conn: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    ensure_schema(conn, HOSTS_DDL)
    return {r["mac"]: r for r in conn.execute("SELECT * FROM host_overrides")}


def set_host_override(conn: sqlite3.Connection, mac: str, **fields: str | None) -> None:
    ensure_schema(conn, HOSTS_DDL)
    allowed = {"boot_once", "boot_file", "entry"}
    bad = set(fields) - allowed
    if bad:
        raise ValueError(f"unknown host override field(s): {', '.join(sorted(bad))}")
    conn.execute("INSERT OR IGNORE INTO host_overrides(mac) VALUES (?)", (mac,))
    for k, v in fields.items():
        conn.execute(f"UPDATE host_overrides SET {k}=?, updated=strftime('%s','now') WHERE mac=?", (v, mac))


def clear_boot_once(conn: sqlite3.Connection, mac: str) -> None:
    ensure_schema(conn, HOSTS_DDL)
    conn.execute("UPDATE host_overrides SET boot_once=NULL WHERE mac=?", (mac,))
