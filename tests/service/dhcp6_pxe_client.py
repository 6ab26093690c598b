"""A DHCPv6 client that asks like EDK2's PXE over IPv6 (options 1 DUID-UUID, 3, 6 asking 59/60,
8, 16 `PXEClient:Arch:00007:UNDI:003016`, 61 = 7), for the capture tests: run inside the client
namespace as `python dhcp6_pxe_client.py IFACE [--solicit-only N]`. Sends on the wire with
scapy (raw frames: no DHCPv6 socket or client daemon), prints the address the Reply granted
and the boot URL as `ADDRESS URL`, exits 1 when no server answered. Bounded: 3 tries of 3 s."""

from __future__ import annotations

import struct
import sys
import time

from scapy.config import conf
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.sendrecv import AsyncSniffer, sendp

from pxetui.dhcp6 import codec as c

DUID = bytes.fromhex("0004" "8fcdd6b4e4b34e5fa3b3a5e0d5a4a5f1")
IAID = 0x0C0D0E0F


def message(kind: int, xid: int, server_id: bytes | None = None, address: str | None = None) -> bytes:
    m = c.Dhcp6Message(kind, xid)
    m.add(c.OPT_CLIENTID, DUID)
    if server_id is not None:
        m.add(c.OPT_SERVERID, server_id)
    m.add(c.OPT_IA_NA, c.encode_ia_na(c.IaNa(IAID, 0, 0, [c.IaAddress(address, 0, 0)] if address else [])))
    m.add(c.OPT_ORO, struct.pack("!4H", 59, 60, 23, 24))
    m.add(c.OPT_ELAPSED_TIME, b"\0\0")
    m.add(c.OPT_VENDOR_CLASS, c.encode_vendor_class(c.VendorClass(343, [b"PXEClient:Arch:00007:UNDI:003016"])))
    m.add(c.OPT_CLIENT_ARCH_TYPE, struct.pack("!H", 7))
    m.add(c.OPT_NII, b"\x01\x03\x00")
    return c.encode(m)


def link_local(mac: str) -> str:
    """The EUI-64 link-local address (RFC 4291 appendix A) the kernel gives the interface."""
    b = bytearray(bytes.fromhex(mac.replace(":", "")))
    b[0] ^= 0x02
    eui = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    groups = [f"{int.from_bytes(eui[i:i + 2], 'big'):x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


def exchange(iface: str, mac: str, payload: bytes, want: int, tries: int = 3) -> c.Dhcp6Message | None:
    src = link_local(mac)
    frame = (Ether(src=mac, dst="33:33:00:01:00:02") / IPv6(src=src, dst="ff02::1:2", hlim=1)
             / UDP(sport=546, dport=547) / Raw(payload))
    for _ in range(tries):
        sniffer = AsyncSniffer(iface=iface, filter="ip6 and udp dst port 546", store=True)
        sniffer.start()
        time.sleep(0.3)  # the sniffer's socket is open before the first send
        sendp(frame, iface=iface, verbose=False)
        time.sleep(3.0)
        results = sniffer.stop() or []
        for pkt in results:
            try:
                msg = c.parse(bytes(pkt[UDP].payload))
            except c.Dhcp6Error:
                continue
            if msg.msg_type == want and msg.transaction_id == int.from_bytes(payload[1:4], "big"):
                return msg
    return None


def main() -> int:
    iface = sys.argv[1]
    conf.verb = 0
    mac = open(f"/sys/class/net/{iface}/address").read().strip()
    if len(sys.argv) > 3 and sys.argv[2] == "--solicit-only":
        src = link_local(mac)
        for i in range(int(sys.argv[3])):  # a bounded number of unanswered Solicits, 1 s apart
            sendp(Ether(src=mac, dst="33:33:00:01:00:02") / IPv6(src=src, dst="ff02::1:2", hlim=1)
                  / UDP(sport=546, dport=547) / Raw(message(c.SOLICIT, 0x100 + i)), iface=iface, verbose=False)
            time.sleep(1.0)
        return 0
    adv = exchange(iface, mac, message(c.SOLICIT, 0x1001), c.ADVERTISE)
    if adv is None or adv.server_id is None:
        print("no Advertise", file=sys.stderr)
        return 1
    offered = next((a.address for ia in adv.ia_na for a in ia.addresses), None)
    reply = exchange(iface, mac, message(c.REQUEST, 0x1002, adv.server_id, offered), c.REPLY)
    if reply is None:
        print("no Reply", file=sys.stderr)
        return 1
    address = next((a.address for ia in reply.ia_na for a in ia.addresses), None)
    print(address, reply.boot_file_url or adv.boot_file_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
