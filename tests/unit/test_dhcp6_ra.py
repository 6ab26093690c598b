"""Router advertisements (RFC 4861): the bytes we send, read back by scapy (an independent
decoder), and when auto mode advertises."""

from __future__ import annotations

import ipaddress
import struct

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
