"""A TFTP download as a booting client makes it: blksize, windowsize and tsize asked for
(RFC 2347/2348/2349/7440), packets built and parsed by tftpy. tftpy 0.8's own TftpClient
refuses an OACK that carries windowsize ("Unsupported option"), so the receiving loop is here:
one ACK per window, and the last in-order block ACKed again on a gap or a timeout (RFC 7440 4)."""

from __future__ import annotations

import hashlib
import socket
import time
from dataclasses import dataclass
from typing import Any

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import (
    TftpPacketACK,
    TftpPacketDAT,
    TftpPacketERR,
    TftpPacketOACK,
    TftpPacketRRQ,
)

from pxetui.digits import ascii_int

RETRIES = 5


class TftpFailed(Exception):
    pass


@dataclass
class Got:
    size: int
    seconds: float
    blksize: int
    windowsize: int
    sha256: str


def _ack(n: int) -> bytes:
    p = TftpPacketACK()
    p.blocknumber = n & 0xFFFF
    return bytes(p.encode().buffer)


def _oack_numbers(name: str, options: dict[Any, Any]) -> dict[str, int]:
    """The OACK's values as numbers (RFC 2347: ASCII digits); anything else fails the fetch
    with its name: whoever answered may not be our server."""
    out: dict[str, int] = {}
    for k, v in options.items():
        key = (k.decode(errors="replace") if isinstance(k, bytes) else str(k)).lower()
        text = v.decode(errors="replace") if isinstance(v, bytes) else str(v)
        number = ascii_int(text, 10)
        if number is None:
            raise TftpFailed(f"{name}: the server's OACK gives {key} a value that is not a number: {text[:20]!r}")
        out[key] = number
    return out


def fetch(server: str, name: str, blksize: int = 1468, windowsize: int = 8, port: int = 69,
          timeout: float = 2.0, deadline: float = 120.0) -> Got:
    """Download `name`, keeping only its size and digest; TftpFailed says why in plain words."""
    rrq = TftpPacketRRQ()
    rrq.filename, rrq.mode = name.encode(), b"octet"
    rrq.options = {"blksize": str(blksize), "windowsize": str(windowsize), "tsize": "0"}
    first = bytes(rrq.encode().buffer)
    factory = TftpPacketFactory()
    digest = hashlib.sha256()
    size, expected, in_window, tries = 0, 1, 0, 0
    blk, win, peer = 512, 1, None
    last = first
    t0 = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(first, (server, port))
        while True:
            if time.monotonic() - t0 > deadline:
                raise TftpFailed(f"{name}: not finished after {deadline:.0f} s ({size} bytes received)")
            try:
                data, addr = sock.recvfrom(65536)
            except TimeoutError:
                tries += 1
                if tries > RETRIES:
                    where = f"{server}:{port}" if peer is None else f"{peer[0]}:{peer[1]}"
                    raise TftpFailed(f"{name}: no answer from TFTP at {where} for {RETRIES * timeout:.0f} s "
                                     "(the engine is not serving TFTP, or a firewall drops UDP 69: "
                                     "run pxetui doctor)") from None
                sock.sendto(last, peer or (server, port))
                continue
            if addr[0] != server or (peer is not None and addr != peer):
                continue  # not our transfer (RFC 1350: a stray TID)
            peer, tries = addr, 0
            try:
                pkt = factory.parse(data)
            except Exception as exc:  # tftpy raises TftpException and struct errors alike
                raise TftpFailed(f"{name}: the server sent a packet that is not TFTP ({exc})") from None
            if isinstance(pkt, TftpPacketERR):
                msg = pkt.errmsg.decode(errors="replace") if isinstance(pkt.errmsg, bytes) else str(pkt.errmsg)
                raise TftpFailed(f"{name}: the server answered error {pkt.errorcode}: {msg.strip(chr(0))}")
            if isinstance(pkt, TftpPacketOACK):
                opts = _oack_numbers(name, pkt.options)
                blk, win = opts.get("blksize", 512), opts.get("windowsize", 1)
                last = _ack(0)
                sock.sendto(last, peer)
                continue
            if not isinstance(pkt, TftpPacketDAT):
                continue
            if (pkt.blocknumber - expected) & 0xFFFF:
                if in_window:  # a gap: say where we are, the server resends from there
                    last, in_window = _ack(expected - 1), 0
                    sock.sendto(last, peer)
                continue
            digest.update(pkt.data)
            size += len(pkt.data)
            expected += 1
            in_window += 1
            done = len(pkt.data) < blk
            if done or in_window >= win:
                last, in_window = _ack(pkt.blocknumber), 0
                sock.sendto(last, peer)
            if done:
                return Got(size, time.monotonic() - t0, blk, win, digest.hexdigest())
