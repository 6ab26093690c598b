"""Router advertisements (RFC 4861): the bytes we send, read back by scapy (an independent
decoder), and when auto mode advertises."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from pathlib import Path

from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr

from pxetui.dhcp6 import ra


def test_ra_bytes_say_dhcpv6_not_a_default_router_and_the_prefix_on_link() -> None:
    data = ra.build_ra(bytes.fromhex("525400000001"), ipaddress.IPv6Network("fd99::/64"))
    pkt = ICMPv6ND_RA(data)
    assert (pkt.type, pkt.M, pkt.O, pkt.routerlifetime) == (134, 1, 1, 0)
    assert pkt[ICMPv6NDOptSrcLLAddr].lladdr == "52:54:00:00:00:01"
    pio = pkt[ICMPv6NDOptPrefixInfo]
    assert (pio.prefix, pio.prefixlen, pio.L, pio.A) == ("fd99::", 64, 1, 0)
    assert (pio.validlifetime, pio.preferredlifetime) == (ra.PREFIX_VALID, ra.PREFIX_PREFERRED)
    assert ra.build_rs()[0] == 133 and len(ra.build_rs()) == 8


def test_icmp_filter_passes_only_rs_and_ra() -> None:
    words = struct.unpack("=8I", ra.icmp_filter(133, 134))
    blocked = {t for t in range(256) if words[t >> 5] & (1 << (t & 31))}
    assert set(range(256)) - blocked == {133, 134}


def test_auto_listens_first_and_stops_while_another_router_speaks() -> None:
    p = ra.RaPolicy("auto", start=100.0)
    assert not p.may_advertise(100.0 + ra.LISTEN_SECONDS - 0.1)  # still listening
    assert p.may_advertise(100.0 + ra.LISTEN_SECONDS)
    p.heard_router("fe80::1", 200.0)
    assert not p.may_advertise(200.0 + ra.FOREIGN_HOLD - 1)
    assert p.may_advertise(200.0 + ra.FOREIGN_HOLD)  # the other router went quiet
    on = ra.RaPolicy("on", start=100.0)
    on.heard_router("fe80::1", 100.0)
    assert on.may_advertise(100.0)  # "on" advertises whatever else is heard


class FakeSock:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[object, ...]]] = []

    def sendto(self, data: bytes, dest: tuple[object, ...]) -> int:
        self.sent.append((data, dest))
        return len(data)

    def fileno(self) -> int:
        return -1  # nothing registered with a loop

    def close(self) -> None:
        pass


class FakeCtx:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str, level: str = "info") -> None:
        self.lines.append(message)


def advertiser(mode: str) -> tuple[ra.RouterAdvertiser, FakeSock, FakeCtx, list[float]]:
    from services import base_config

    cfg = base_config(Path("/nonexistent"), interface="lo", ipv6={"enabled": True, "router_advertisements": mode})
    cfg.prefix6 = "fd99::/64"
    now = [1000.0]
    sock, ctx = FakeSock(), FakeCtx()
    adv = ra.RouterAdvertiser(ctx, sock, cfg, clock=lambda: now[0])  # type: ignore[arg-type]
    return adv, sock, ctx, now


def test_a_router_solicitation_is_answered_soon_and_not_more_than_once_per_3_s() -> None:
    async def go() -> list[tuple[bytes, tuple[object, ...]]]:
        adv, sock, _, now = advertiser("on")
        adv.heard(ra.ICMP6_RS, "fe80::2")
        await asyncio.sleep(ra.MAX_RA_DELAY_TIME + 0.2)  # bounded: RFC 4861 6.2.6's delay
        now[0] += 1.0
        adv.heard(ra.ICMP6_RS, "fe80::3")  # inside MIN_DELAY_BETWEEN_RAS: no second RA
        await asyncio.sleep(ra.MAX_RA_DELAY_TIME + 0.2)
        return sock.sent
    sent = asyncio.run(go())
    assert len(sent) == 1
    data, dest = sent[0]
    assert data[0] == ra.ICMP6_RA and dest[0] == ra.ALL_NODES and dest[3] == socket.if_nametoindex("lo")


def test_auto_says_when_another_router_silences_it_and_then_answers_no_solicitation() -> None:
    async def go() -> tuple[list[tuple[bytes, tuple[object, ...]]], list[str]]:
        adv, sock, ctx, now = advertiser("auto")
        now[0] += ra.LISTEN_SECONDS
        adv.tick()  # nobody else heard: it advertises
        adv.heard(ra.ICMP6_RA, "fe80::1")
        now[0] += ra.MIN_DELAY_BETWEEN_RAS + 1
        adv.heard(ra.ICMP6_RS, "fe80::2")
        adv.tick()
        await asyncio.sleep(ra.MAX_RA_DELAY_TIME + 0.2)
        return sock.sent, ctx.lines
    sent, lines = asyncio.run(go())
    assert len(sent) == 1  # the first tick's only
    assert any("router fe80::1 advertises on lo" in line for line in lines)
