"""Unattended-install seeds (autoinstall user-data, preseed, kickstart) in the state dir.

A seed belongs to a menu entry (`<entry>/<file>`, served as `seed/<entry>/<file>`) or to one
machine (`<file>` for a MAC, served as `seed/<mac>/<file>`). Storing an entry's seed switches on
that entry's `seed_args` (the profile knows them: `autoinstall ds=nocloud-net;s=...`,
`auto=true url=...`, `inst.ks=...`).
"""

from __future__ import annotations

import re
import sqlite3

from pxetui import store
from pxetui.config import normalize_mac
from pxetui.menus.model import MenuError, load_menu, save_menu
from pxetui.store import write_transaction

SEEDS_DDL = """
CREATE TABLE IF NOT EXISTS menu_seeds (
    scope TEXT NOT NULL,      -- 'entry' or a MAC address
    name TEXT NOT NULL,       -- '<entry>/<file>' for entries, '<file>' for a MAC
    data BLOB NOT NULL,
    PRIMARY KEY (scope, name)
);
"""
_FILE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_SEED = 1 << 20


def ensure_schema(conn: sqlite3.Connection) -> None:
    store.ensure_schema(conn, SEEDS_DDL)


def set_seed(conn: sqlite3.Connection, file: str, data: bytes, entry: str | None = None,
             mac: str | None = None) -> str:
    """Store a seed for an entry or a MAC; returns the served path (`seed/<key>/<file>`)."""
    if (entry is None) == (mac is None):
        raise MenuError("a seed belongs to exactly one of: an entry, a MAC")
    if not _FILE.match(file):
        raise MenuError(f"seed file name {file!r}: use 1..64 letters, digits, '_.:-'")
    if len(data) > MAX_SEED:
        raise MenuError(f"seed {file}: {len(data)} bytes is over the {MAX_SEED}-byte limit")
    ensure_schema(conn)
    with write_transaction(conn):
        if entry is not None:
            menu = load_menu(conn)
            e = menu.get(entry)
            if e is None:
                raise MenuError(f"no menu entry {entry!r}")
            e.seeded = bool(e.seed_args) or e.seeded
            save_menu(conn, menu)
            scope, name, key = "entry", f"{entry}/{file}", entry
        else:
            scope, name = normalize_mac(mac or ""), file
            key = scope
        conn.execute("INSERT OR REPLACE INTO menu_seeds(scope, name, data) VALUES (?, ?, ?)",
                     (scope, name, data))
    return f"seed/{key}/{file}"


def get_seed(conn: sqlite3.Connection, mac: str | None, name: str) -> bytes | None:
    ensure_schema(conn)
    scope = "entry"
    if mac is not None:
        try:
            scope = normalize_mac(mac)
        except ValueError:
            return None
    row = conn.execute("SELECT data FROM menu_seeds WHERE scope = ? AND name = ?", (scope, name)).fetchone()
    if row is not None:
        return bytes(row[0])
    if name.endswith("meta-data"):
        # cloud-init's nocloud-net needs meta-data next to user-data; empty is valid.
        sibling = name[: -len("meta-data")] + "user-data"
        if conn.execute("SELECT 1 FROM menu_seeds WHERE scope = ? AND name = ?",
                        (scope, sibling)).fetchone():
            return b""
    return None
