"""A bounded DHCP load generator on pxetui's own codec: DORA at a fixed rate, or a DISCOVER flood.

Run it inside a namespace made for it (tests/service/test_dhcp_durability.py, the tests in
tests/abuse/): it sends only to the address it is given, for at most `--seconds`, at most
`--count` clients, and prints one JSON object when done.

dora: acts as a relay agent, like perfdhcp (giaddr = its own address, replies come back
unicast to its port 67), so it needs no raw socket: a DISCOVER for each new client at
`--rate` per second, a REQUEST for each OFFER; every ACK is recorded as [mac, address].

    python bench/dhcp/dora.py dora --server 10.99.0.1 --giaddr 10.99.0.2 --rate 1000 --seconds 4

flood: DISCOVERs from random locally administered MACs, broadcast from port 68 of the
interface, like a host spoofing thousands of clients; nothing is awaited.

    python bench/dhcp/dora.py flood --iface eth0 --rate 2000 --seconds 5 --count 10000
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pxetui.dhcp import options as o  # noqa: E402
from pxetui.dhcp.codec import BOOTREPLY, BROADCAST_FLAG, DhcpParseError, Packet, build, parse  # noqa: E402

PXE = {o.VENDOR_CLASS: b"PXEClient:Arch:00000:UNDI:002001", o.CLIENT_ARCH: b"\x00\x00"}


def client_mac(run: int, n: int) -> bytes:
    """Distinct per client and per run; locally administered, so never a real NIC's."""
    return bytes((0x02, run)) + n.to_bytes(4, "big")


def dora(server: str, giaddr: str, rate: float, seconds: float, count: int, drain: float) -> dict[str, object]:
    gi = socket.inet_aton(giaddr)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((giaddr, 67))
    sock.setblocking(False)
    run = os.urandom(1)[0]
    sent = offers = naks = errors = 0
    acks: list[list[str]] = []
    acked: set[bytes] = set()
    start = time.monotonic()
    stop_sending = start + seconds
    deadline = stop_sending + drain
    while True:
        now = time.monotonic()
        if now >= deadline or (sent >= count and len(acked) + naks >= sent):
            break
        due = min(count, int((now - start) * rate) + 1) if now < stop_sending else sent
        while sent < due:
            mac = client_mac(run, sent)
            pkt = Packet(xid=sent, giaddr=gi, hops=1, chaddr=mac,
                         options={o.MSG_TYPE: bytes((o.DISCOVER,)), **PXE})
            try:
                sock.sendto(build(pkt), (server, 67))
            except OSError:  # the server is gone (ICMP unreachable): keep the pace, count it
                errors += 1
            sent += 1
        ready, _, _ = select.select([sock], [], [], 0.002)
        if not ready:
            continue
        for _ in range(256):
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                errors += 1
                break
            try:
                reply = parse(data)
            except DhcpParseError:
                continue
            msg = o.msg_type(reply)
            if reply.op != BOOTREPLY:
                continue
            if msg == o.OFFER:
                offers += 1
                req = Packet(xid=reply.xid, giaddr=gi, hops=1, chaddr=reply.chaddr[:6], options={
                    o.MSG_TYPE: bytes((o.REQUEST,)), o.SERVER_ID: reply.options.get(o.SERVER_ID, b""),
                    o.REQUESTED_IP: reply.yiaddr, **PXE})
                try:
                    sock.sendto(build(req), (server, 67))
                except OSError:
                    errors += 1
            elif msg == o.ACK and reply.chaddr[:6] not in acked:
                acked.add(reply.chaddr[:6])
                acks.append([reply.mac, reply.ip("yiaddr")])
            elif msg == o.NAK:
                naks += 1
    sock.close()
    return {"sent": sent, "offers": offers, "acks": acks, "naks": naks, "errors": errors,
            "unanswered": sent - offers, "seconds": round(time.monotonic() - start, 3)}


def flood(iface: str, rate: float, seconds: float, count: int) -> dict[str, object]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the OFFERs are not read
    sock.bind(("0.0.0.0", 68))
    sent = errors = 0
    start = time.monotonic()
    while sent < count:
        now = time.monotonic()
        if now - start >= seconds:
            break
        due = min(count, int((now - start) * rate) + 1)
        while sent < due:
            mac = bytearray(os.urandom(6))
            mac[0] = (mac[0] & 0xFC) | 0x02
            pkt = Packet(xid=sent, flags=BROADCAST_FLAG, chaddr=bytes(mac),
                         options={o.MSG_TYPE: bytes((o.DISCOVER,)), **PXE})
            try:
                sock.sendto(build(pkt), ("255.255.255.255", 67))
            except OSError:
                errors += 1
            sent += 1
        time.sleep(0.001)
    sock.close()
    return {"sent": sent, "errors": errors, "seconds": round(time.monotonic() - start, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("dora", help="full exchanges as a relay agent; prints every ACK")
    d.add_argument("--server", required=True)
    d.add_argument("--giaddr", required=True, help="this namespace's own address")
    d.add_argument("--drain", type=float, default=1.0, help="seconds to wait for late replies")
    f = sub.add_parser("flood", help="DISCOVERs from random MACs, broadcast")
    f.add_argument("--iface", default="eth0")
    for p in (d, f):
        p.add_argument("--rate", type=float, default=1000.0, help="new clients per second")
        p.add_argument("--seconds", type=float, default=4.0, help="stop sending after this (at most 60)")
        p.add_argument("--count", type=int, default=100000, help="at most this many clients")
    args = ap.parse_args(argv)
    seconds = min(args.seconds, 60.0)  # bounded whatever it is asked
    if args.mode == "dora":
        out = dora(args.server, args.giaddr, args.rate, seconds, args.count, min(args.drain, 10.0))
    else:
        out = flood(args.iface, args.rate, seconds, args.count)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
