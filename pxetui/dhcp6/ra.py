"""Router advertisements for a segment without a router (RFC 4861), so clients use DHCPv6.

What we send (RFC 4861 section 4.2): the M and O flags (addresses and other configuration
from DHCPv6, RFC 4861 section 4.2 / RFC 8415 section 5), router lifetime 0 (we are not a
default router: nobody routes through us), the source link-layer address, and a Prefix
Information option for the interface's /64 with L=1 (on-link) and A=0 (no SLAAC: the address
comes from DHCPv6). UEFI HTTP boot over IPv6 needs the on-link prefix, and RFC 4861 hosts
look at M before they use DHCPv6 (docs/IPV6.md; OVMF's PXE boots on-link without an RA).

`router_advertisements = "on"`: always. `"auto"`: first a Router Solicitation and a few
seconds of listening; we advertise only while no other router has been heard for
FOREIGN_HOLD seconds, and stop as soon as one is (two sources of RAs confuse clients; the
site's router knows the site's prefixes).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from pxetui.config import Config
from pxetui.netinfo import join_ipv6_group
from pxetui.serviceapi import ServiceContext

ICMP6_RS, ICMP6_RA = 133, 134
ALL_NODES, ALL_ROUTERS = "ff02::1", "ff02::2"
RA_INTERVAL = 10.0  # seconds between unsolicited RAs (RFC 4861 6.2.1 allows 4..1800)
LISTEN_SECONDS = 3.0  # auto: how long to listen for another router before the first RA
FOREIGN_HOLD = 600.0  # auto: quiet this long after another router's RA (MaxRtrAdvInterval default)
MIN_DELAY_BETWEEN_RAS = 3.0  # RFC 4861 section 10
MAX_RA_DELAY_TIME = 0.5  # RFC 4861 section 6.2.6: answer an RS after a random delay up to this
PREFIX_VALID, PREFIX_PREFERRED = 3600, 1800  # seconds; the on-link flag lasts this long
ICMP6_FILTER = 1  # linux/icmpv6.h, level IPPROTO_ICMPV6
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
FLAG_MANAGED, FLAG_OTHER = 0x80, 0x40
PIO_ONLINK = 0x80


def build_ra(mac: bytes, prefix: ipaddress.IPv6Network) -> bytes:
    """The RA (checksum 0: the kernel fills it in for ICMPv6 raw sockets, RFC 3542 3.1)."""
    # type code checksum | cur hop limit, flags, router lifetime | reachable | retrans
    head = struct.pack("!BBHBBHII", ICMP6_RA, 0, 0, 64, FLAG_MANAGED | FLAG_OTHER, 0, 0, 0)
    slla = struct.pack("!BB6s", 1, 1, mac)  # RFC 4861 4.6.1: source link-layer address
    pio = struct.pack("!BBBBIII16s", 3, 4, prefix.prefixlen, PIO_ONLINK, PREFIX_VALID,
                      PREFIX_PREFERRED, 0, prefix.network_address.packed)  # RFC 4861 4.6.2
    return head + slla + pio


def build_rs() -> bytes:
    return struct.pack("!BBHI", ICMP6_RS, 0, 0, 0)  # RFC 4861 section 4.1


def icmp_filter(*allowed: int) -> bytes:
    """struct icmp6_filter: a set bit blocks that type (RFC 3542 section 3.2)."""
    words = [0xFFFFFFFF] * 8
    for t in allowed:
        words[t >> 5] &= ~(1 << (t & 31))
    return struct.pack("=8I", *words)


def open_icmp6(interface: str) -> socket.socket:
    """A raw ICMPv6 socket on `interface` (needs root: opened before privileges drop) that
    hears RS and RA only, joined to ff02::2, sending with hop limit 255 (RFC 4861 6.1.2)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        index = socket.if_nametoindex(interface)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, icmp_filter(ICMP6_RS, ICMP6_RA))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)  # not our own RAs
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        join_ipv6_group(sock, ALL_ROUTERS, index)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class RaPolicy:
    """When to advertise: no packets here, a clock in, a yes or no out."""

    def __init__(self, mode: str, start: float) -> None:
        self.mode = mode  # on | auto
        self.listen_until = start + (LISTEN_SECONDS if mode == "auto" else 0.0)
        self.foreign_at: float | None = None
        self.foreign: str | None = None

    def heard_router(self, source: str, now: float) -> None:
        self.foreign, self.foreign_at = source, now

    def may_advertise(self, now: float) -> bool:
        if self.mode == "on":
            return True
        if now < self.listen_until:
            return False
        return self.foreign_at is None or now - self.foreign_at >= FOREIGN_HOLD


class RouterAdvertiser:
    def __init__(self, ctx: ServiceContext, sock: socket.socket, cfg: Config,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx, self.sock, self.clock = ctx, sock, clock
        self.iface = cfg.interface
        self.index = socket.if_nametoindex(cfg.interface)
        mac = Path(f"/sys/class/net/{cfg.interface}/address").read_text().strip()
        self.ra = build_ra(bytes.fromhex(mac.replace(":", "")), ipaddress.IPv6Network(cfg.prefix6))
        self.prefix = cfg.prefix6
        self.policy = RaPolicy(cfg.ipv6.router_advertisements, clock())
        self.last_sent = -MIN_DELAY_BETWEEN_RAS
        self.advertising = False
        self.answer: asyncio.TimerHandle | None = None
        self.sent = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self.readable)
        try:
            if self.policy.mode == "auto":
                self._send(build_rs(), ALL_ROUTERS, "router solicitation")  # routers answer at once
                await asyncio.sleep(LISTEN_SECONDS)
            while True:
                self.tick()
                await asyncio.sleep(RA_INTERVAL)
        finally:
            self.close()

    def tick(self) -> None:
        now = self.clock()
        allowed = self.policy.may_advertise(now)
        if allowed != self.advertising:
            self.advertising = allowed
            if allowed:
                why = "always" if self.policy.mode == "on" else "no other router advertises"
                self.ctx.log(f"{why} on {self.iface}: sending router advertisements "
                             f"(M and O flags, prefix {self.prefix} on-link, not a default router)")
        if allowed:
            self.advertise()

    def advertise(self) -> None:
        self.answer = None
        now = self.clock()
        if not self.policy.may_advertise(now) or now - self.last_sent < MIN_DELAY_BETWEEN_RAS:
            return
        if self._send(self.ra, ALL_NODES, "router advertisement"):
            self.last_sent = now
            self.sent += 1

    def _send(self, data: bytes, dest: str, what: str) -> bool:
        try:
            self.sock.sendto(data, (dest, 0, 0, self.index))
            return True
        except OSError as exc:  # no link-local address yet (DAD), link down: the next tick retries
            self.ctx.log(f"{what} on {self.iface} not sent: {exc}", "debug")
            return False

    def readable(self) -> None:
        for _ in range(64):
            try:
                data, anc, _flags, src = self.sock.recvmsg(1500, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.ctx.log(f"ICMPv6 receive on {self.iface} failed: {exc}", "warning")
                return
            hops = next((int.from_bytes(d[:4], "little") for level, kind, d in anc
                         if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(d) >= 4), None)
            # RFC 4861 6.1.1 / 6.1.2: a valid RS or RA has hop limit 255 (it never crossed a router)
            if len(data) < 8 or hops != 255:
                continue
            self.heard(data[0], src[0])

    def heard(self, icmp_type: int, source: str) -> None:
        now = self.clock()
        if icmp_type == ICMP6_RA:
            new = self.policy.foreign != source
            self.policy.heard_router(source, now)
            if self.policy.mode == "auto" and (self.advertising or new):
                self.advertising = False
                self.ctx.log(f"router {source} advertises on {self.iface}: pxetui sends no router "
                             "advertisements while it does (ipv6.router_advertisements = auto)")
            elif new:
                self.ctx.log(f"router {source} also advertises on {self.iface} "
                             "(ipv6.router_advertisements = on: pxetui's continue)", "warning")
        elif icmp_type == ICMP6_RS and self.answer is None and self.policy.may_advertise(now):
            loop = asyncio.get_running_loop()
            self.answer = loop.call_later(random.uniform(0, MAX_RA_DELAY_TIME), self.advertise)

    def close(self) -> None:
        """Stop: idempotent (the service's cleanup and the cancelled run() both call it)."""
        if self.answer is not None:
            self.answer.cancel()
            self.answer = None
        if self.sock.fileno() >= 0:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing registered
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
