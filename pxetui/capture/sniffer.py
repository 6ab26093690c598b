"""Receive the frames the BPF filter keeps, from one interface.

`RawSniffer` is an AF_PACKET socket with the filter attached in the kernel (SO_ATTACH_FILTER),
read without a thread through the event loop; it is what the capture service uses.
`ScapySniffer` wraps scapy's AsyncSniffer with the same interface, for comparison
(bench/capture/) and for hosts where the raw socket is unavailable. Measured in bench/capture:
see its README for the numbers that made the raw socket the default.

Both raise `CaptureError` at start with a sentence a user can act on: no privilege, no such
interface, no libpcap. scapy's own `AsyncSniffer.start()` fails silently when unprivileged
(docs/FIELD-NOTES.md), so `ScapySniffer` opens its socket itself first.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from pxetui.capture.filters import CompiledFilter, FilterError, compile_filter

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33  # root may exceed rmem_max
SOL_PACKET = 263
PACKET_STATISTICS = 6
SNAPLEN = 65535

FrameHandler = Callable[[bytes, float], None]


class CaptureError(RuntimeError):
    """The capture cannot run; the message says why and what to do."""


def _explain(exc: OSError, iface: str) -> CaptureError:
    if exc.errno in (errno.EPERM, errno.EACCES):
        return CaptureError(
            f"capture on {iface}: permission denied; run as root or give the Python binary "
            "CAP_NET_RAW (setcap cap_net_raw+ep)"
        )
    if exc.errno in (errno.ENODEV, errno.ENXIO):
        return CaptureError(f"capture on {iface}: no such interface")
    return CaptureError(f"capture on {iface}: {exc.strerror or exc}")


# Seconds the socket is left unread after a wake-up that emptied it, so a storm's frames are
# read in batches, not one wake-up each (as the DHCP services do, pxetui/dhcp/transport.py HOLD).
# Capture only watches: a few ms later is nothing, and the 4 MiB queue holds about a second of
# a 5,000 DORA/s storm. A frame's time is still taken when it is read, so at most this late.
HOLD = 0.002


class RawSniffer:
    def __init__(self, iface: str, filter_text: str, rcvbuf: int = 4 << 20, hold: float = HOLD) -> None:
        self.iface = iface
        self.filter_text = filter_text
        self.rcvbuf = rcvbuf
        self.hold = hold
        self._resume: asyncio.TimerHandle | None = None
        self.sock: socket.socket | None = None
        self._keep: Any = None  # the BPF program buffer must outlive the setsockopt
        self.received = 0
        self.kernel_drops = 0
        self.error: CaptureError | None = None  # set when reading failed for good
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        try:
            prog: CompiledFilter = compile_filter(self.filter_text)
        except FilterError as exc:
            raise CaptureError(str(exc)) from exc
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except OSError as exc:
            raise _explain(exc, self.iface) from exc
        try:
            fprog, self._keep = prog.sock_fprog()
            # Filter first, then bind: nothing unfiltered is queued in between.
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rcvbuf)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.bind((self.iface, 0))
        except OSError as exc:
            sock.close()
            raise _explain(exc, self.iface) from exc
        sock.setblocking(False)
        # Frames queued from other interfaces before bind() took effect: drop them.
        while True:
            try:
                sock.recv(SNAPLEN)
            except BlockingIOError:
                break
        self.stats()  # reset the kernel counters
        self.sock = sock

    def read_ready(self, handler: FrameHandler, budget: int = 1024) -> int:
        """Drain up to `budget` frames without blocking; returns how many were handled."""
        assert self.sock is not None
        n = 0
        recvfrom = self.sock.recvfrom
        while n < budget:
            try:
                data, addr = recvfrom(SNAPLEN)
            except BlockingIOError:
                loop = self._loop
                if self.hold > 0 and loop is not None and self._resume is None:
                    loop.remove_reader(self.sock.fileno())
                    self._resume = loop.call_later(self.hold, self._rearm, handler)
                break
            except OSError as exc:
                if exc.errno == errno.ENETDOWN and self._exists():
                    break  # link down (cable, switch port): keep the socket, frames resume
                # Interface removed, or worse: stop reading (a callback that raises would be
                # called again at once) and let the owner see `error` on its next tick.
                self.error = _explain(exc, self.iface) if exc.errno != errno.ENETDOWN else \
                    CaptureError(f"capture on {self.iface}: the interface disappeared")
                if self._loop is not None:
                    self.detach(self._loop)
                break
            n += 1
            handler(data, time.time())
        self.received += n
        return n

    def _exists(self) -> bool:
        try:
            socket.if_nametoindex(self.iface)
        except OSError:
            return False
        return True

    def attach(self, loop: asyncio.AbstractEventLoop, handler: FrameHandler) -> None:
        if self.sock is None:
            self.open()
        assert self.sock is not None
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self.read_ready, handler)

    def _rearm(self, handler: FrameHandler) -> None:
        self._resume = None
        if self.sock is not None and self._loop is not None:
            self._loop.add_reader(self.sock.fileno(), self.read_ready, handler)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self.sock is not None and self._loop is not None:
            loop.remove_reader(self.sock.fileno())
            self._loop = None

    def stats(self) -> tuple[int, int]:
        """(packets, drops) counted by the kernel since the last call (tpacket_stats)."""
        if self.sock is None:
            return 0, 0
        packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self.kernel_drops += drops
        return packets, drops

    def close(self) -> None:
        if self.sock is not None:
            self.stats()
            self.sock.close()
            self.sock = None


class ScapySniffer:
    """scapy's AsyncSniffer behind the same start/stop shape; the handler runs in its thread."""

    def __init__(self, iface: str, filter_text: str) -> None:
        self.iface = iface
        self.filter_text = filter_text
        self.received = 0
        self._sniffer: Any = None
        self._lock = threading.Lock()

    def start(self, handler: FrameHandler) -> None:
        try:
            from scapy.config import conf
            from scapy.sendrecv import AsyncSniffer
        except ImportError as exc:
            raise CaptureError(f"scapy is not installed: {exc}") from exc
        try:
            compile_filter(self.filter_text)
        except FilterError as exc:
            raise CaptureError(str(exc)) from exc
        # AsyncSniffer.start() swallows a failed socket open until stop(): open it here.
        try:
            sock = conf.L2listen(iface=self.iface, filter=self.filter_text)
        except OSError as exc:
            raise _explain(exc, self.iface) from exc
        except Exception as exc:  # scapy wraps libpcap/interface errors in its own types
            raise CaptureError(f"capture on {self.iface}: {exc}") from exc

        def prn(pkt: Any) -> None:
            with self._lock:
                self.received += 1
            handler(bytes(pkt), float(pkt.time))

        self._sniffer = AsyncSniffer(opened_socket=sock, prn=prn, store=False)
        self._sniffer.start()

    def stop(self) -> None:
        if self._sniffer is not None:
            try:
                self._sniffer.stop()
            except Exception:  # already stopped (its thread ended): nothing left to release
                pass
            self._sniffer = None
