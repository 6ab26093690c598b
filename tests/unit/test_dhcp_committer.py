"""GroupCommitter: replies leave only after their writes are committed, many batches share one
commit while the disk is slow, the loop is never made to wait, and failures lose replies, not
the thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from netns import wait_for

from pxetui import store as dbstore
from pxetui.dhcp.committer import GroupCommitter

DDL = "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)"


def open_db(path: Path) -> sqlite3.Connection:
    conn = dbstore.connect(path)
    conn.execute(DDL)
    return conn


def rows(path: Path) -> set[int]:
    conn = dbstore.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT k FROM t")}
    finally:
        conn.close()



def test_a_batch_is_sent_only_once_its_writes_are_committed(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    open_db(db).close()
    seen_at_send: list[set[int]] = []
    errors: list[str] = []
    gc = GroupCommitter(lambda: open_db(db), errors.append)
    try:
        # the send reads through another connection: what it sees is committed
        assert gc.submit([("INSERT INTO t VALUES (?,?)", (1, "a"))], lambda: seen_at_send.append(rows(db)), 1)
        wait_for(lambda: seen_at_send)
    finally:
        gc.close()
    assert seen_at_send == [{1}]
    assert errors == []


def test_batches_waiting_for_a_slow_disk_share_one_commit(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    gate = threading.Event()
    first_open = threading.Event()

    def slow_open() -> sqlite3.Connection:
        first_open.set()
        gate.wait(5)  # the "disk" is busy: the thread cannot write yet
        return open_db(db)

    sent: list[int] = []
    gc = GroupCommitter(slow_open, lambda m: None)
    try:
        first_open.wait(5)
        t0 = time.monotonic()
        for k in range(50):  # the loop keeps submitting; none of these calls waits
            assert gc.submit([("INSERT INTO t VALUES (?,?)", (k, "x"))], lambda k=k: sent.append(k), 1)
        assert time.monotonic() - t0 < 1.0  # not a timing claim: the gate is held for 5 s
        assert sent == []  # nothing leaves before its write is on disk
        gate.set()
        wait_for(lambda: len(sent) == 50)
    finally:
        gc.close()
    assert sent == list(range(50))  # in the order submitted
    assert gc.commits == 1  # the 50 batches that waited went in one transaction
    assert rows(db) == set(range(50))


def test_too_many_waiting_replies_are_refused_not_queued_without_bound(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    gate = threading.Event()
    gc = GroupCommitter(lambda: (gate.wait(5), open_db(db))[1], lambda m: None, max_waiting=10)
    try:
        assert gc.submit([("INSERT INTO t VALUES (1,'a')", ())], lambda: None, 8)
        assert not gc.submit([("INSERT INTO t VALUES (2,'b')", ())], lambda: None, 3)
        assert gc.refused == 3
        assert gc.submit([("INSERT INTO t VALUES (3,'c')", ())], lambda: None, 2)
    finally:
        gate.set()
        gc.close()
    assert rows(db) == {1, 3}


def test_a_failed_commit_drops_its_replies_reports_and_the_thread_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    errors: list[str] = []
    sent: list[str] = []
    gc = GroupCommitter(lambda: open_db(db), errors.append)
    try:
        assert gc.submit([("INSERT INTO nosuchtable VALUES (1)", ())], lambda: sent.append("bad"), 4)
        wait_for(lambda: errors)
        assert gc.submit([("INSERT INTO t VALUES (7,'ok')", ())], lambda: sent.append("good"), 1)
        wait_for(lambda: sent)
    finally:
        gc.close()
    assert sent == ["good"]
    assert "4 replies dropped" in errors[0] and "nosuchtable" in errors[0]
    assert rows(db) == {7}


def test_close_writes_and_sends_what_is_queued(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    sent: list[int] = []
    gc = GroupCommitter(lambda: open_db(db), lambda m: None)
    for k in range(5):
        gc.submit([("INSERT INTO t VALUES (?,?)", (k, "x"))], lambda k=k: sent.append(k), 1)
    gc.close()
    assert sent == list(range(5))
    assert rows(db) == set(range(5))
    assert not gc.submit([("INSERT INTO t VALUES (9,'x')", ())], lambda: None, 1)  # closed


@pytest.mark.parametrize("boom", [RuntimeError("bug"), OSError("gone")])
def test_a_send_that_raises_is_reported_and_later_batches_still_go(tmp_path: Path, boom: Exception) -> None:
    db = tmp_path / "l.db"
    errors: list[str] = []
    sent: list[int] = []

    def bad() -> None:
        raise boom

    gc = GroupCommitter(lambda: open_db(db), errors.append)
    try:
        gc.submit([("INSERT INTO t VALUES (1,'x')", ())], bad, 1)
        wait_for(lambda: errors)
        gc.submit([("INSERT INTO t VALUES (2,'x')", ())], lambda: sent.append(2), 1)
        wait_for(lambda: sent)
    finally:
        gc.close()
    assert "sending a batch's replies failed" in errors[0]


def test_batches_of_writes_without_replies_are_bounded_too(tmp_path: Path) -> None:
    # RELEASE and DECLINE write without replying: a stuck disk must not queue them forever.
    db = tmp_path / "l.db"
    gate = threading.Event()
    gc = GroupCommitter(lambda: (gate.wait(5), open_db(db))[1], lambda m: None, max_waiting=10)
    try:
        for k in range(10):
            assert gc.submit([("INSERT INTO t VALUES (?,?)", (k, "x"))], lambda: None, 0)
        assert not gc.submit([("INSERT INTO t VALUES (99,'x')", ())], lambda: None, 0)
    finally:
        gate.set()
        gc.close()
    assert rows(db) == set(range(10))


def test_writes_of_many_batches_keep_their_order_across_statements(tmp_path: Path) -> None:
    # Consecutive writes of one statement go out as one executemany; a DELETE between two
    # INSERTs of one key must still land between them (a lease given up, then taken again).
    db = tmp_path / "l.db"
    open_db(db).close()
    gate = threading.Event()
    gc = GroupCommitter(lambda: (gate.wait(5), open_db(db))[1], lambda m: None)
    ins, rm = "INSERT OR REPLACE INTO t VALUES (?,?)", "DELETE FROM t WHERE k=?"
    done: list[int] = []
    try:
        batches = [[(ins, (1, "a")), (ins, (2, "b"))], [(rm, (1,))], [(ins, (3, "c")), (rm, (2,))],
                   [(ins, (2, "again"))]]
        for i, writes in enumerate(batches):  # all wait for the one commit behind the gate
            assert gc.submit(writes, lambda i=i: done.append(i), 1)
        gate.set()
        wait_for(lambda: len(done) == len(batches))
    finally:
        gc.close()
    conn = dbstore.connect(db)
    try:
        assert dict(conn.execute("SELECT k, v FROM t").fetchall()) == {2: "again", 3: "c"}
    finally:
        conn.close()
    assert gc.commits == 1
