"""Address pools and the lease store: in memory for speed, SQLite (WAL) for durability.

Every lookup is a dict hit (by MAC, by address) and every change is one indexed row write,
so the cost of a lease does not grow with the number of leases (unlike a server that rewrites
its whole lease file on every change). Writes queue up and `commit()` writes them in one
transaction; the server commits before it sends the ACKs of a batch, so a granted lease is on
disk before the client hears of it (the service opens the database with synchronous=FULL:
README, "Leases").

Offers live in memory only, are held `offer_hold` seconds, and are capped (`max_offers`, the
oldest reclaimed first); a full pool reclaims the oldest unanswered offer before it gives up,
so DISCOVERs that are never followed by a REQUEST (a spoofed-MAC flood) cannot empty a pool
(docs/SECURITY.md, "DHCP on a network that is not ours").
"""

from __future__ import annotations

import ipaddress
import socket
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pxetui.dhcp.committer import QueuedWrites
from pxetui.store import ensure_schema

LEASES_DDL = """
CREATE TABLE IF NOT EXISTS dhcp_leases (
    ip TEXT PRIMARY KEY,
    mac TEXT NOT NULL,
    expires REAL NOT NULL,
    state TEXT NOT NULL,      -- bound | declined
    hostname TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dhcp_leases_mac ON dhcp_leases(mac);
"""

OFFER_HOLD = 15.0  # default seconds an offered address stays set aside (dhcp.limits.offer_hold_seconds)
MAX_OFFERS = 8192  # default cap on outstanding offers (dhcp.limits.max_offers)
DECLINE_QUARANTINE = 600.0  # RFC 2131 3.1.5: a declined address is in use by someone; keep off it
SWEEP_INTERVAL = 5.0  # at most one scan for expired leases per pool this often, only when empty


@dataclass(slots=True)
class Lease:
    ip: int
    mac: str
    expires: float
    state: str  # offered | bound | expired | declined
    hostname: str | None = None

    @property
    def address(self) -> str:
        return socket.inet_ntoa(self.ip.to_bytes(4, "big"))


@dataclass
class Pool:
    """A dynamic range in one subnet; `router` is option 3 for clients of this pool."""

    name: str
    network: ipaddress.IPv4Network
    start: int
    end: int
    router: str | None = None
    free: deque[int] = field(default_factory=deque)
    last_sweep: float = 0.0
    first: int = 0  # the subnet's first and last address, for integer range checks
    last: int = 0

    def __post_init__(self) -> None:
        self.first = int(self.network.network_address)
        self.last = int(self.network.broadcast_address)

    def on_subnet(self, ip: int) -> bool:
        return self.first <= ip <= self.last

    def __contains__(self, ip: int) -> bool:
        return self.start <= ip <= self.end

    @property
    def size(self) -> int:
        return self.end - self.start + 1


class LeaseStore(QueuedWrites):
    def __init__(self, conn: sqlite3.Connection, pools: list[Pool], reserved: dict[str, int],
                 exclude: set[int] | None = None, offer_hold: float = OFFER_HOLD,
                 max_offers: int = MAX_OFFERS) -> None:
        self.conn = conn
        self.offer_hold, self.max_offers = offer_hold, max_offers
        # told of every offer taken back before its client answered: (why, the offer);
        # why is "cap" (max_offers reached) or "pool" (its pool was full)
        self.on_reclaim: Callable[[str, Lease], None] = lambda why, lease: None
        self.pools = pools
        self.reserved = reserved  # mac -> fixed address
        self.reserved_ips = set(reserved.values())
        self.exclude = exclude or set()  # never handed out dynamically (our own address)
        self.by_mac: dict[str, Lease] = {}
        self.by_ip: dict[int, Lease] = {}
        self.offers: dict[str, Lease] = {}  # in memory only, oldest first: an offer is not a lease
        self.pending = []
        ensure_schema(conn, LEASES_DDL)
        self._load()

    # -- startup ---------------------------------------------------------------------------
    def _load(self) -> None:
        now = time.time()
        for row in self.conn.execute("SELECT ip, mac, expires, state, hostname FROM dhcp_leases"):
            try:
                ip = int(ipaddress.IPv4Address(row[0]))
            except ValueError:
                continue
            lease = Lease(ip, row[1], row[2], row[3], row[4])
            if lease.state == "bound" and lease.expires <= now:
                lease.state = "expired"  # ran out while we were down: kept for its client
            self.by_ip[ip] = lease
            if lease.state in ("bound", "expired"):
                self.by_mac[lease.mac] = lease
        for pool in self.pools:
            pool.free.extend(ip for ip in range(pool.start, pool.end + 1)
                             if ip not in self.by_ip and self._dynamic(ip))

    def _dynamic(self, ip: int) -> bool:
        return ip not in self.reserved_ips and ip not in self.exclude

    def pool_for(self, ip: int) -> Pool | None:
        for pool in self.pools:
            if ip in pool:
                return pool
        return None

    def restored(self, now: float) -> list[Lease]:
        return [lease for lease in self.by_mac.values() if lease.expires > now]

    def expired(self, now: float) -> list[Lease]:
        """Bound leases that ran out since the last call, each reported once. The address
        stays with its client until someone else needs it (RFC 2131 4.3.1 prefers that)."""
        out = []
        for lease in self.by_mac.values():
            if lease.state == "bound" and lease.expires <= now:
                lease.state = "expired"
                out.append(lease)
        return out

    # -- queries ---------------------------------------------------------------------------
    def lease_of(self, mac: str) -> Lease | None:
        return self.by_mac.get(mac)

    def holder(self, ip: int, now: float) -> str | None:
        """The MAC that holds `ip` now (bound, offered or quarantined as ''), or None."""
        lease = self.by_ip.get(ip)
        if lease is None or lease.expires <= now:
            return None
        return lease.mac

    def knows(self, mac: str) -> bool:
        """Do we hold a record of `mac`: a lease (running or expired), an offer or a reservation?
        RFC 2131 4.3.2: an INIT-REBOOT from a client we have no record of gets no answer, and
        a new client is charged the new-offer limit (docs/SECURITY.md)."""
        return mac in self.by_mac or mac in self.offers or mac in self.reserved

    def ours(self, ip: int) -> bool:
        """Is `ip` an address we answer for: in one of our pools, reserved by us, or on record
        (a lease from an earlier range)? Anything else belongs to another server, and RFC 2131
        4.3.2 wants us silent about it (docs/SECURITY.md)."""
        return ip in self.by_ip or ip in self.reserved_ips or self.pool_for(ip) is not None

    def allowed(self, ip: int, mac: str) -> bool:
        """Could `mac` ever have `ip`: its reservation, or a dynamic address of a pool."""
        fixed = self.reserved.get(mac)
        if fixed is not None:
            return ip == fixed
        return self._dynamic(ip) and self.pool_for(ip) is not None

    def usable_by(self, ip: int, mac: str, now: float) -> bool:
        """May `mac` have `ip`? Its reservation, or a free dynamic address, or its own lease."""
        if not self.allowed(ip, mac):
            return False
        # even a reserved address waits while an older lease of another client runs
        holder = self.holder(ip, now)
        return holder is None or holder == mac

    # -- allocation ------------------------------------------------------------------------
    def offer(self, mac: str, pool: Pool, requested: int | None, now: float) -> int | None:
        """Choose an address for `mac` in `pool` and hold it; None when the pool is full."""
        fixed = self.reserved.get(mac)
        if fixed is not None:
            ip: int | None = fixed if self.usable_by(fixed, mac, now) else None
        else:
            ip = self._choose(mac, pool, requested, now)
        if ip is None:
            return None
        current = self.by_mac.get(mac)
        if current is not None and current.ip == ip and current.state == "bound" and current.expires > now:
            return ip  # its own running lease: nothing more to hold
        self.drop_offer(mac, keep=ip)
        if len(self.offers) >= self.max_offers:
            self._reclaim("cap", None, mac)
        lease = Lease(ip, mac, now + self.offer_hold, "offered")
        self.by_ip[ip] = lease
        self.offers[mac] = lease
        return ip

    def _reclaim(self, why: str, pool: Pool | None, mac: str) -> int | None:
        """Take back the oldest offer (of `pool`, when given) made to another client than
        `mac`; its address, or None when there is none. The address returns to the free
        list unless the caller takes it (pool)."""
        for other, lease in self.offers.items():
            if other != mac and (pool is None or (lease.ip in pool and self._dynamic(lease.ip)
                                                  and self.by_ip.get(lease.ip) is lease)):
                break
        else:
            return None
        del self.offers[other]
        if self.by_ip.get(lease.ip) is lease:
            del self.by_ip[lease.ip]
            if pool is None:
                self._free(lease.ip)
        self.on_reclaim(why, lease)
        return lease.ip

    def drop_offers(self) -> int:
        """Forget every outstanding offer (we stopped handing out addresses); how many."""
        n = len(self.offers)
        for mac in list(self.offers):
            self.drop_offer(mac)
        return n

    def drop_offer(self, mac: str, keep: int | None = None) -> None:
        old = self.offers.pop(mac, None)
        if old is not None and old.ip != keep and self.by_ip.get(old.ip) is old:
            del self.by_ip[old.ip]
            self._free(old.ip)

    def _choose(self, mac: str, pool: Pool, requested: int | None, now: float) -> int | None:
        for current in (self.by_mac.get(mac), self.offers.get(mac)):
            if current is not None and current.ip in pool and self.usable_by(current.ip, mac, now):
                return current.ip  # RFC 2131 4.3.1: prefer the client's current or last address
        if requested is not None and requested in pool and self.usable_by(requested, mac, now):
            return requested
        for _ in range(2):
            while pool.free:
                ip = pool.free.popleft()
                if self.holder(ip, now) is None and self._dynamic(ip):
                    return ip
            if not self._sweep(pool, now):
                break
        # Full: an offer nobody answered yet is worth less than a client asking now
        # (docs/SECURITY.md: 10 spoofed DISCOVERs must not empty a 10-address pool).
        return self._reclaim("pool", pool, mac)

    def _sweep(self, pool: Pool, now: float) -> bool:
        """Return expired addresses of `pool` to its free list; only runs when the pool is empty."""
        if now - pool.last_sweep < SWEEP_INTERVAL:
            return False
        pool.last_sweep = now
        found = False
        for ip, lease in list(self.by_ip.items()):
            if ip in pool and lease.expires <= now:
                del self.by_ip[ip]
                for table in (self.by_mac, self.offers):
                    if table.get(lease.mac) is lease:
                        del table[lease.mac]
                if self._dynamic(ip):
                    pool.free.append(ip)
                    found = True
        return found

    def _free(self, ip: int) -> None:
        pool = self.pool_for(ip)
        if pool is not None and self._dynamic(ip):
            pool.free.append(ip)

    # -- state changes (queued; written by commit) ----------------------------------------
    def bind(self, mac: str, ip: int, lease_time: int, hostname: str | None, now: float,
             selecting: bool = False) -> Lease | None:
        """Bind `ip` to `mac`; None when `usable_by` says no (the caller NAKs).

        `selecting`: the client answers an offer of ours (option 54 is ours). It may then take
        an address that is only offered to another client: its own offer of it may have been
        reclaimed for that client while the pool was full, and the first to REQUEST wins."""
        if not self.usable_by(ip, mac, now):
            current = self.by_ip.get(ip)
            if not (selecting and current is not None and current.state == "offered"
                    and self.allowed(ip, mac)):
                return None
            if self.offers.get(current.mac) is current:
                del self.offers[current.mac]
            del self.by_ip[ip]
        self.drop_offer(mac, keep=ip)
        old = self.by_mac.get(mac)
        if old is not None and old.ip != ip and self.by_ip.get(old.ip) is old:
            del self.by_ip[old.ip]
            self._free(old.ip)
            if old.state == "bound":
                self.pending.append(("DELETE FROM dhcp_leases WHERE ip=? AND mac=?",
                                     (old.address, mac)))
        lease = Lease(ip, mac, now + lease_time, "bound", hostname)
        self.by_mac[mac] = lease
        self.by_ip[ip] = lease
        self.pending.append((
            "INSERT OR REPLACE INTO dhcp_leases(ip, mac, expires, state, hostname, updated)"
            " VALUES (?,?,?,?,?,?)",
            (lease.address, mac, lease.expires, "bound", hostname, now)))
        return lease

    def release(self, mac: str, ip: int) -> str | None:
        """RFC 2131 4.3.4: the holder gives its lease back. None when done, else why not
        (nothing changed): only the MAC that holds the lease on `ip` may release it."""
        lease = self.by_ip.get(ip)
        if lease is None or lease.state not in ("bound", "expired"):
            return "no lease of ours on that address"
        if lease.mac != mac:
            return "the lease on that address is another client's"
        del self.by_ip[ip]
        if self.by_mac.get(mac) is lease:
            del self.by_mac[mac]
        self._free(ip)
        self.pending.append(("DELETE FROM dhcp_leases WHERE ip=?", (lease.address,)))
        return None

    def decline(self, mac: str, ip: int, now: float) -> str | None:
        """RFC 2131 4.3.3: the client found `ip` in use; quarantine it. None when done, else
        why not (nothing changed). Only the MAC holding a running lease on `ip` may decline
        it: RFC 2131 3.1.5 has a client decline after the ACK, and accepting a DECLINE of a mere
        offer would let a spoofed DISCOVER+DECLINE turn a 15 s offer into a quarantine of
        DECLINE_QUARANTINE (docs/SECURITY.md)."""
        lease = self.by_ip.get(ip)
        if lease is None or lease.state != "bound" or lease.expires <= now:
            return "no running lease of ours on that address"
        if lease.mac != mac:
            return "the lease on that address is another client's"
        if self.by_mac.get(mac) is lease:
            del self.by_mac[mac]
        q = Lease(ip, "", now + DECLINE_QUARANTINE, "declined")
        self.by_ip[ip] = q
        self.pending.append((
            "INSERT OR REPLACE INTO dhcp_leases(ip, mac, expires, state, hostname, updated)"
            " VALUES (?,?,?,?,?,?)", (q.address, "", q.expires, "declined", None, now)))
        return None
