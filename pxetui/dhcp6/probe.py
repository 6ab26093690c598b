"""Is another DHCPv6 server handing out addresses on this interface? (docs/SECURITY.md, "DHCP
on a network that is not ours"; the IPv4 probe is pxetui/dhcp/probe.py.)

Sends a Solicit with one IA_NA from port 546 to ff02::1:2 (RFC 8415 section 7.1), once a
second, from a made-up DUID-LL (the locally administered MAC of pxetui.dhcp.probe.recheck_mac,
so that it is no real client's), and collects Advertises with our transaction id. Only one
that offers an address counts: a server that says NoAddrsAvail takes nothing from us. Run
before our own socket joins ff02::1:2.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pxetui.dhcp.probe import recheck_mac
from pxetui.dhcp6 import codec as c

GRACE = 0.3  # after the first Advertise, wait this long for other servers'
LATE_ANSWER = 1.0  # keep listening this long after the last Solicit (RFC 8415 SOL_MAX_DELAY is 1 s)
ALL_DHCP = "ff02::1:2"


@dataclass(frozen=True)
class Advert:
    server: str  # the sender's (link-local) address
    server_duid: str  # hex
    offered: str  # the first address it offered


def solicit(mac: str, xid: int) -> bytes:
    msg = c.Dhcp6Message(c.SOLICIT, xid)
    msg.add(c.OPT_CLIENTID, c.duid_ll(mac))
    msg.add(c.OPT_ELAPSED_TIME, b"\x00\x00")
    msg.add(c.OPT_IA_NA, c.encode_ia_na(c.IaNa(1)))
    return c.encode(msg)


def offered(data: bytes, xid: int) -> tuple[bytes, str] | None:
    """(server DUID, first address offered) of an Advertise or Reply to our Solicit, or None."""
    try:
        msg = c.parse(data)
    except c.Dhcp6Error:
        return None
    if msg.msg_type not in (c.ADVERTISE, c.REPLY) or msg.transaction_id != xid or not msg.server_id:
        return None
    addrs = [a.address for ia in msg.ia_na for a in ia.addresses if a.valid]
    return (msg.server_id, addrs[0]) if addrs else None


def probe6(interface: str, seconds: float) -> list[Advert]:
    """Blocking; the servers that offered an address (empty: nobody did)."""
    own = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    xid = int.from_bytes(os.urandom(3))
    packet = solicit(recheck_mac(own), xid)
    index = socket.if_nametoindex(interface)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("::", c.CLIENT_PORT))
        found: dict[str, Advert] = {}
        start = time.monotonic()
        send_until, deadline, next_send = start + seconds, start + seconds + LATE_ANSWER, start
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if next_send <= now < send_until:
                sock.sendto(packet, (ALL_DHCP, c.SERVER_PORT, 0, index))
                next_send = now + 1.0
            sock.settimeout(max(0.01, min(deadline, next_send) - now))
            try:
                data, src = sock.recvfrom(4096)
            except TimeoutError:
                continue
            got = offered(data, xid)
            if got is None:
                continue
            duid, addr = got
            found.setdefault(duid.hex(), Advert(src[0], duid.hex(), addr))
            deadline = min(deadline, time.monotonic() + GRACE)
        return list(found.values())
    finally:
        sock.close()
