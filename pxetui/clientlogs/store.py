"""The newest log lines of each client, in a database of their own (<state_dir>/clientlogs.db).

A file apart from the lease database, as the tracker's: the installer's chatter is written in
batches (one transaction a second) and never holds the lock DHCP's lease commits wait for
(docs/ARCHITECTURE.md, "One database"). Each MAC keeps its newest `logs.max_lines_per_client`
lines; lines no machine could be attributed to share one such bucket, keyed "" (a flood of
spoofed sources cannot grow the table: docs/SECURITY.md, "Bounded disk and memory").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pxetui.config import Config
from pxetui.events import ClientLog
from pxetui.store import connect, ensure_schema, write_transaction

DDL = """
CREATE TABLE IF NOT EXISTS client_logs (
    mac TEXT NOT NULL,            -- "" for lines no machine was attributed to
    seq INTEGER NOT NULL,         -- per MAC, growing: the newest are kept
    ts REAL NOT NULL,
    ip TEXT,
    source TEXT NOT NULL,         -- syslog | netconsole
    facility INTEGER,
    severity INTEGER,
    app TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (mac, seq)
) WITHOUT ROWID
"""
_INSERT = ("INSERT OR REPLACE INTO client_logs(mac, seq, ts, ip, source, facility, severity, app, message)"
           " VALUES (?,?,?,?,?,?,?,?,?)")
MAX_PENDING = 50_000  # lines held between flushes; past it the oldest pending are dropped
MAX_SEQS = 100_000  # MACs whose last seq is cached; cleared when full (re-read on demand)


def db_path(cfg: Config) -> Path:
    return cfg.state_path / "clientlogs.db"


class LogStore:
    def __init__(self, path: str | Path, max_lines: int) -> None:
        self.max_lines = max_lines
        self.db: sqlite3.Connection = connect(path)
        ensure_schema(self.db, DDL)
        self._seq: dict[str, int] = {}
        self._pending: list[tuple[Any, ...]] = []
        self.dropped_pending = 0

    def _next_seq(self, mac: str) -> int:
        seq = self._seq.get(mac)
        if seq is None:
            if len(self._seq) >= MAX_SEQS:
                self._seq.clear()
            row = self.db.execute("SELECT max(seq) FROM client_logs WHERE mac=?", (mac,)).fetchone()
            seq = int(row[0] or 0)
        self._seq[mac] = seq + 1
        return seq + 1

    def add(self, ev: ClientLog) -> None:
        mac = ev.mac or ""
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(0)
            self.dropped_pending += 1
        self._pending.append((mac, self._next_seq(mac), ev.ts, ev.ip, ev.source, ev.facility,
                              ev.severity, ev.app, ev.message))

    def flush(self) -> dict[str, int]:
        """Write what is pending in one transaction; trim each MAC written to its newest
        max_lines. Returns how many lines each trimmed MAC lost (a limit the service reports)."""
        if not self._pending:
            return {}
        rows, self._pending = self._pending, []
        trimmed: dict[str, int] = {}
        with write_transaction(self.db):
            self.db.executemany(_INSERT, rows)
            for mac in {r[0] for r in rows}:
                cut = self._seq[mac] - self.max_lines
                if cut > 0:
                    n = self.db.execute("DELETE FROM client_logs WHERE mac=? AND seq<=?", (mac, cut)).rowcount
                    if n > 0:
                        trimmed[mac] = n
        return trimmed

    def tail(self, mac: str, limit: int = 100) -> list[dict[str, Any]]:
        """A client's newest `limit` lines, oldest first."""
        rows = self.db.execute("SELECT * FROM client_logs WHERE mac=? ORDER BY seq DESC LIMIT ?", (mac, limit))
        return [dict(r) for r in reversed(rows.fetchall())]

    def count(self, mac: str) -> int:
        return int(self.db.execute("SELECT count(*) FROM client_logs WHERE mac=?", (mac,)).fetchone()[0])

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()
