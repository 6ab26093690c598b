"""The DHCP service: guard, decide the mode (probe in auto mode), bind, serve.

Sockets are bound to the one configured interface with SO_BINDTODEVICE, so a packet from any
other interface never reaches us and no reply leaves by another one (docs/SECURITY.md).
Every socket the service will ever need (67; 4011, also in full mode, for a later switch to
proxyDHCP; 68 in full mode, to hear other servers: watch.py) is bound before `ctx.ready()`
drops root. Each wake-up drains a batch of datagrams and handles them; one that empties the
socket leaves it unread for HOLD, so the next ones make a batch too. Answers to requests
that changed no lease (OFFERs, NAKs, INFORM, proxyDHCP) go at once; the batch's lease changes
and the answers that depend on them (ACKs) go to the GroupCommitter (committer.py), whose
thread writes the changes of every batch waiting in one transaction (synchronous=FULL:
fsync'd) and only then sends those answers: an ACK is never on the wire before its lease is
on disk (README, "Leases"), and the loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import os
import socket
import sqlite3
import time
from collections.abc import Callable

from pxetui import store as dbstore
from pxetui.config import Config, parse_range
from pxetui.dhcp.answer import AnswerUrls
from pxetui.dhcp.committer import GroupCommitter
from pxetui.dhcp.leases import LeaseStore, Pool
from pxetui.dhcp.policy import BootPolicy
from pxetui.dhcp.probe import probe
from pxetui.dhcp.server import CLIENT_PORT, PXE_PORT, SERVER_PORT, DhcpServer
from pxetui.dhcp.watch import ForeignWatch
from pxetui.events import DhcpModeDecided, ForeignDhcpServer, LeaseEnded, LeaseGranted, ServiceState
from pxetui.safety import check_netns_guard
from pxetui.serviceapi import ServiceContext

BATCH = 64  # datagrams handled per wake-up before their replies go out (or to the committer)
# Seconds a socket is left unread after a wake-up that emptied it, so what arrives meanwhile is
# handled as one batch (interrupt moderation, as NICs do): fewer wake-ups, and fewer commits,
# per DORA below saturation, for at most this much more reply latency (docs/ARCHITECTURE.md,
# "Where a DORA's CPU goes"). Clients wait seconds for an answer; a millisecond is nothing.
HOLD = 0.001
EXPIRY_CHECK = 10.0  # seconds between scans for leases that ran out (reported as LeaseEnded)
# Room for a few hundred ms of a boot storm: enough to ride out a stall (a WAL checkpoint,
# a busy CPU), short of the 1-4 s after which clients retransmit and late answers are waste.
# Measured: at the default cap (net.core.rmem_max, ~200 KB) a 3,000 DORA/s run lost 10 %
# of its requests to full queues; SO_RCVBUFFORCE (root) lifts the cap.
RCVBUF = 2 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; Python 3.11 lacks the name


def open_socket(interface: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:  # not root: the kernel caps it at net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def build_pools(cfg: Config) -> list[Pool]:
    """The interface's own pool first (index 0 serves unrelayed clients), then relay pools."""
    start, end = parse_range(cfg.dhcp.range)
    pools = [Pool("main", cfg.network, int(start), int(end), cfg.dhcp.router)]
    for rp in cfg.dhcp.relay_pools:
        s, e = parse_range(rp.range)
        pools.append(Pool(rp.subnet, ipaddress.IPv4Network(rp.subnet), int(s), int(e), rp.router))
    return pools


def open_store(cfg: Config, conn: sqlite3.Connection) -> LeaseStore:
    reserved = {r.mac: int(ipaddress.IPv4Address(r.ip)) for r in cfg.dhcp.reservations if r.ip}
    lim = cfg.dhcp.limits
    return LeaseStore(conn, build_pools(cfg), reserved, exclude={int(ipaddress.IPv4Address(cfg.server_ip))},
                      offer_hold=lim.offer_hold_seconds, max_offers=lim.max_offers)


def open_lease_db(cfg: Config) -> sqlite3.Connection:
    """The lease database, with every commit fsync'd (synchronous=FULL, this connection only):
    a lease we ACKed survives a power cut, not only a crash (README, "Leases")."""
    conn = dbstore.connect(cfg.db_path)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def bind_sockets(ctx: ServiceContext, mode: str) -> dict[int, socket.socket]:
    """Every port the service may need, while still root: 67; 4011 (proxy mode serves it; full
    mode binds it too, so a switch to proxy needs no privileged bind); 68 in full mode to hear
    other servers. In full mode 4011 and 68 are best effort (a warning when taken)."""
    iface = ctx.config.interface
    socks = {SERVER_PORT: open_socket(iface, SERVER_PORT)}
    try:
        extra = [PXE_PORT] + ([CLIENT_PORT] if mode == "full" else [])
        for port in extra:
            try:
                socks[port] = open_socket(iface, port)
            except OSError as exc:
                if mode != "full":
                    raise
                what = ("a later switch to proxyDHCP will not answer on port 4011" if port == PXE_PORT
                        else "another DHCP server that appears will only be seen by capture")
                ctx.log(f"cannot bind UDP port {port} on {iface} ({exc}): {what}", "warning")
    except OSError:
        for sock in socks.values():
            sock.close()
        raise
    return socks


async def decide_mode(ctx: ServiceContext) -> str:
    """auto: probe, proxy if someone answers; full: probe and refuse if someone answers."""
    cfg = ctx.config
    mode, secs = cfg.dhcp.mode, cfg.dhcp.probe_seconds
    if mode in ("off", "proxy"):
        ctx.emit(DhcpModeDecided(mode=mode, reason=f"dhcp.mode is {mode}"))
        return mode
    if secs <= 0:
        ctx.emit(DhcpModeDecided(mode="full", reason=f"dhcp.mode is {mode}, probe disabled"))
        return "full"
    ctx.log(f"probing {cfg.interface} for another DHCP server ({secs:g} s)")
    try:
        offers = await asyncio.to_thread(probe, cfg.interface, secs)
    except OSError as exc:
        # Could not look (port 68 taken by a DHCP client on this interface, ...): never hand
        # out addresses blind. proxyDHCP only adds boot information, so it is the safe choice.
        reason = f"could not probe {cfg.interface} for another DHCP server ({exc})"
        if mode == "auto":
            ctx.emit(DhcpModeDecided(mode="proxy", reason=f"{reason}: proxyDHCP to be safe"))
            ctx.log(f"{reason}: serving proxyDHCP to be safe", "warning")
            return "proxy"
        ctx.emit(DhcpModeDecided(mode="off", reason=f"{reason}: refusing full DHCP"))
        ctx.log(f"{reason}: refusing full DHCP", "error")
        return "off"
    for offer in offers:
        ctx.emit(ForeignDhcpServer(server_ip=offer.server_ip, ip=offer.sender,
                                   offered=offer.offered, boot_file=offer.boot_file))
    if not offers:
        ctx.emit(DhcpModeDecided(mode="full", reason=f"no DHCP server answered on {cfg.interface} within {secs:g} s"))
        ctx.log(f"no other DHCP server on {cfg.interface}: serving full DHCP")
        return "full"
    other = offers[0].server_ip
    if mode == "auto":
        reason = f"DHCP server {other} answers on {cfg.interface}: adding boot information only"
        ctx.emit(DhcpModeDecided(mode="proxy", reason=reason, other_server=other))
        ctx.log(f"proxyDHCP: {reason}", "warning")
        return "proxy"
    reason = f"dhcp.mode is full but DHCP server {other} answers on {cfg.interface}: refusing to serve"
    ctx.emit(DhcpModeDecided(mode="off", reason=reason, other_server=other))
    ctx.log(reason, "error")
    return "off"


class Transport:
    """Drains a socket in batches; the batch's lease changes go to the GroupCommitter, which
    sends the replies that depend on them once they are on disk (see the module docstring)."""

    def __init__(self, ctx: ServiceContext, server: DhcpServer, sock: socket.socket, port: int,
                 committer: GroupCommitter, hold: float = HOLD) -> None:
        self.ctx, self.server, self.sock, self.port = ctx, server, sock, port
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
        sock, handle, port, store = self.sock, self.server.handle, self.port, self.server.store
        ready: list[tuple[bytes, tuple[str, int]]] = []  # answers to requests that changed no lease
        held: list[tuple[bytes, tuple[str, int]]] = []  # ... that did: they wait for the commit
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
            before = len(store.pending)
            try:
                out = handle(data, src, port)
            except Exception as exc:  # a bug on one packet must not stop the others' service
                self.ctx.log(f"internal error on a packet from {src[0]}: {exc!r}", "error")
                continue
            (held if len(store.pending) > before else ready).extend(out)
        if emptied and self.hold > 0 and not self._held:
            # Nothing more waiting: let the next ones gather for HOLD. A full batch left more
            # queued, so the reader stays on and is called again at once.
            self._held = True
            self.loop.remove_reader(self.fd)
            self.loop.call_later(self.hold, self._resume)
        # OFFERs, NAKs, INFORM and proxyDHCP answers promise no lease: they go at once, and an
        # OFFER never waits for another client's fsync.
        self.send(ready, self.ctx.log)
        writes = store.take_pending()
        if not writes:
            return
        replies = held
        if not self.committer.submit(writes, lambda: self.send(replies, self.log_threadsafe), len(replies)):
            # Dropped whole, writes too, so nothing grows while the disk is stuck: a client not
            # ACKed asks again and is bound again (a RELEASE not written leaves its lease on
            # disk until it expires).
            now = time.monotonic()
            if now - self._behind_logged > 1.0:
                self._behind_logged = now
                self.ctx.log(f"lease database is {self.committer.waiting} replies behind: "
                             f"{len(replies)} replies and {len(writes)} lease writes dropped "
                             "(the clients retransmit)", "warning")

    def send(self, replies: list[tuple[bytes, tuple[str, int]]], log: Callable[[str, str], None]) -> None:
        for data, dest in replies:
            try:
                self.sock.sendto(data, dest)
            except OSError as exc:  # full send buffer, unreachable relay: the client retries
                log(f"send to {dest[0]}:{dest[1]} failed: {exc}", "warning")

    def log_threadsafe(self, message: str, level: str = "info") -> None:
        """ctx.log from the committer's thread: on the loop, which owns the event pipe."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the service is ending
            self.loop.call_soon_threadsafe(self.ctx.log, message, level)


async def report_expiries(ctx: ServiceContext, store: LeaseStore) -> None:
    while True:
        await asyncio.sleep(EXPIRY_CHECK)
        for lease in store.expired(time.time()):
            ctx.emit(LeaseEnded(mac=lease.mac, ip=lease.address, reason="expired"))


async def run(ctx: ServiceContext) -> None:
    check_netns_guard()
    cfg = ctx.config
    if not cfg.server_ip or not cfg.netmask:
        # the host reports an OSError as "cannot start: ..." and exits non-zero
        raise OSError(f"no IPv4 address known for interface {cfg.interface!r} (config not resolved)")
    mode = await decide_mode(ctx)
    if mode == "off":
        ctx.ready([])
        await asyncio.Event().wait()
        return
    conn = open_lease_db(cfg)
    store = open_store(cfg, conn)
    # Leases are ours to announce only when we hand them out (not in proxy mode).
    restored = store.restored(time.time()) if mode == "full" else []
    for lease in restored:
        ctx.emit(LeaseGranted(mac=lease.mac, ip=lease.address, expires=lease.expires,
                              hostname=lease.hostname, server_ip=cfg.server_ip))
    if restored:
        ctx.log(f"restored {len(restored)} active leases from {cfg.db_path}")
    policy = BootPolicy(cfg, dbstore.host_overrides(conn), proxy=(mode == "proxy"))

    def boot_once_used(mac: str) -> None:
        dbstore.clear_boot_once(conn, mac)

    # Proxmox's answer URL (option 250) reads seeds and mints tokens on the lease connection.
    answers = AnswerUrls(cfg, conn)
    server = DhcpServer(cfg, store, policy, mode, ctx.emit, boot_once_used, answer_url=answers.url_for,
                        admit=ctx.admit)
    # The restored leases live as long as the process: keep them out of every future full
    # collection (a pause there is a burst of requests waiting in the socket queue).
    gc.freeze()
    loop = asyncio.get_running_loop()

    def commit_failed(message: str) -> None:  # on the committer's thread
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(ctx.log, message, "error")

    committer = GroupCommitter(lambda: open_lease_db(cfg), commit_failed)
    socks = bind_sockets(ctx, mode)
    watch_sock = socks.pop(CLIENT_PORT, None)
    transports = [Transport(ctx, server, sock, port, committer) for port, sock in socks.items()]
    for transport in transports:
        transport.start()
    served = sorted(socks)

    def switched() -> None:  # port 68 is closed: say which ports are left
        ctx.emit(ServiceState(service=ctx.name, state="running", pid=os.getpid(), ports=served))

    watch = None
    if watch_sock is not None:
        watch = ForeignWatch(ctx, server, watch_sock, cfg.dhcp.recheck_seconds, switched)
        watch.start()
    expiry = asyncio.ensure_future(report_expiries(ctx, store))
    ports = sorted([*socks, *([CLIENT_PORT] if watch_sock is not None else [])])
    ctx.ready(ports)
    ctx.log(f"{mode} DHCP on {cfg.interface} ({cfg.server_ip}), ports {ports}, pool {cfg.dhcp.range}")
    try:
        while True:
            await ctx.reload_requested.wait()
            ctx.reload_requested.clear()
            policy.set_overrides(dbstore.host_overrides(conn))
            ctx.log("reloaded per-MAC overrides")
    finally:
        expiry.cancel()
        if watch is not None:
            watch.stop()
        for transport in transports:
            transport.stop()
        committer.close()  # what waits is written and answered before the sockets close
        for sock in socks.values():
            sock.close()
        with contextlib.suppress(sqlite3.Error):
            store.commit()
        conn.close()
