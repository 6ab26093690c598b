"""The DHCP services' socket loop, shared by DHCPv4 (pxetui/dhcp/service.py) and DHCPv6
(pxetui/dhcp6/service.py): read a batch, handle it, send what promises no lease at once, and
hand the batch's lease changes with the replies that depend on them to the GroupCommitter
(committer.py), which sends those only once the changes are on disk. So an ACK (or a DHCPv6
Reply with a binding) is never on the wire before its lease is written (README, "Leases"),
and the loop that answers never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pxetui.dhcp.committer import GroupCommitter, QueuedWrites
from pxetui.events import LeaseEnded, LeaseGranted
from pxetui.serviceapi import ServiceContext

BATCH = 64  # datagrams handled per wake-up before their replies go out (or to the committer)
# Seconds a socket is left unread after a wake-up that emptied it, so what arrives meanwhile is
# handled as one batch (interrupt moderation, as NICs do): fewer wake-ups, and fewer commits
# (fsyncs), per DORA below saturation, for at most this much more reply latency
# (docs/ARCHITECTURE.md, "Where a DORA's CPU goes"). Clients wait seconds before they resend.
# A burst of replies is still at most BATCH. bench/dhcp, interleaved, CPU per DORA: 1 ms
# against none -22 % at 2,500/s; 5 ms against 1 ms -25 % at 1,500/s; 15 ms against 5 ms
# -15 % at 1,500/s, the same at 4,000/s.
HOLD = 0.015
EXPIRY_CHECK = 10.0  # seconds between scans for leases that ran out (reported as LeaseEnded)

# (host, port) as recvfrom gives it for AF_INET; (host, port, flowinfo, scope_id) for AF_INET6
Address = tuple[Any, ...]
Reply = tuple[bytes, Address]


class Ending(Protocol):
    mac: str | None
    address: str


class Kept(Ending, Protocol):
    expires: float


class Expiring(Protocol):
    def expired(self, now: float) -> Iterable[Ending]: ...


class Restoring(Protocol):
    def restored(self, now: float) -> Iterable[Kept]: ...


def where(dest: Address) -> str:
    return f"[{dest[0]}]:{dest[1]}" if ":" in dest[0] else f"{dest[0]}:{dest[1]}"


class Transport:
    """Drains one socket in batches (see the module docstring). `handle(data, src)` answers one
    datagram and queues its lease changes in `store`; without a store (proxy mode) nothing
    waits for the disk and `committer` may be None."""

    def __init__(self, ctx: ServiceContext, handle: Callable[[bytes, Address], list[Reply]],
                 store: QueuedWrites | None, sock: socket.socket, port: int,
                 committer: GroupCommitter | None, hold: float = HOLD) -> None:
        self.ctx, self.handle, self.store, self.sock, self.port = ctx, handle, store, sock, port
        self.committer = committer
        self.loop = asyncio.get_running_loop()
        self.fd = sock.fileno()
        self.hold = hold
        self._held = False  # the reader is off until _resume
        self._stopped = False
        self._behind_logged = 0.0

    def start(self) -> None:
        self.loop.add_reader(self.fd, self.readable)

    def stop(self) -> None:
        self._stopped = True
        self.loop.remove_reader(self.fd)

    def _resume(self) -> None:
        self._held = False
        if not self._stopped:
            self.loop.add_reader(self.fd, self.readable)

    def readable(self) -> None:
        sock, handle, port, committer = self.sock, self.handle, self.port, self.committer
        store = self.store if committer is not None else None  # without a committer nothing waits
        ready: list[Reply] = []  # answers to requests that changed no lease
        held: list[Reply] = []  # ... that did: they wait for the commit
        emptied = False
        for _ in range(BATCH):
            try:
                data, src = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                emptied = True
                break
            except OSError as exc:
                self.ctx.log(f"receive on port {port} failed: {exc}", "warning")
                break
            before = len(store.pending) if store is not None else 0
            try:
                out = handle(data, src)
            except Exception as exc:  # a bug on one packet must not stop the others' service
                self.ctx.log(f"internal error on a packet from {src[0]}: {exc!r}", "error")
                continue
            (held if store is not None and len(store.pending) > before else ready).extend(out)
        if emptied and self.hold > 0 and not self._held:
            # Nothing more waiting: let the next ones gather for HOLD. A full batch left more
            # queued, so the reader stays on and is called again at once.
            self._held = True
            self.loop.remove_reader(self.fd)
            self.loop.call_later(self.hold, self._resume)
        # OFFERs, Advertises, NAKs, INFORM and proxy answers promise no lease: they go at once,
        # and an OFFER never waits for another client's fsync.
        self.send(ready, self.ctx.log)
        if store is None or committer is None:
            return
        writes = store.take_pending()
        if not writes:
            return
        replies = held
        if not committer.submit(writes, lambda: self.send(replies, self.log_threadsafe), len(replies)):
            # Dropped whole, writes too, so nothing grows while the disk is stuck: a client not
            # answered asks again and is bound again (a RELEASE not written leaves its lease on
            # disk until it expires).
            now = time.monotonic()
            if now - self._behind_logged > 1.0:
                self._behind_logged = now
                self.ctx.log(f"lease database is {committer.waiting} replies behind: "
                             f"{len(replies)} replies and {len(writes)} lease writes dropped "
                             "(the clients retransmit)", "warning")

    def send(self, replies: list[Reply], log: Callable[[str, str], None]) -> None:
        for data, dest in replies:
            try:
                self.sock.sendto(data, dest)
            except OSError as exc:  # full send buffer, unreachable relay: the client retries
                log(f"send to {where(dest)} failed: {exc}", "warning")

    def log_threadsafe(self, message: str, level: str = "info") -> None:
        """ctx.log from the committer's thread: on the loop, which owns the event pipe."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the service is ending
            self.loop.call_soon_threadsafe(self.ctx.log, message, level)


def lease_committer(ctx: ServiceContext, open_db: Callable[[], sqlite3.Connection]) -> GroupCommitter:
    """The lease writer thread; a failed commit is logged on the loop, which owns the event pipe."""
    loop = asyncio.get_running_loop()

    def failed(message: str) -> None:  # on the committer's thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: the service is ending
            loop.call_soon_threadsafe(ctx.log, message, "error")

    return GroupCommitter(open_db, failed)


def announce_restored(ctx: ServiceContext, store: Restoring, server_ip: str, what: str) -> None:
    """At start, a LeaseGranted for each lease the database still holds, and one log line:
    a UI or the tracker learns of leases granted before a restart as of new ones."""
    restored = list(store.restored(time.time()))
    for lease in restored:
        ctx.emit(LeaseGranted(mac=lease.mac, ip=lease.address, expires=lease.expires,
                              hostname=getattr(lease, "hostname", None), server_ip=server_ip))
    if restored:
        ctx.log(f"restored {len(restored)} active {what} from {ctx.config.db_path}")


async def report_expiries(ctx: ServiceContext, store: Expiring) -> None:
    """Every EXPIRY_CHECK seconds, a LeaseEnded for each lease that ran out since the last look."""
    while True:
        await asyncio.sleep(EXPIRY_CHECK)
        for lease in store.expired(time.time()):
            ctx.emit(LeaseEnded(mac=lease.mac, ip=lease.address, reason="expired"))
