"""DHCPv6 address bindings (RFC 8415 section 6: an IA_NA binding is keyed by the client's DUID
and the IAID): in memory for speed, SQLite (`dhcp6_leases`) for durability, as the IPv4
store (pxetui/dhcp/leases.py) does.

The pool can be as large as a /64, so there is no free list: a cursor walks the range and a
bounded number of probes finds the next address nobody holds. Advertised (offered) addresses
live in memory only, are held `offer_hold` seconds and are capped (`max_offers`, the oldest
dropped first), so Solicits that are never followed by a Request cannot empty the pool
(docs/SECURITY.md, "DHCP on a network that is not ours"). One client (DUID) holds at most
`per_client` IAs, offered or bound: a new IAID past that takes the place of the client's least
recently used one, so new IAIDs from one DUID never add up.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pxetui.dhcp.committer import QueuedWrites
from pxetui.store import ensure_schema

LEASES6_DDL = """
CREATE TABLE IF NOT EXISTS dhcp6_leases (
    ip TEXT PRIMARY KEY,
    duid TEXT NOT NULL,       -- hex, or '' for a quarantined (declined) address
    iaid INTEGER NOT NULL,
    mac TEXT,
    expires REAL NOT NULL,
    state TEXT NOT NULL,      -- bound | declined
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dhcp6_leases_duid ON dhcp6_leases(duid, iaid);
"""

DECLINE_QUARANTINE = 600.0  # RFC 8415 section 18.3.8: a declined address is in use; keep off it
MAX_PROBES = 65536  # addresses looked at per allocation before the pool counts as full
# IAs (offered or bound) one DUID holds. Firmware uses one IA_NA per exchange but a new IAID per
# exchange (OVMF: the stack's, then PXE's; docs/FIELD-NOTES.md), and may reboot without a
# Release: past the cap the client's least recently used IA makes room, never another client's.
MAX_IAS_PER_CLIENT = 4

Key = tuple[str, int]  # (DUID hex, IAID)


@dataclass(slots=True)
class Lease6:
    ip: int
    duid: str
    iaid: int
    expires: float
    state: str  # offered | bound | expired | declined
    mac: str | None = None

    @property
    def address(self) -> str:
        return str(ipaddress.IPv6Address(self.ip))

    @property
    def key(self) -> Key:
        return (self.duid, self.iaid)


class LeaseStore6(QueuedWrites):
    def __init__(self, conn: sqlite3.Connection, start: int, end: int,
                 exclude: set[int] | None = None, offer_hold: float = 15.0,
                 max_offers: int = 8192, per_client: int = MAX_IAS_PER_CLIENT) -> None:
        self.conn, self.start, self.end = conn, start, end
        self.exclude = exclude or set()  # never handed out (our own address)
        self.offer_hold, self.max_offers, self.per_client = offer_hold, max_offers, per_client
        self.by_key: dict[Key, Lease6] = {}
        self.by_ip: dict[int, Lease6] = {}
        self.offers: OrderedDict[Key, Lease6] = OrderedDict()  # oldest first
        # DUID -> the IAIDs it holds (an offer or a binding), least recently used first
        self.iaids: dict[str, OrderedDict[int, None]] = {}
        # told of each IA taken from its client to make room for a newer one (per_client)
        self.on_evict: Callable[[Lease6], None] = lambda lease: None
        self.pending = []
        self.cursor = start
        ensure_schema(conn, LEASES6_DDL)
        self._load()

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def _load(self) -> None:
        now = time.time()
        for row in self.conn.execute("SELECT ip, duid, iaid, mac, expires, state FROM dhcp6_leases"):
            try:
                ip = int(ipaddress.IPv6Address(row[0]))
            except ValueError:
                continue
            lease = Lease6(ip, row[1], row[2], row[4], row[5], row[3])
            if lease.state == "bound" and lease.expires <= now:
                lease.state = "expired"  # ran out while we were down: kept for its client
            self.by_ip[ip] = lease
            if lease.state in ("bound", "expired"):
                self.by_key[lease.key] = lease
        for lease in sorted(self.by_key.values(), key=lambda le: le.expires):
            self._touch(lease.key)

    def restored(self, now: float) -> list[Lease6]:
        return [lease for lease in self.by_key.values() if lease.expires > now]

    def expired(self, now: float) -> list[Lease6]:
        """Bound leases that ran out since the last call, each reported once."""
        out = []
        for lease in self.by_key.values():
            if lease.state == "bound" and lease.expires <= now:
                lease.state = "expired"
                out.append(lease)
        return out

    # -- queries ---------------------------------------------------------------------------
    def in_pool(self, ip: int) -> bool:
        return self.start <= ip <= self.end and ip not in self.exclude

    def knows(self, duid: str) -> bool:
        """Does the client `duid` hold an offer or a binding of ours?"""
        return duid in self.iaids

    def binding(self, key: Key) -> Lease6 | None:
        return self.by_key.get(key)

    def holder(self, ip: int, now: float) -> Key | None:
        """Who holds `ip` now (bound, offered, or ('', 0) while quarantined), or None."""
        lease = self.by_ip.get(ip)
        if lease is None or lease.expires <= now:
            return None
        return lease.key

    def usable_by(self, ip: int, key: Key, now: float) -> bool:
        if not self.in_pool(ip):
            return False
        holder = self.holder(ip, now)
        return holder is None or holder == key

    # -- allocation ------------------------------------------------------------------------
    def offer(self, key: Key, mac: str | None, hint: int | None, now: float) -> int | None:
        """An address for the IA `key`, held `offer_hold` seconds; None when the pool is full.
        Its binding's address first, then its earlier offer, then the address it asks for
        (RFC 8415 section 18.3.1 lets the server honour the hint), then the next free one."""
        ip = self._choose(key, hint, now)
        if ip is None:
            return None
        current = self.by_key.get(key)
        if current is not None and current.ip == ip and current.state == "bound" and current.expires > now:
            self._touch(key)
            return ip  # its own running binding: nothing more to hold
        self._make_room(key)
        self.drop_offer(key, keep=ip)
        while len(self.offers) >= self.max_offers:
            old_key, old = self.offers.popitem(last=False)
            if self.by_ip.get(old.ip) is old:
                del self.by_ip[old.ip]
            self._untrack(old_key)
        lease = Lease6(ip, key[0], key[1], now + self.offer_hold, "offered", mac)
        self.by_ip[ip] = lease
        self.offers[key] = lease
        self._touch(key)
        return ip

    def drop_offer(self, key: Key, keep: int | None = None) -> None:
        old = self.offers.pop(key, None)
        if old is not None and old.ip != keep and self.by_ip.get(old.ip) is old:
            del self.by_ip[old.ip]
        self._untrack(key)

    # -- IAs per client (MAX_IAS_PER_CLIENT) ------------------------------------------------
    def _touch(self, key: Key) -> None:
        ids = self.iaids.setdefault(key[0], OrderedDict())
        ids[key[1]] = None
        ids.move_to_end(key[1])

    def _untrack(self, key: Key) -> None:
        if key in self.by_key or key in self.offers:
            return
        ids = self.iaids.get(key[0])
        if ids is not None:
            ids.pop(key[1], None)
            if not ids:
                del self.iaids[key[0]]

    def _make_room(self, key: Key) -> None:
        """Before `key` is offered or bound: a client already holding `per_client` other IAs
        gives up its least recently used one (one DUID must not hold the pool, RFC 8415 leaves
        the number of IAs to the server; docs/SECURITY.md)."""
        ids = self.iaids.get(key[0])
        while ids and key[1] not in ids and len(ids) >= self.per_client:
            oldest = (key[0], next(iter(ids)))
            self.drop_offer(oldest)
            lease = self.by_key.get(oldest)
            if lease is not None:
                self._forget(lease)
                self.on_evict(lease)
            ids.pop(oldest[1], None)  # untracked by now; never loop on it

    def _choose(self, key: Key, hint: int | None, now: float) -> int | None:
        for current in (self.by_key.get(key), self.offers.get(key)):
            if current is not None and self.usable_by(current.ip, key, now):
                return current.ip
        if hint is not None and self.usable_by(hint, key, now):
            return hint
        ip = self.cursor
        for _ in range(min(self.size, MAX_PROBES)):
            here = ip
            ip = ip + 1 if ip < self.end else self.start
            if here in self.exclude:
                continue
            lease = self.by_ip.get(here)
            if lease is None or lease.expires <= now:
                if lease is not None:  # an expired lease gives its address up only now
                    self._forget(lease)
                self.cursor = ip
                return here
        # Full: an offer nobody answered yet is worth less than a client asking now.
        for other, lease in self.offers.items():
            if other != key and self.by_ip.get(lease.ip) is lease:
                del self.offers[other]
                del self.by_ip[lease.ip]
                self._untrack(other)
                return lease.ip
        return None

    def _forget(self, lease: Lease6) -> None:
        if self.by_ip.get(lease.ip) is lease:
            del self.by_ip[lease.ip]
        if self.by_key.get(lease.key) is lease:
            del self.by_key[lease.key]
        if self.offers.get(lease.key) is lease:
            del self.offers[lease.key]
        self._untrack(lease.key)
        if lease.state in ("bound", "expired", "declined"):
            self.pending.append(("DELETE FROM dhcp6_leases WHERE ip=?", (lease.address,)))

    # -- state changes (queued; written by commit) ----------------------------------------
    def bind(self, key: Key, mac: str | None, ip: int, valid: int, now: float) -> Lease6 | None:
        """Bind `ip` to the IA `key` for `valid` seconds; None when another holds it."""
        if not self.usable_by(ip, key, now):
            current = self.by_ip.get(ip)
            # the first Request wins an address only advertised to another client
            if current is None or current.state != "offered" or not self.in_pool(ip):
                return None
            self.offers.pop(current.key, None)
            del self.by_ip[ip]
            self._untrack(current.key)
        self._make_room(key)
        self.drop_offer(key, keep=ip)
        old = self.by_key.get(key)
        if old is not None and old.ip != ip and self.by_ip.get(old.ip) is old:
            del self.by_ip[old.ip]
            self.pending.append(("DELETE FROM dhcp6_leases WHERE ip=?", (old.address,)))
        lease = Lease6(ip, key[0], key[1], now + valid, "bound", mac)
        self.by_key[key] = lease
        self.by_ip[ip] = lease
        self._touch(key)
        self.pending.append((
            "INSERT OR REPLACE INTO dhcp6_leases(ip, duid, iaid, mac, expires, state, updated)"
            " VALUES (?,?,?,?,?,?,?)", (lease.address, key[0], key[1], mac, lease.expires, "bound", now)))
        return lease

    def release(self, key: Key, ip: int) -> str | None:
        """RFC 8415 section 18.3.7: None when released, else why not (nothing changed)."""
        lease = self.by_key.get(key)
        if lease is None or lease.ip != ip:
            return "no binding of this client's IA on that address"
        self._forget(lease)
        return None

    def decline(self, key: Key, ip: int, now: float) -> str | None:
        """RFC 8415 section 18.3.8: quarantine `ip`, only when it is this client's binding."""
        lease = self.by_key.get(key)
        if lease is None or lease.ip != ip:
            return "no binding of this client's IA on that address"
        del self.by_key[key]
        self._untrack(key)
        q = Lease6(ip, "", 0, now + DECLINE_QUARANTINE, "declined")
        self.by_ip[ip] = q
        self.pending.append((
            "INSERT OR REPLACE INTO dhcp6_leases(ip, duid, iaid, mac, expires, state, updated)"
            " VALUES (?,?,?,?,?,?,?)", (q.address, "", 0, None, q.expires, "declined", now)))
        return None
