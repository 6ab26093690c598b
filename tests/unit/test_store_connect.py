"""store.connect never opens a database through what the service user planted in the state
directory it owns: root opens those files too (docs/SECURITY.md, "Local users")."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from pxetui import store


def test_a_plain_database_opens_and_is_created_when_missing(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "state" / "pxetui.db")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    conn = store.connect(tmp_path / "state" / "pxetui.db")
    assert conn.execute("SELECT name FROM sqlite_master").fetchone()[0] == "t"
    conn.close()


@pytest.mark.parametrize("plant", ["dangling symlink", "symlink", "hardlink", "fifo"])
def test_a_link_or_special_file_in_the_database_s_place_is_refused(tmp_path: Path, plant: str) -> None:
    target = tmp_path / "etc-nologin"
    db = tmp_path / "pxetui.db"
    if plant == "dangling symlink":  # SQLite would create the target, as root
        db.symlink_to(target)
    elif plant == "symlink":
        target.write_bytes(b"")  # an empty file is a database to SQLite: it would write into it
        db.symlink_to(target)
    elif plant == "hardlink":
        target.write_bytes(b"")
        os.link(target, db)
    else:
        os.mkfifo(db)
    with pytest.raises(store.UnsafeDatabase, match="pxetui.db"):
        store.connect(db)
    assert not target.exists() or target.read_bytes() == b""
    assert isinstance(store.UnsafeDatabase("x"), sqlite3.Error)  # callers' sqlite3.Error handling holds


def test_a_swap_between_the_check_and_sqlite_s_open_is_refused(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """What SQLite opened is compared with what was checked: here the check saw another file."""
    other = tmp_path / "other"
    other.write_bytes(b"")
    monkeypatch.setattr(store, "_pin", lambda p: os.stat(other))
    with pytest.raises(store.UnsafeDatabase, match="replaced"):
        store.connect(tmp_path / "pxetui.db")
