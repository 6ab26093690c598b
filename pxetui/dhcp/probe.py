"""Auto mode's probe: is another DHCP server answering on this interface?

Sends a plain DISCOVER (broadcast flag set, so the answer is broadcast to us) from port 68 on
the one interface, repeated each second, and collects OFFERs with our xid. Only an offer that
carries an address (yiaddr != 0) counts: a proxyDHCP server does not hand out addresses.
Callers run it before binding port 67, inside the network-namespace guard.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pxetui.dhcp import options as o
from pxetui.dhcp.codec import (
    BOOTREPLY,
    BROADCAST_FLAG,
    ZERO_IP,
    DhcpParseError,
    Packet,
    build,
    parse,
)
from pxetui.dhcp.ports import CLIENT_PORT, SERVER_PORT

GRACE = 0.3  # after the first offer, wait this long for other servers' offers
# Servers that check an address before offering it answer late: dnsmasq ARP/pings for ~3 s,
# ISC dhcpd for 1 s. Keep listening this long after the last DISCOVER went out.
LATE_ANSWER = 1.5


@dataclass(frozen=True)
class Offer:
    server_ip: str  # option 54, else the sender's address
    sender: str
    offered: str
    boot_file: str | None


def interface_mac(interface: str) -> bytes:
    text = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    return bytes.fromhex(text.replace(":", ""))


def recheck_mac(own: str) -> str:
    """The MAC full mode's later probes come from (pxetui/dhcp/watch.py): made up from the
    interface's own, locally administered (IEEE 802: bit 1 of the first octet set, bit 0, the
    group bit, clear) and differing from it in bit 2, so that it is no real NIC's, and so that
    capture can tell our probes from clients without being told (docs/SECURITY.md)."""
    raw = bytes.fromhex(own.replace(":", ""))
    first = ((raw[0] ^ 0x04) | 0x02) & 0xFE
    return (bytes((first,)) + raw[1:]).hex(":")


def discover_packet(mac: bytes, xid: int) -> bytes:
    return build(Packet(xid=xid, flags=BROADCAST_FLAG, chaddr=mac, options={
        o.MSG_TYPE: bytes((o.DISCOVER,)),
        o.PARAM_REQUEST: bytes((o.SUBNET_MASK, o.ROUTER, o.DNS, o.SERVER_ID)),
        o.HOSTNAME: b"pxetui-probe",
    }))


def probe(interface: str, seconds: float) -> list[Offer]:
    """Blocking; returns the offers seen (empty: nobody answered). DISCOVERs go out for
    `seconds`; answers are awaited LATE_ANSWER longer."""
    mac = interface_mac(interface)
    xid = int.from_bytes(os.urandom(4))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("0.0.0.0", CLIENT_PORT))
        packet = discover_packet(mac, xid)
        offers: dict[str, Offer] = {}
        start = time.monotonic()
        send_until = start + seconds
        deadline = send_until + LATE_ANSWER
        next_send = start
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_send and now < send_until:
                sock.sendto(packet, ("255.255.255.255", SERVER_PORT))
                next_send = now + 1.0
            sock.settimeout(max(0.01, min(deadline, next_send) - now))
            try:
                data, src = sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                pkt = parse(data)
            except DhcpParseError:
                continue
            if pkt.op != BOOTREPLY or pkt.xid != xid or o.msg_type(pkt) != o.OFFER:
                continue
            if pkt.yiaddr == ZERO_IP:
                continue
            sid = o.ip_opt(pkt, o.SERVER_ID)
            server = socket.inet_ntoa(sid) if sid else src[0]
            boot = o.text(pkt, o.BOOTFILE) or (pkt.file.decode("utf-8", "replace") or None)
            offers.setdefault(server, Offer(server, src[0], pkt.ip("yiaddr"), boot))
            deadline = min(deadline, time.monotonic() + GRACE)
        return list(offers.values())
    finally:
        sock.close()
