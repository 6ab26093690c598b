"""Run the data phase of a lock-step read transfer in the C pump (_pump.c), in its own thread.

Stop-and-wait (windowsize 1: every PXE ROM, pxelinux, most UEFI loaders for small files) is
bound by round trips, and each round trip holds one turn of the server; the C loop makes that
turn a recv and a send with the GIL released, so transfers in one process also run on several
cores at once. The event loop keeps everything else: the request, the OACK, the events.

Without the compiled module (no compiler at install time) or with PXETUI_TFTP_PUMP=0, lock-step
transfers stay in session.py's Python fast path, which follows the same rules.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

_pump: ModuleType | None
try:
    from pxetui.tftp import _pump
except ImportError:
    _pump = None

# serve()'s result codes, as in _pump.c.
DONE, PEER_ERROR, TIMEOUT, UNREACHABLE, READ_ERROR, SEND_ERROR, CANCELLED = range(7)
# Smaller files (menus, configs, pxelinux's modules) end before a thread would pay off.
MIN_SIZE = 64 * 1024


def available() -> bool:
    return _pump is not None and os.environ.get("PXETUI_TFTP_PUMP", "1") != "0"


def describe() -> str:
    """Which path lock-step transfers take, for the service's start-up log."""
    if available():
        return "the C pump"
    return "Python (PXETUI_TFTP_PUMP=0)" if _pump is not None else "Python (the C pump is not built)"


@dataclass(frozen=True)
class Outcome:
    code: int
    acked: int
    retransmits: int
    peer_code: int
    message: str
    final_ack_lost: bool


class Pump:
    """One transfer's data phase: `start()`, live `acked`/`retransmits`, `cancel()`, then `done`
    is called on the event loop with the Outcome (always exactly once)."""

    def __init__(self, sock: socket.socket, fd: int, offset: int, size: int, blksize: int,
                 rto: float, rto_cap: float, giveup: float, done: Callable[[Outcome], None]) -> None:
        if _pump is None:
            raise RuntimeError("the C pump is not built")
        self.args = (sock.fileno(), fd, offset, size, blksize)
        self.timers = (rto, rto_cap, giveup)
        self.sock = sock
        self.done = done
        self.stats = array("q", [0, 0, 0, 0])  # acked, retransmits, cancel, srtt_us (_pump.c)
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._run, name="tftp-pump", daemon=True)
        self.running = False

    @property
    def acked(self) -> int:
        return self.stats[0]

    @property
    def retransmits(self) -> int:
        return self.stats[1]

    def start(self) -> None:
        self.running = True
        self.thread.start()

    def cancel(self) -> None:
        """Ask the loop to end; it wakes from recv at once (SHUT_RD) and reports CANCELLED."""
        self.stats[2] = 1
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def _run(self) -> None:
        assert _pump is not None
        try:
            code, acked, retransmits, peer, msg, lost = _pump.serve(*self.args, self.stats, *self.timers)
            out = Outcome(code, acked, retransmits, peer, msg.decode("utf-8", "replace"), lost)
        except Exception as exc:  # noqa: BLE001 - reported as this transfer's failure
            out = Outcome(SEND_ERROR, self.stats[0], self.stats[1], 0, f"pump failed: {exc}", False)
        try:
            self.loop.call_soon_threadsafe(self._finish, out)
        except RuntimeError:
            pass  # the loop is closed: the process is ending

    def _finish(self, out: Outcome) -> None:
        self.running = False
        self.done(out)
