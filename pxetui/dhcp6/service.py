"""The DHCPv6 service: bind [::]:547 on the interface, join ff02::1:2, serve; send router
advertisements when the segment has no router (ra.py).

As the IPv4 service (pxetui/dhcp/service.py): the sockets are bound to the one configured
interface with SO_BINDTODEVICE (docs/SECURITY.md), everything that needs root (547, the raw
ICMPv6 socket) is open before `ctx.ready()` drops it, and the socket is read by the same loop
(pxetui/dhcp/transport.py): Advertises and proxy answers go at once, a Reply that binds waits
for the GroupCommitter's thread to write its binding (fsync'd), so it is never on the wire
before its binding is on disk (README, "Leases") and the loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import sqlite3
from pathlib import Path

from pxetui import store as dbstore
from pxetui.config import Config
from pxetui.dhcp.policy import BootPolicy
from pxetui.dhcp.service import open_lease_db
from pxetui.dhcp.transport import Transport, announce_restored, lease_committer, report_expiries
from pxetui.dhcp6.codec import duid_ll
from pxetui.dhcp6.leases import LeaseStore6
from pxetui.dhcp6.probe import probe6
from pxetui.dhcp6.ra import RouterAdvertiser, open_icmp6
from pxetui.dhcp6.server import SERVER_PORT, Dhcp6Server, pool_bounds
from pxetui.events import Alert, ForeignDhcpServer
from pxetui.netinfo import join_ipv6_group
from pxetui.safety import check_netns_guard
from pxetui.serviceapi import ServiceContext

ALL_DHCP = "ff02::1:2"  # All_DHCP_Relay_Agents_and_Servers (RFC 8415 section 7.1)


def open_socket6(interface: str, port: int = SERVER_PORT) -> socket.socket:
    """UDP [::]:547 on `interface` only, member of ff02::1:2 there (RFC 8415 section 7.1)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("::", port))
        index = socket.if_nametoindex(interface)
        join_ipv6_group(sock, ALL_DHCP, index)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def open_store6(cfg: Config, conn: sqlite3.Connection) -> LeaseStore6:
    start, end = pool_bounds(cfg)
    lim = cfg.dhcp.limits
    own = {int(ipaddress.IPv6Address(cfg.server_ip6))} if cfg.server_ip6 else set()
    return LeaseStore6(conn, start, end, exclude=own, offer_hold=lim.offer_hold_seconds,
                       max_offers=lim.max_offers)


def server_duid(interface: str) -> bytes:
    """DUID-LL from the interface's MAC (RFC 8415 section 11.4): stable without storing one."""
    try:
        mac = Path(f"/sys/class/net/{interface}/address").read_text().strip()
        return duid_ll(mac)
    except (OSError, ValueError) as exc:
        raise OSError(f"no Ethernet MAC known for interface {interface!r} ({exc}): cannot form "
                      "a DUID-LL") from None


async def decide_mode(ctx: ServiceContext) -> str:
    """Full mode first looks for another DHCPv6 server handing out addresses (probe.py,
    `dhcp.probe_seconds`); when one answers, or nobody could look, pxetui steps back to proxy
    mode (boot URLs, no addresses) and says so: never two address servers on one link
    (docs/SECURITY.md, "DHCP on a network that is not ours")."""
    cfg = ctx.config
    secs = cfg.dhcp.probe_seconds
    if cfg.ipv6.mode != "full" or secs <= 0:
        return cfg.ipv6.mode
    try:
        found = await asyncio.to_thread(probe6, cfg.interface, secs)
    except OSError as exc:
        reason = f"could not probe {cfg.interface} for another DHCPv6 server ({exc})"
        ctx.emit(Alert(key="dhcp6-probe", severity="warning", message=f"{reason}: DHCPv6 proxy mode to be safe"))
        ctx.log(f"{reason}: serving DHCPv6 boot URLs only, no addresses", "warning")
        return "proxy"
    if not found:
        ctx.log(f"no other DHCPv6 server on {cfg.interface} within {secs:g} s: handing out addresses")
        return "full"
    for adv in found:
        ctx.emit(ForeignDhcpServer(server_ip=adv.server, ip=adv.server, offered=adv.offered))
    other = found[0]
    reason = (f"DHCPv6 server {other.server} offers addresses ({other.offered}) on {cfg.interface}: "
              "pxetui adds boot URLs only (DHCPv6 proxy mode)")
    ctx.emit(Alert(key=f"foreign-dhcp6:{other.server}", severity="warning", message=reason))
    ctx.log(reason, "warning")
    return "proxy"


async def run(ctx: ServiceContext) -> None:
    check_netns_guard()
    cfg = ctx.config
    if not cfg.server_ip6 or not cfg.prefix6:
        raise OSError(f"no IPv6 address known for interface {cfg.interface!r} (ipv6.enabled needs "
                      "a global or ULA /64 on it: docs/IPV6.md)")
    duid = server_duid(cfg.interface)
    mode = await decide_mode(ctx)
    conn = open_lease_db(cfg)
    store = open_store6(cfg, conn) if mode == "full" else None
    if store is not None:
        announce_restored(ctx, store, cfg.server_ip6, "DHCPv6 leases")
    policy = BootPolicy(cfg, dbstore.host_overrides(conn), proxy=mode == "proxy")
    server = Dhcp6Server(cfg, store, policy, duid, ctx.emit,
                         lambda mac: dbstore.clear_boot_once(conn, mac), mode=mode, admit=ctx.admit)
    sock = open_socket6(cfg.interface)
    ra: RouterAdvertiser | None = None
    if cfg.ipv6.router_advertisements != "off":
        try:
            ra = RouterAdvertiser(ctx, open_icmp6(cfg.interface), cfg)
        except OSError as exc:
            ctx.log(f"cannot open an ICMPv6 socket on {cfg.interface} ({exc}): no router "
                    "advertisements", "warning")
    committer = lease_committer(ctx, lambda: open_lease_db(cfg)) if store is not None else None
    transport = Transport(ctx, server.handle, store, sock, SERVER_PORT, committer)
    transport.start()
    tasks = []
    if store is not None:
        tasks.append(asyncio.ensure_future(report_expiries(ctx, store)))
    if ra is not None:
        tasks.append(asyncio.ensure_future(ra.run()))
    ctx.ready([SERVER_PORT])
    pool = f", pool {cfg.ipv6.range}" if store is not None else ""
    ctx.log(f"{mode} DHCPv6 on {cfg.interface} ([{cfg.server_ip6}]), port {SERVER_PORT}{pool}; "
            f"router advertisements {cfg.ipv6.router_advertisements}")
    try:
        while True:
            await ctx.reload_requested.wait()
            ctx.reload_requested.clear()
            policy.set_overrides(dbstore.host_overrides(conn))
            ctx.log("reloaded per-MAC overrides")
    finally:
        for task in tasks:
            task.cancel()
        transport.stop()
        if committer is not None:
            committer.close()  # what waits is written and answered before the socket closes
        sock.close()
        if ra is not None:
            ra.close()
        if store is not None:
            with contextlib.suppress(sqlite3.Error):
                store.commit()
        conn.close()
