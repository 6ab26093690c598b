"""Group commit of lease changes on a thread of its own: an ACK never leaves before its lease is
on disk, and the loop that answers DHCP never waits for the disk.

The DHCP service handles a batch of datagrams, then hands the batch's lease changes and its
replies here (`submit`). This thread writes every batch that waited meanwhile in one
transaction (synchronous=FULL: one fsync for all of them), then sends their replies. While it
waits for the disk, the loop goes on reading and answering; the next batches share the next
fsync. Before this, the loop itself waited for every batch's fsync: at 5,000 DORA/s as
deployed the socket queue overflowed behind it (bench/engine/run.py, docs/ARCHITECTURE.md,
"The DHCP service and the disk").

sqlite3 releases the GIL while it runs a statement, the COMMIT's fsync included. Sending from
this thread on the service's non-blocking socket is safe: the kernel orders the calls.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pxetui import store as dbstore

Write = tuple[str, tuple[object, ...]]


class QueuedWrites:
    """A lease store's changes, queued as they are decided (`pending`) and written later: by
    the service's GroupCommitter (`take_pending`), or at once (`commit`: at the service's end,
    and in tests). The DHCPv4 and DHCPv6 stores both are one."""

    conn: sqlite3.Connection
    pending: list[Write]

    def take_pending(self) -> list[Write]:
        """The queued changes, handed over and forgotten here."""
        pending, self.pending = self.pending, []
        return pending

    def commit(self) -> None:
        """Write every queued change in one transaction (WAL: one append, fsync'd when the
        connection runs synchronous=FULL, as the services' do)."""
        pending = self.take_pending()
        if not pending:
            return
        with dbstore.write_transaction(self.conn):
            for sql, args in pending:
                self.conn.execute(sql, args)
# Replies, and lease writes, waiting for the disk, at most: a disk this far behind (seconds of
# a storm) is not keeping up, and a later batch is dropped, its replies and its writes (the
# clients retransmit and are bound again), rather than held without bound or sent before
# their leases are written. Writes count on their own: RELEASE and DECLINE have no reply.
MAX_WAITING = 20_000


@dataclass
class _Group:
    writes: list[Write]
    send: Callable[[], None]  # the batch's replies; called once its writes are committed
    replies: int


class GroupCommitter:
    """One writer thread and its own connection to the lease database (`open_db()`, called
    on the thread). `failed(message)` is called on the thread when a commit fails (the
    batches of that commit lose their replies) or a send raises: the service hands it to its
    loop (`call_soon_threadsafe`)."""

    def __init__(self, open_db: Callable[[], sqlite3.Connection], failed: Callable[[str], None],
                 max_waiting: int = MAX_WAITING) -> None:
        self._open_db, self._failed, self.max_waiting = open_db, failed, max_waiting
        self._cond = threading.Condition()
        self._groups: list[_Group] = []
        self._waiting = 0  # replies in self._groups
        self._writes = 0  # writes in self._groups
        self._closing = False
        self.commits = 0  # transactions written (each may hold many batches)
        self.refused = 0  # replies dropped because too many waited already
        self._thread = threading.Thread(target=self._run, name="lease-commit", daemon=True)
        self._thread.start()

    def submit(self, writes: list[Write], send: Callable[[], None], replies: int) -> bool:
        """Queue a batch: its writes, then `send` once they are on disk. False (nothing queued)
        when closing or when MAX_WAITING replies or writes already wait: the caller drops the
        batch. Never blocks."""
        with self._cond:
            if (self._closing or self._waiting + replies > self.max_waiting
                    or self._writes + len(writes) > self.max_waiting):
                self.refused += replies
                return False
            self._groups.append(_Group(writes, send, replies))
            self._waiting += replies
            self._writes += len(writes)
            self._cond.notify()
        return True

    @property
    def waiting(self) -> int:
        return self._waiting

    def close(self, timeout: float = 2.0) -> None:
        """Write and send what is queued, then end the thread (at most `timeout` seconds)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            conn = self._open_db()
        except sqlite3.Error as exc:
            self._failed(f"lease database cannot be opened for writing: {exc}")
            conn = None
        while True:
            with self._cond:
                while not self._groups and not self._closing:
                    self._cond.wait()
                groups, self._groups = self._groups, []
                self._waiting = self._writes = 0
                if not groups and self._closing:
                    break
            self._commit(conn, groups)
        if conn is not None:
            conn.close()

    def _commit(self, conn: sqlite3.Connection | None, groups: list[_Group]) -> None:
        try:
            if conn is None:
                raise sqlite3.OperationalError("no connection")
            with dbstore.write_transaction(conn):
                for sql, rows in _runs(groups):
                    conn.executemany(sql, rows)
            self.commits += 1
        except sqlite3.Error as exc:
            lost = sum(g.replies for g in groups)
            self._failed(f"lease database write failed, {lost} replies dropped: {exc}")
            return
        for group in groups:
            try:
                group.send()
            except Exception as exc:  # a bug in one batch's sends must not end the thread
                self._failed(f"sending a batch's replies failed: {exc!r}")


def _runs(groups: list[_Group]) -> list[tuple[str, list[tuple[object, ...]]]]:
    """The groups' writes in order, consecutive ones of one statement together: one
    executemany each (a storm's ACKs are a run of the same INSERT) instead of a call a row."""
    runs: list[tuple[str, list[tuple[object, ...]]]] = []
    for group in groups:
        for sql, args in group.writes:
            if runs and runs[-1][0] == sql:
                runs[-1][1].append(args)
            else:
                runs.append((sql, [args]))
    return runs
