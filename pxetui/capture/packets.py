"""Parse captured frames down to what the capture needs: IPv4/IPv6 UDP/TCP, ICMPv6 router
advertisements, and DHCP fields.

Plain `struct` on bytes for the link, IP and transport headers, and the project's DHCP codec
for BOOTP/DHCP: a boot storm brings hundreds of packets a second and scapy costs ~50 µs per
DHCP packet (docs/FIELD-NOTES.md, library evidence). Every function returns None for a frame it does
not understand instead of raising.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from pxetui.dhcp.codec import DhcpParseError, parse
from pxetui.dhcp.options import msg_name

# pcap link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
# IPv6 extension headers a capture walks past (RFC 8200 section 4): hop-by-hop, routing,
# destination options. A fragment (44) other than the first carries no transport header.
_EXT_HEADERS = (0, 43, 60)
_FRAGMENT = 44


@dataclass(slots=True)
class Segment:
    """A UDP datagram, TCP segment or ICMPv6 message over IPv4 or IPv6, with the link-layer
    source (and destination) MAC when there is one."""

    proto: str  # udp | tcp | icmp6
    src_mac: str | None
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes
    seq: int = 0
    ack: int = 0
    flags: int = 0  # TCP flags byte
    length: int = 0  # payload length on the wire (the capture may hold less: snaplen)
    dst_mac: str | None = None
    v6: bool = False


def _mac(b: bytes) -> str:
    return b.hex(":")


def _ip(b: bytes) -> str:
    return socket.inet_ntoa(b)


def parse_frame(data: bytes, linktype: int = LINKTYPE_ETHERNET) -> Segment | None:
    mac: str | None = None
    dst_mac: str | None = None
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        mac, dst_mac = _mac(data[6:12]), _mac(data[0:6])
        etype, off = struct.unpack_from("!H", data, 12)[0], 14
        while etype in (0x8100, 0x88A8) and len(data) >= off + 4:  # 802.1Q / QinQ tags
            etype, off = struct.unpack_from("!H", data, off + 2)[0], off + 4
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None
        etype = struct.unpack_from("!H", data, 14)[0]
        if struct.unpack_from("!H", data, 4)[0] == 6:
            mac = _mac(data[6:12])
        off = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return None
        etype = struct.unpack_from("!H", data, 0)[0]
        if data[11] == 6:
            mac = _mac(data[12:18])
        off = 20
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        off = 0
        raw6 = linktype == LINKTYPE_RAW and data[:1] and data[0] >> 4 == 6
        etype = ETH_IPV6 if raw6 or linktype == LINKTYPE_IPV6 else ETH_IPV4
    else:
        return None
    if etype == ETH_IPV6:
        seg = parse_ipv6(data, off, mac)
    elif etype == ETH_IPV4:
        seg = parse_ipv4(data, off, mac)
    else:
        return None
    if seg is not None:
        seg.dst_mac = dst_mac
    return seg


def parse_ipv4(data: bytes, off: int, mac: str | None) -> Segment | None:
    if len(data) < off + 20 or data[off] >> 4 != 4:
        return None
    ihl = (data[off] & 0x0F) * 4
    total = struct.unpack_from("!H", data, off + 2)[0]
    if struct.unpack_from("!H", data, off + 6)[0] & 0x1FFF:  # a later fragment: no L4 header
        return None
    proto = data[off + 9]
    src, dst = _ip(data[off + 12 : off + 16]), _ip(data[off + 16 : off + 20])
    # total 0 happens with TSO/GRO frames captured before segmentation: use what is there.
    wire_end = off + total if total else len(data)
    end = min(len(data), wire_end)
    l4 = off + ihl
    if proto == 17 and end >= l4 + 8:
        sport, dport = struct.unpack_from("!HH", data, l4)
        return Segment("udp", mac, src, dst, sport, dport, bytes(data[l4 + 8 : end]), length=wire_end - l4 - 8)
    if proto == 6 and end >= l4 + 20:
        sport, dport, seq, ack, offb, flags = struct.unpack_from("!HHIIBB", data, l4)
        hdr = (offb >> 4) * 4
        return Segment("tcp", mac, src, dst, sport, dport, bytes(data[l4 + hdr : end]), seq, ack, flags,
                       length=max(0, wire_end - l4 - hdr))
    return None


def parse_ipv6(data: bytes, off: int, mac: str | None) -> Segment | None:
    """UDP, TCP or ICMPv6 in an IPv6 packet, past hop-by-hop/routing/destination options."""
    if len(data) < off + 40 or data[off] >> 4 != 6:
        return None
    plen = struct.unpack_from("!H", data, off + 4)[0]
    nxt = data[off + 6]
    src = socket.inet_ntop(socket.AF_INET6, data[off + 8 : off + 24])
    dst = socket.inet_ntop(socket.AF_INET6, data[off + 24 : off + 40])
    # plen 0: a jumbogram or a GRO frame captured before segmentation: use what is there.
    wire_end = off + 40 + plen if plen else len(data)
    end = min(len(data), wire_end)
    l4 = off + 40
    for _ in range(8):  # a bounded walk: a chain of extension headers is not followed forever
        if nxt in _EXT_HEADERS and end >= l4 + 8:
            nxt, l4 = data[l4], l4 + (data[l4 + 1] + 1) * 8
        elif nxt == _FRAGMENT and end >= l4 + 8:
            if struct.unpack_from("!H", data, l4 + 2)[0] & 0xFFF8:  # a later fragment
                return None
            nxt, l4 = data[l4], l4 + 8
        else:
            break
    if nxt == 17 and end >= l4 + 8:
        sport, dport = struct.unpack_from("!HH", data, l4)
        return Segment("udp", mac, src, dst, sport, dport, bytes(data[l4 + 8 : end]),
                       length=wire_end - l4 - 8, v6=True)
    if nxt == 6 and end >= l4 + 20:
        sport, dport, seq, ack, offb, flags = struct.unpack_from("!HHIIBB", data, l4)
        hdr = (offb >> 4) * 4
        return Segment("tcp", mac, src, dst, sport, dport, bytes(data[l4 + hdr : end]), seq, ack, flags,
                       length=max(0, wire_end - l4 - hdr), v6=True)
    if nxt == 58 and end >= l4 + 4:
        return Segment("icmp6", mac, src, dst, 0, 0, bytes(data[l4:end]), length=wire_end - l4, v6=True)
    return None


@dataclass(frozen=True, slots=True)
class RouterAdvert:
    """An ICMPv6 Router Advertisement's fields a boot depends on (RFC 4861 section 4.2)."""

    managed: bool  # M: addresses from DHCPv6
    other: bool  # O: other configuration from DHCPv6
    lifetime: int  # router lifetime, seconds (0: not a default router)
    prefixes: tuple[str, ...]  # Prefix Information options (type 3), as "prefix/len"
    source_mac: str | None  # Source Link-Layer Address option (type 1)


def parse_router_advert(payload: bytes) -> RouterAdvert | None:
    """None unless this ICMPv6 message is a well-formed Router Advertisement."""
    if len(payload) < 16 or payload[0] != 134 or payload[1] != 0:
        return None
    flags = payload[5]
    lifetime = struct.unpack_from("!H", payload, 6)[0]
    prefixes: list[str] = []
    src_mac: str | None = None
    i = 16
    while i + 2 <= len(payload):
        otype, olen = payload[i], payload[i + 1] * 8
        if olen == 0 or i + olen > len(payload):
            return None  # RFC 4861 4.6: a zero-length option makes the message invalid
        body = payload[i : i + olen]
        if otype == 1 and olen >= 8:
            src_mac = _mac(body[2:8])
        elif otype == 3 and olen == 32:
            plen = body[2]
            if plen <= 128:
                prefixes.append(f"{socket.inet_ntop(socket.AF_INET6, body[16:32])}/{plen}")
        i += olen
    return RouterAdvert(bool(flags & 0x80), bool(flags & 0x40), lifetime, tuple(prefixes), src_mac)


@dataclass(slots=True)
class Dhcp:
    """A parsed message's header fields as text, and the DHCP options a capture reports
    (RFC 2131/2132, RFC 4578), decoded on demand."""

    op: int
    xid: int
    flags: int
    ciaddr: str
    yiaddr: str
    siaddr: str
    giaddr: str
    chaddr: str
    sname: str
    file: str
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def msg_type(self) -> str:
        v = self.options.get(53)
        return msg_name(v[0] if v else None)  # None: plain BOOTP (RFC 951), "BOOTP"

    def text(self, code: int) -> str | None:
        v = self.options.get(code)
        if v is None:
            return None
        return v.rstrip(b"\0").decode("latin-1")

    def addr(self, code: int) -> str | None:
        v = self.options.get(code)
        return _ip(v[:4]) if v and len(v) >= 4 else None

    @property
    def arch(self) -> int | None:
        v = self.options.get(93)
        return struct.unpack_from("!H", v)[0] if v and len(v) >= 2 else None

    @property
    def user_class(self) -> str | None:
        v = self.options.get(77)
        if not v:
            return None
        # RFC 3004 wants length-prefixed classes; iPXE sends the bare string (docs/FIELD-NOTES.md).
        if v[0] == len(v) - 1 and v[0] > 0:
            v = v[1:]
        return v.decode("latin-1")

    @property
    def uuid(self) -> str | None:
        v = self.options.get(97)  # RFC 4578: type 0 + 16 bytes
        if not v or len(v) != 17:
            return None
        h = v[1:].hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    @property
    def boot_file(self) -> str | None:
        return self.text(67) or self.file or None

    @property
    def lease_time(self) -> int | None:
        v = self.options.get(51)
        return struct.unpack_from("!I", v)[0] if v and len(v) >= 4 else None


def parse_dhcp(payload: bytes) -> Dhcp | None:
    """The project's DHCP codec (pxetui.dhcp.codec, fuzzed) does the parsing; None if the
    payload is not BOOTP/DHCP (or was cut by a short snaplen)."""
    try:
        p = parse(payload)
    except DhcpParseError:
        return None
    return Dhcp(p.op, p.xid, p.flags, _ip(p.ciaddr), _ip(p.yiaddr), _ip(p.siaddr), _ip(p.giaddr),
                p.mac, p.sname.decode("latin-1"), p.file.decode("latin-1"), p.options)
