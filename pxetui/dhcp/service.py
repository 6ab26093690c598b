"""The DHCP service: guard, decide the mode (probe in auto mode), bind, serve.

Sockets are bound to the one configured interface with SO_BINDTODEVICE, so a packet from any
other interface never reaches us and no reply leaves by another one (docs/SECURITY.md).
Every socket the service will ever need (67; 4011, also in full mode, for a later switch to
proxyDHCP; 68 in full mode, to hear other servers: watch.py) is bound before `ctx.ready()`
drops root. The sockets are read by transport.py (shared with DHCPv6): each wake-up drains a
batch of datagrams and handles them; one that empties the socket leaves it unread for HOLD, so
the next ones make a batch too. Answers to requests that changed no lease (OFFERs, NAKs,
INFORM, proxyDHCP) go at once; the batch's lease changes and the answers that depend on them
(ACKs) go to the GroupCommitter (committer.py), whose thread writes the changes of every batch
waiting in one transaction (synchronous=FULL: fsync'd) and only then sends those answers: an
ACK is never on the wire before its lease is on disk (README, "Leases"), and the loop never
waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import ipaddress
import os
import socket
import sqlite3

from pxetui import store as dbstore
from pxetui.config import Config, parse_range
from pxetui.dhcp.answer import AnswerUrls
from pxetui.dhcp.leases import LeaseStore, Pool
from pxetui.dhcp.policy import BootPolicy
from pxetui.dhcp.probe import probe
from pxetui.dhcp.server import CLIENT_PORT, PXE_PORT, SERVER_PORT, DhcpServer
from pxetui.dhcp.transport import Transport, announce_restored, lease_committer, report_expiries
from pxetui.dhcp.watch import ForeignWatch
from pxetui.events import DhcpModeDecided, ForeignDhcpServer, ServiceState
from pxetui.safety import check_netns_guard
from pxetui.serviceapi import ServiceContext

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
    if mode == "full":  # leases are ours to announce only when we hand them out (not in proxy mode)
        announce_restored(ctx, store, cfg.server_ip, "leases")
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
    committer = lease_committer(ctx, lambda: open_lease_db(cfg))
    socks = bind_sockets(ctx, mode)
    watch_sock = socks.pop(CLIENT_PORT, None)
    transports = [Transport(ctx, functools.partial(server.handle, port=port), store, sock, port, committer)
                  for port, sock in socks.items()]
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
