"""Reading and writing the boot menu in the engine's state database (pxetui.db)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pxetui import store
from pxetui.menus.model import Menu, MenuError, load_menu, save_menu

DB_NAME = "pxetui.db"  # Config.db_path: <state_dir>/pxetui.db


def load_from(db: Path) -> Menu:
    conn = store.connect(db)
    try:
        return load_menu(conn)
    finally:
        conn.close()


def save_to(db: Path, menu: Menu) -> None:
    """One transaction: a menu that fails its checks is not stored (save_menu raises)."""
    conn = store.connect(db)
    try:
        with store.write_transaction(conn):
            save_menu(conn, menu)
    finally:
        conn.close()


def entries(state_dir: Path | None) -> list[tuple[str, str]]:
    """(id, label) of every menu entry; empty when the menu cannot be read."""
    if state_dir is None or not (state_dir / DB_NAME).exists():
        return []
    try:
        menu = load_from(state_dir / DB_NAME)
    except (MenuError, sqlite3.Error, OSError):
        return []
    return [(e.id, e.label) for e in menu.entries]
