"""Test rig: a lossy, slow link between two test namespaces (issue 4: loss and delay).

The kernel's netem qdisc is the first choice. Kernels built without sch_netem (this VM's and
CI's) get a userspace netem instead: two TAP devices, one in each namespace as `eth0`, joined
by a relay process that drops each Ethernet frame with probability `loss` and delivers the
others `delay` seconds after it read them, in order. The relay runs inside the server
namespace (nothing touches the root namespace), is tracked by PID like every rig process, and
exits on SIGTERM, when a TAP goes away, or after a bounded lifetime.

This file is also the relay and a small ICMP pinger: `python impair.py relay|ping ...`, run
inside a namespace. Both use the standard library only, so the rig functions import `netns`
(and with it pytest) where they are called, not at the top.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import json
import math
import os
import random
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netns import Netns, NetnsFactory

TUNSETIFF = 0x400454CA  # linux/if_tun.h
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
RELAY_LIFETIME = 600.0  # seconds; no test runs that long, so a stray relay cannot linger
FRAME_MAX = 65536


@dataclass
class Ping:
    sent: int
    rtts: list[float]  # seconds, one per answered echo

    @property
    def loss(self) -> float:
        return 1.0 - len(self.rtts) / self.sent if self.sent else 1.0


@dataclass
class ImpairedLink:
    """Server and client namespaces joined by an impaired link, `eth0` on both sides."""

    server: Netns
    client: Netns
    kind: str  # "netem" (kernel qdisc on a veth) or "relay" (userspace, two TAPs)
    loss: float
    delay: float
    server_ip: str
    relay: subprocess.Popen[bytes] | None = None
    relay_log: Path | None = None

    def ping(self, count: int = 10, interval: float = 0.01, wait: float = 1.0) -> Ping:
        """`count` ICMP echoes from the client to the server, `interval` apart."""
        r = self.client.run(sys.executable, __file__, "ping", self.server_ip, str(count), str(interval),
                            str(wait), timeout=30 + count * interval + wait)
        got = json.loads(r.stdout)
        return Ping(got["sent"], got["rtts"])

    def relay_stats(self) -> dict[str, dict[str, int]]:
        """Stop the relay and return what it counted per direction: frames read, dropped by
        choice, undelivered (the far TAP was down or full)."""
        assert self.relay is not None and self.relay_log is not None, "no relay on a netem link"
        self.server.stop(self.relay)
        lines = self.relay_log.read_text().splitlines()
        return json.loads(lines[-1])


def impaired_pair(netns: NetnsFactory, workdir: Path, server_addr: str = "10.99.0.1/24",
                  client_addr: str = "10.99.0.2/24", loss: float = 0.05, delay: float = 0.005,
                  seed: int = 1, netem: bool = True) -> ImpairedLink:
    """Server and client namespaces with `loss` (0..1) and `delay` (seconds) on each direction.

    Returns only once an echo went through. `netem=False` forces the userspace relay."""
    from netns import require_tool, wait_for

    s, c = netns.new("pxs"), netns.new("pxc")
    server_ip = server_addr.split("/")[0]
    link = ImpairedLink(s, c, "netem", loss, delay, server_ip)
    if not (netem and _try_netem(netns, s, c, server_addr, client_addr, loss, delay)):
        require_tool("/dev/net/tun", package="a kernel with CONFIG_TUN")
        link.kind = "relay"
        link.relay_log = workdir / f"relay-{s.name}.log"
        link.relay = _relay_link(s, c, server_addr, client_addr, loss, delay, seed, link.relay_log)
    # Frames flow: one echo answered (a few tries, each may be lost).
    wait_for(lambda: link.ping(5, 0.05, 0.5).rtts, timeout=20, interval=0,
             what=f"an echo over the {link.kind} link")
    return link


def _try_netem(netns: NetnsFactory, s: Netns, c: Netns, server_addr: str, client_addr: str,
               loss: float, delay: float) -> bool:
    netns.link(s, c, server_addr, client_addr)
    if shutil.which("tc"):
        cmd = ("tc", "qdisc", "add", "dev", "eth0", "root", "netem",
               "loss", f"{loss * 100:g}%", "delay", f"{delay * 1000:g}ms")
        if all(ns.run(*cmd, check=False).returncode == 0 for ns in (s, c)):
            return True
    # "Specified qdisc kind is unknown": no sch_netem. Deleting one end removes the pair.
    s.run("ip", "link", "del", "eth0")
    return False


def _relay_link(s: Netns, c: Netns, server_addr: str, client_addr: str, loss: float, delay: float,
                seed: int, log: Path) -> subprocess.Popen[bytes]:
    from netns import unique, wait_for

    ta, tb = unique("ta"), unique("tb")
    p = s.popen(sys.executable, __file__, "relay", ta, tb, str(loss), str(delay), str(seed), log=log)

    def made() -> bool:
        if p.poll() is not None:
            raise AssertionError(f"impair relay exited with {p.returncode}: {log.read_text()[-2000:]}")
        return s.run("ip", "link", "show", tb, check=False).returncode == 0

    wait_for(made, timeout=15, what="the relay's TAP devices")
    s.run("ip", "link", "set", tb, "netns", c.name)  # the relay keeps its fd across the move
    for ns, tap, addr in ((s, ta, server_addr), (c, tb, client_addr)):
        ns.run("ip", "link", "set", tap, "name", "eth0")
        ns.run("ip", "addr", "add", addr, "dev", "eth0")
        ns.run("ip", "link", "set", "eth0", "up")
    return p


# --- the relay (runs inside the server namespace) ---------------------------------------------

def _open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def relay(name_a: str, name_b: str, loss: float, delay: float, seed: int,
          lifetime: float = RELAY_LIFETIME) -> dict[str, dict[str, int]]:
    """Forward frames between two TAPs until SIGTERM, a TAP error (device gone) or `lifetime`.

    Each direction has its own seeded generator, so the n-th frame's fate is reproducible. A
    frame is due `delay` after it was read (never earlier than after it was sent), and a
    constant delay keeps a FIFO in order."""
    fds = (_open_tap(name_a), _open_tap(name_b))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    names = (f"{name_a}>{name_b}", f"{name_b}>{name_a}")
    stats = {n: {"frames": 0, "dropped": 0, "undelivered": 0} for n in names}
    queues: tuple[collections.deque[tuple[float, bytes]], ...] = (collections.deque(), collections.deque())
    rngs = (random.Random(seed), random.Random(seed + 1))
    sel = selectors.DefaultSelector()
    for i, fd in enumerate(fds):
        sel.register(fd, selectors.EVENT_READ, i)
    end = time.monotonic() + lifetime
    try:
        while not stopping and time.monotonic() < end:
            now = time.monotonic()
            heads = [q[0][0] for q in queues if q]
            timeout = min(0.2, max(0.0, min(heads) - now)) if heads else 0.2
            for key, _ in sel.select(timeout):
                i = key.data
                for _ in range(256):  # bounded batch, then the other side gets its turn
                    try:
                        frame = os.read(fds[i], FRAME_MAX)
                    except BlockingIOError:
                        break
                    # Read after the frame is here: a time taken before the batch (or before
                    # a preemption) made a frame that came in during it due too early.
                    now = time.monotonic()
                    st = stats[names[i]]
                    st["frames"] += 1
                    if rngs[i].random() < loss:
                        st["dropped"] += 1
                    else:
                        queues[i].append((now + delay, frame))
            now = time.monotonic()
            for i, q in enumerate(queues):
                while q and q[0][0] <= now:
                    try:
                        os.write(fds[1 - i], q.popleft()[1])
                    except OSError as e:
                        # EIO: the far side is not up (yet); EAGAIN: its backlog is full. A
                        # loss, as on a wire. Anything else (EBADFD) ends the relay below.
                        if e.errno not in (errno.EIO, errno.EAGAIN, errno.ENOBUFS):
                            raise
                        stats[names[i]]["undelivered"] += 1
    except OSError as e:  # EBADFD: a TAP was deleted (by hand, or with its namespace)
        print(f"relay: stopping, a TAP went away: {e}", file=sys.stderr)
    finally:
        for fd in fds:
            os.close(fd)
    return stats


# --- the pinger (runs inside the client namespace) ----------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping(dst: str, count: int, interval: float, wait: float) -> Ping:
    """Echo requests `interval` apart, replies collected until `wait` after the last one.
    An RTT runs from just before sendto to just after recv, so it bounds the path's delay from above."""
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sent_at: list[float] = []
    answered: set[int] = set()
    rtts: list[float] = []
    next_send, deadline = time.monotonic(), math.inf
    while time.monotonic() < deadline and len(answered) < count:
        now = time.monotonic()
        if len(sent_at) < count and now >= next_send:
            seq = len(sent_at)
            body = struct.pack("!HH", ident, seq) + b"pxetui-impair".ljust(48, b".")
            pkt = struct.pack("!BBH", 8, 0, _checksum(struct.pack("!BBH", 8, 0, 0) + body)) + body
            sent_at.append(time.monotonic())
            sock.sendto(pkt, (dst, 0))
            next_send += interval
            if len(sent_at) == count:
                deadline = time.monotonic() + wait
            continue
        until = deadline if len(sent_at) == count else next_send
        sock.settimeout(max(0.0, until - time.monotonic()) or 1e-4)
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        got = time.monotonic()
        icmp = data[(data[0] & 0x0F) * 4:]
        if len(icmp) >= 8 and icmp[0] == 0:  # echo reply
            rid, rseq = struct.unpack("!HH", icmp[4:8])
            if rid == ident and rseq < len(sent_at) and rseq not in answered:
                answered.add(rseq)
                rtts.append(got - sent_at[rseq])
    return Ping(len(sent_at), rtts)


def main(argv: list[str]) -> int:
    if argv[:1] == ["relay"] and len(argv) == 6:
        print(json.dumps(relay(argv[1], argv[2], float(argv[3]), float(argv[4]), int(argv[5]))), flush=True)
        return 0
    if argv[:1] == ["ping"] and len(argv) == 5:
        p = ping(argv[1], int(argv[2]), float(argv[3]), float(argv[4]))
        print(json.dumps({"sent": p.sent, "rtts": p.rtts}))
        return 0
    print("usage: impair.py relay TAP_A TAP_B LOSS DELAY SEED | ping DST COUNT INTERVAL WAIT",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
