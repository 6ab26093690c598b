"""Which machine (MAC) is behind a source address: what the wire says, never what a URL claims.

A request's `?mac=` is whatever the sender typed, so it decides nothing (docs/SECURITY.md,
"Callbacks and seeds"). The address a TCP peer or a TFTP client uses is attributed by:
  1. the kernel's neighbour table (/proc/net/arp, complete entries): on our segment the kernel
     had to resolve the peer's MAC to answer it, so this works in proxy mode and unprivileged;
  2. our DHCP lease store (full mode): the MAC we leased that address to; the only way to
     attribute a relayed client, whose source address is not on our segment.
Both known and different (someone uses an address we leased to another machine): nothing is
attributed. Lookups are cached for a couple of seconds: this runs for every HTTP request.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pxetui import store
from pxetui.config import Config

ARP_PATH = "/proc/net/arp"
ATF_COM = 0x02  # <linux/if_arp.h>: the entry is complete (a MAC is known)
CACHE_SECONDS = 2.0  # how long one answer (found or not) is reused
# A miss re-reads the neighbour table: a new client's entry is made while its TCP handshake
# (or first TFTP reply) is answered, just before its request. Beyond this many re-reads a second
# (a flood of unknown addresses) a miss uses the last table and is not remembered.
REREADS_PER_SECOND = 100
MAX_CACHED = 16384  # answers kept; the cache is cleared when full (a flood of addresses)


def read_neighbours(path: str = ARP_PATH) -> dict[str, str]:
    """IP -> MAC of the complete entries of /proc/net/arp (of this process's netns)."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            next(f, None)  # the header line
            for line in f:
                parts = line.split()
                if len(parts) < 4:
                    continue
                try:
                    flags = int(parts[2], 16)
                except ValueError:
                    continue
                mac = parts[3].lower()
                if flags & ATF_COM and mac != "00:00:00:00:00:00":
                    out[parts[0]] = mac
    except OSError:
        return {}
    return out


class Attributor:
    """IP -> MAC by neighbour table and lease store, cached per address."""

    def __init__(self, db_path: Path | None, arp_path: str = ARP_PATH,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.db_path, self.arp_path = db_path, arp_path
        self.clock, self.wall = clock, wall
        self.lock = threading.Lock()
        self._cache: dict[str, tuple[float, str | None]] = {}  # ip -> (until, mac)
        self._arp: dict[str, str] = {}
        self._arp_read = float("-inf")
        self._rereads = (0.0, 0)  # (second, re-reads in it)
        self._conn: sqlite3.Connection | None = None

    def mac_for(self, ip: str | None) -> str | None:
        if not ip:
            return None
        now = self.clock()
        hit = self._cache.get(ip)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.lock:
            mac, fresh = self._lookup(ip, now)
            if mac is not None or fresh:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                self._cache[ip] = (now + CACHE_SECONDS, mac)
        return mac

    def _lookup(self, ip: str, now: float) -> tuple[str | None, bool]:
        """The MAC, and whether the neighbour table it was looked up in is current."""
        neighbour = self._arp.get(ip)
        fresh = now == self._arp_read
        if now - self._arp_read >= CACHE_SECONDS or (neighbour is None and self._may_reread(now)):
            self._arp, self._arp_read, fresh = read_neighbours(self.arp_path), now, True
            neighbour = self._arp.get(ip)
        leased = self._leased(ip)
        if neighbour and leased and neighbour != leased:
            return None, fresh  # an address we leased to another machine: trust neither
        return neighbour or leased, fresh or neighbour is not None

    def _may_reread(self, now: float) -> bool:
        second, n = self._rereads
        if now - second >= 1.0:
            second, n = now, 0
        if n >= REREADS_PER_SECOND:
            return False
        self._rereads = (second, n + 1)
        return True

    def _leased(self, ip: str) -> str | None:
        """The MAC holding a bound, unexpired lease of ours on `ip` (full mode)."""
        if self.db_path is None:
            return None
        try:
            if self._conn is None:
                if not self.db_path.exists():
                    return None  # never create a state database just to look
                self._conn = store.connect(self.db_path)
            row = self._conn.execute(
                "SELECT mac FROM dhcp_leases WHERE ip = ? AND state = 'bound' AND expires > ?",
                (ip, self.wall())).fetchone()
        except sqlite3.Error:
            return None  # no lease table (proxy mode, DHCP off) or a busy database: no lease
        return str(row[0]) if row else None


_ATTRIBUTORS: dict[str, Attributor] = {}
_LOCK = threading.Lock()


def for_config(cfg: Config) -> Attributor:
    """One attributor per state database in this process (its cache is shared by callers)."""
    key = str(cfg.db_path)
    with _LOCK:
        a = _ATTRIBUTORS.get(key)
        if a is None:
            a = _ATTRIBUTORS[key] = Attributor(cfg.db_path)
    return a
