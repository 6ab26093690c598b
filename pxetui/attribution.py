"""Which machine (MAC) is behind a source address: what the wire says, never what a URL claims.

A request's `?mac=` is whatever the sender typed, so it decides nothing (docs/SECURITY.md,
"Callbacks and seeds"). The address a TCP peer or a TFTP client uses is attributed by:
  1. the kernel's neighbour table (/proc/net/arp, complete entries; for an IPv6 peer the
     neighbour discovery table, read by one netlink dump, as /proc has no IPv6 form of it): on
     our segment the kernel had to resolve the peer's MAC to answer it, so this works in proxy
     mode and unprivileged;
  2. our DHCP lease store (full mode): the MAC we leased that address to; the only way to
     attribute a relayed client, whose source address is not on our segment. An IPv6 address
     is looked up in the DHCPv6 leases (their MAC, when the client's DUID or relay named one).
Both known and different (someone uses an address we leased to another machine): nothing is
attributed. Lookups are cached for a couple of seconds: this runs for every HTTP request.
"""

from __future__ import annotations

import ipaddress
import socket
import sqlite3
import struct
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

# rtnetlink (<linux/rtnetlink.h>, <linux/neighbour.h>): a dump of the IPv6 neighbour table.
RTM_NEWNEIGH, RTM_GETNEIGH, NLMSG_DONE, NLMSG_ERROR = 28, 30, 3, 2
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NDA_DST, NDA_LLADDR = 1, 2
# A MAC the kernel has confirmed or had (REACHABLE, STALE, DELAY, PROBE, PERMANENT); not
# INCOMPLETE or FAILED, whose address never answered.
NUD_KNOWN = 0x02 | 0x04 | 0x08 | 0x10 | 0x80
DUMP_MAX_BYTES = 8 << 20  # a dump is read up to this much: bounded whatever the table holds
DUMP_TIMEOUT = 1.0


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


def read_neighbours6() -> dict[str, str]:
    """IPv6 -> MAC of the neighbour entries with a known MAC (this process's netns); empty on
    any error (no netlink, a truncated reply): attribution then falls back to our leases."""
    out: dict[str, str] = {}
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
            nl.settimeout(DUMP_TIMEOUT)
            ndmsg = struct.pack("=BxxxiHBB", socket.AF_INET6, 0, 0, 0, 0)
            nl.send(struct.pack("=IHHII", 16 + len(ndmsg), RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
                    + ndmsg)
            read = 0
            while read < DUMP_MAX_BYTES:
                data = nl.recv(1 << 16)
                read += len(data)
                if not data or _parse_neighbours(data, out):
                    return out
    except OSError:
        return {}
    return out


def _parse_neighbours(data: bytes, out: dict[str, str]) -> bool:
    """Add one netlink reply's entries to `out`; True at the end of the dump."""
    pos = 0
    while pos + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, pos)
        if length < 16 or pos + length > len(data):
            return True  # malformed: stop rather than guess
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if kind == RTM_NEWNEIGH and length >= 28:
            family, _ifindex, state = struct.unpack_from("=BxxxiH", data, pos + 16)
            attrs = _attributes(data, pos + 28, pos + length)
            dst, mac = attrs.get(NDA_DST), attrs.get(NDA_LLADDR)
            if (family == socket.AF_INET6 and state & NUD_KNOWN and dst is not None and len(dst) == 16
                    and mac is not None and len(mac) == 6 and any(mac)):
                out[socket.inet_ntop(socket.AF_INET6, dst)] = ":".join(f"{b:02x}" for b in mac)
        pos += (length + 3) & ~3
    return False


def _attributes(data: bytes, pos: int, end: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    while pos + 4 <= end:
        alen, atype = struct.unpack_from("=HH", data, pos)
        if alen < 4 or pos + alen > end:
            break
        attrs[atype & 0x3FFF] = data[pos + 4:pos + alen]
        pos += (alen + 3) & ~3
    return attrs


class Attributor:
    """IP -> MAC by neighbour table and lease store, cached per address."""

    def __init__(self, db_path: Path | None, arp_path: str = ARP_PATH,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 nd6: Callable[[], dict[str, str]] | None = None) -> None:
        self.db_path, self.arp_path = db_path, arp_path
        self.nd6 = nd6 or read_neighbours6
        self._nd: dict[str, str] = {}  # the IPv6 table, re-read by the same rules as _arp
        self._nd_read = float("-inf")
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
        v6 = ":" in ip
        table, read_at = (self._nd, self._nd_read) if v6 else (self._arp, self._arp_read)
        neighbour = table.get(ip)
        fresh = now == read_at
        if now - read_at >= CACHE_SECONDS or (neighbour is None and self._may_reread(now)):
            fresh = True
            if v6:
                self._nd, self._nd_read = self.nd6(), now
                neighbour = self._nd.get(ip)
            else:
                self._arp, self._arp_read = read_neighbours(self.arp_path), now
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
            if ":" in ip:  # stored as str(IPv6Address): the same canonical text (RFC 5952)
                row = self._conn.execute(
                    "SELECT mac FROM dhcp6_leases WHERE ip = ? AND state = 'bound' AND expires > ?"
                    " AND mac IS NOT NULL", (str(ipaddress.IPv6Address(ip)), self.wall())).fetchone()
            else:
                row = self._conn.execute(
                    "SELECT mac FROM dhcp_leases WHERE ip = ? AND state = 'bound' AND expires > ?",
                    (ip, self.wall())).fetchone()
        except (sqlite3.Error, ValueError):
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
