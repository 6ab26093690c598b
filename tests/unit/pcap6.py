"""IPv6 boot frames for the capture tests, and the golden capture tests/data/pcap/ovmf_pxe6.pcapng.

The exchange is built, not recorded (the recorded one is ovmf_pxe6_real.pcap): "PXE over IPv6"
as EDK2 asks (the Solicit as pxetui.dhcp6's golden one: options 1, 3 IA_NA, 6 ORO asking 59/60,
8, 16 enterprise 343 `PXEClient:Arch:00007:UNDI:003016`, 61 = 7, 62) but with a DUID-UUID, which
names no MAC (the real capture's DUID-LLT does: this covers the harder case), and what a DHCPv6
server answers (dnsmasq with `enable-ra` and option6:bootfile-url): an RA with the M flag,
Solicit, Advertise with option 59, Request, Reply, then the loader's TFTPv6 download as the
capture filter keeps it (RRQ, OACK, 1-in-64 ACKs, the short last DATA) and the kernel over
HTTP on IPv6.

Regenerate with `.venv/bin/python tests/unit/pcap6.py` (test_capture_ipv6 checks the file is
what this module writes).
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter

from pxetui.dhcp6 import codec as c

T0 = 1_790_000_000.0
CLIENT_MAC = "52:54:00:12:34:0d"
CLIENT_LL = "fe80::5054:ff:fe12:340d"
SERVER_MAC = "52:54:00:00:99:01"
SERVER_LL = "fe80::5054:ff:fe00:9901"
SERVER = "fd99::1"
ADDRESS = "fd99::1000"
BOOT_URL = f"tftp://[{SERVER}]/grubx64.efi"
LOADER_SIZE = 1373 * 1456 + 300  # the last block short of 512 bytes: the filter keeps it
BLKSIZE = 1456
KERNEL_SIZE = 8_222_656
DUID = bytes.fromhex("0004" "8fcdd6b4e4b34e5fa3b3a5e0d5a4a5f1")  # DUID-UUID: names no MAC
XID = 0x5A3C1E
IAID = 0x0C0D0E0F
GOLDEN = Path(__file__).resolve().parent.parent / "data" / "pcap" / "ovmf_pxe6.pcapng"


def _vendor(text: bytes) -> bytes:
    return c.encode_vendor_class(c.VendorClass(c.ENTERPRISE_PXE, [text]))


def client_msg(kind: int, xid: int = XID, address: str | None = None, server_id: bytes | None = None,
               arch: int | None = 7, vendor: bytes = b"PXEClient:Arch:00007:UNDI:003016",
               duid: bytes = DUID) -> bytes:
    """A Solicit or Request as EDK2 orders its options."""
    m = c.Dhcp6Message(kind, xid)
    m.add(c.OPT_CLIENTID, duid)
    if server_id is not None:
        m.add(c.OPT_SERVERID, server_id)
    ia = c.IaNa(IAID, 0, 0, [c.IaAddress(address, 0, 0)] if address else [])
    m.add(c.OPT_IA_NA, c.encode_ia_na(ia))
    m.add(c.OPT_ORO, struct.pack("!4H", 59, 60, 23, 24))
    m.add(c.OPT_ELAPSED_TIME, b"\0\0")
    if vendor:
        m.add(c.OPT_VENDOR_CLASS, _vendor(vendor))
    if arch is not None:
        m.add(c.OPT_CLIENT_ARCH_TYPE, struct.pack("!H", arch))
        m.add(c.OPT_NII, b"\x01\x03\x00")
    return c.encode(m)


def server_msg(kind: int, xid: int = XID, address: str | None = ADDRESS, url: str | None = BOOT_URL,
               duid: bytes = DUID, server_mac: str = SERVER_MAC) -> bytes:
    """An Advertise or Reply: server id, the client's id, IA_NA, option 59."""
    m = c.Dhcp6Message(kind, xid)
    m.add(c.OPT_SERVERID, c.duid_ll(server_mac))
    m.add(c.OPT_CLIENTID, duid)
    addrs = [c.IaAddress(address, 3600, 7200)] if address else []
    m.add(c.OPT_IA_NA, c.encode_ia_na(c.IaNa(IAID, 1800, 2880, addrs)))
    if url is not None:
        m.add(c.OPT_BOOTFILE_URL, url.encode())
    return c.encode(m)


def dhcp6(payload: bytes, from_client: bool, client_mac: str = CLIENT_MAC, client_ll: str = CLIENT_LL,
          server_mac: str = SERVER_MAC, server_ll: str = SERVER_LL) -> Packet:
    if from_client:  # RFC 8415 7.1: to All_DHCP_Relay_Agents_and_Servers
        return (Ether(src=client_mac, dst="33:33:00:01:00:02") / IPv6(src=client_ll, dst="ff02::1:2", hlim=1)
                / UDP(sport=546, dport=547) / Raw(payload))
    return (Ether(src=server_mac, dst=client_mac) / IPv6(src=server_ll, dst=client_ll)
            / UDP(sport=547, dport=546) / Raw(payload))


def router_advert(managed: bool = True, prefix: str = "fd99::", src_mac: str = SERVER_MAC,
                  src: str = SERVER_LL) -> Packet:
    """RFC 4861 4.2 with a Source Link-Layer Address and one Prefix Information option, by hand."""
    flags = (0x80 if managed else 0) | 0x40
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, flags, 1800, 0, 0)
    body += struct.pack("!BB", 1, 1) + bytes.fromhex(src_mac.replace(":", ""))
    body += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, prefix)
    ip = IPv6(src=src, dst="ff02::1", hlim=255, nh=58)
    # The checksum is left 0: the capture does not check it, and the frames never go on a wire.
    return Ether(src=src_mac, dst="33:33:00:00:00:01") / ip / Raw(body)


def udp6(src: str, dst: str, sport: int, dport: int, payload: bytes, to_server: bool = True) -> Packet:
    smac, dmac = (CLIENT_MAC, SERVER_MAC) if to_server else (SERVER_MAC, CLIENT_MAC)
    return Ether(src=smac, dst=dmac) / IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)


def tcp6(to_server: bool, seq: int, ack: int, flags: str, payload: bytes = b"",
         client: tuple[str, int] = (ADDRESS, 40000), server: tuple[str, int] = (SERVER, 80)) -> Packet:
    (src, sport), (dst, dport) = (client, server) if to_server else (server, client)
    smac, dmac = (CLIENT_MAC, SERVER_MAC) if to_server else (SERVER_MAC, CLIENT_MAC)
    return (Ether(src=smac, dst=dmac) / IPv6(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags) / Raw(payload))


def ovmf_pxe6() -> list[tuple[float, Packet]]:
    """The whole healthy IPv6 boot, (seconds after T0, frame) in order."""
    server_id = c.duid_ll(SERVER_MAC)
    out: list[tuple[float, Packet]] = [
        (0.0, router_advert()),
        (0.5, dhcp6(client_msg(c.SOLICIT), True)),
        (0.52, dhcp6(server_msg(c.ADVERTISE), False)),
        (1.5, dhcp6(client_msg(c.REQUEST, address=ADDRESS, server_id=server_id), True)),
        (1.52, dhcp6(server_msg(c.REPLY), False)),
    ]
    t, cport, sport = 2.0, 1501, 50001
    out.append((t, udp6(ADDRESS, SERVER, cport, 69,
                        b"\0\x01grubx64.efi\0octet\0blksize\0" + str(BLKSIZE).encode() + b"\0tsize\0000\0")))
    out.append((t + 0.01, udp6(SERVER, ADDRESS, sport, cport,
                               b"\0\x06blksize\0" + str(BLKSIZE).encode() + b"\0tsize\0"
                               + str(LOADER_SIZE).encode() + b"\0", to_server=False)))
    out.append((t + 0.02, udp6(ADDRESS, SERVER, cport, sport, b"\0\x04\0\0")))  # ACK 0 (of the OACK)
    blocks = -(-LOADER_SIZE // BLKSIZE)
    for i, block in enumerate(range(64, blocks, 64)):  # the filter keeps 1 ACK in 64
        out.append((t + 0.03 + i * 0.05, udp6(ADDRESS, SERVER, cport, sport, b"\0\x04" + struct.pack("!H", block))))
    last = LOADER_SIZE - (blocks - 1) * BLKSIZE
    t = 3.2
    out.append((t, udp6(SERVER, ADDRESS, sport, cport, b"\0\x03" + struct.pack("!H", blocks) + b"x" * last,
                        to_server=False)))
    # GRUB fetches the kernel over HTTP on IPv6 (root=http,[fd99::1]).
    t = 4.0
    req = f"GET /linux HTTP/1.1\r\nHost: [{SERVER}]\r\nUser-Agent: GRUB 2.06\r\n\r\n".encode()
    resp = f"HTTP/1.1 200 OK\r\nContent-Length: {KERNEL_SIZE}\r\n\r\n".encode()
    out.append((t, tcp6(True, 1, 1, "PA", req)))
    out.append((t + 0.01, tcp6(False, 1, 1 + len(req), "PA", resp)))
    out.append((t + 1.0, tcp6(False, 1 + len(resp) + KERNEL_SIZE, 1 + len(req), "FA")))
    out.append((t + 1.01, tcp6(True, 1 + len(req), 2 + len(resp) + KERNEL_SIZE, "FA")))
    return out


def write(path: Path, frames: list[tuple[float, Packet]]) -> None:
    with PcapNgWriter(str(path)) as w:
        for t, pkt in frames:
            pkt.time = T0 + t
            w.write(pkt)


if __name__ == "__main__":
    write(GOLDEN, ovmf_pxe6())
    print(f"wrote {GOLDEN}")
