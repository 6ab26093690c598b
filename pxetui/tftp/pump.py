"""Run the data phase of a lock-step read transfer in the C pump (_pump.c), on a bounded pool.

Stop-and-wait (windowsize 1: every PXE ROM, pxelinux, most UEFI loaders for small files) is
bound by round trips, and each round trip holds one turn of the server; the C loop makes that
turn a recv and a send with the GIL released, so transfers in one process also run on several
cores at once. The event loop keeps everything else: the request, the OACK, the events.

A pump holds its thread for the whole data phase, so the pool has at most `tftp.pump_threads`
threads and never queues: when every one is busy, the transfer stays in the event loop's
Python path (session.Sender.lockstep_ack), slower but without a thread (docs/SECURITY.md: a
host opening 1,500 transfers made 1,500 threads when each pump had its own).

Without the compiled module (no compiler at install time) or with PXETUI_TFTP_PUMP=0, lock-step
transfers stay in session.py's Python fast path, which follows the same rules.
"""

from __future__ import annotations

import asyncio
import os
import queue
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
# The serve() this file calls (first_giveup): a build of older source is not used.
API = 2


def _current() -> bool:
    return _pump is not None and getattr(_pump, "API", 1) >= API


def available() -> bool:
    return _current() and os.environ.get("PXETUI_TFTP_PUMP", "1") != "0"


def describe() -> str:
    """Which path lock-step transfers take, for the service's start-up log."""
    if available():
        return "the C pump"
    if _pump is None:
        return "Python (the C pump is not built)"
    if not _current():
        return "Python (the C pump was built from older source: run scripts/setup.sh again)"
    return "Python (PXETUI_TFTP_PUMP=0)"


@dataclass(frozen=True)
class Outcome:
    code: int
    acked: int
    retransmits: int
    peer_code: int
    message: str
    final_ack_lost: bool


class Pump:
    """One transfer's data phase: `start(pool)`, live `acked`/`retransmits`, `cancel()`, then
    `done` is called on the event loop with the Outcome (always exactly once)."""

    def __init__(self, sock: socket.socket, fd: int, offset: int, size: int, blksize: int,
                 rto: float, rto_cap: float, giveup: float, done: Callable[[Outcome], None],
                 first_giveup: float | None = None) -> None:
        if not _current():
            raise RuntimeError("the C pump is not built (or built from older source)")
        self.args = (sock.fileno(), fd, offset, size, blksize)
        # first_giveup: the silence allowed before the client's first ACK (session.py, "heard")
        self.timers = (rto, rto_cap, giveup, giveup if first_giveup is None else first_giveup)
        self.sock = sock
        self.done = done
        self.stats = array("q", [0, 0, 0, 0])  # acked, retransmits, cancel, srtt_us (_pump.c)
        self.loop = asyncio.get_running_loop()
        self.pool: PumpPool | None = None
        self.running = False

    @property
    def acked(self) -> int:
        return self.stats[0]

    @property
    def retransmits(self) -> int:
        return self.stats[1]

    def start(self, pool: PumpPool) -> bool:
        """Run on a thread of `pool`; False (nothing started) when every thread is busy."""
        if not pool.submit(self):
            return False
        self.pool = pool
        self.running = True
        return True

    def cancel(self) -> None:
        """Ask the loop to end; it wakes from recv at once (SHUT_RD) and reports CANCELLED."""
        self.stats[2] = 1
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def run(self) -> None:
        """On a pool thread: the whole data phase, then the outcome back to the loop."""
        assert _pump is not None
        if self.stats[2]:  # cancelled before a thread took it
            out = Outcome(CANCELLED, 0, 0, 0, "cancelled", False)
        else:
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
        if self.pool is not None:
            self.pool.busy -= 1
        self.done(out)


class PumpPool:
    """At most `size` threads, started as needed and kept; `submit` never queues behind a busy
    thread. `busy` is changed on the event loop only (submit, Pump._finish)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self.threads: list[threading.Thread] = []
        self.jobs: queue.SimpleQueue[Pump | None] = queue.SimpleQueue()

    def submit(self, pump: Pump) -> bool:
        if self.busy >= self.size:
            return False
        self.busy += 1
        if len(self.threads) < self.busy:  # every thread is (or is about to be) busy
            t = threading.Thread(target=self._work, name=f"tftp-pump-{len(self.threads)}", daemon=True)
            t.start()
            self.threads.append(t)
        self.jobs.put(pump)
        return True

    def _work(self) -> None:
        while (pump := self.jobs.get()) is not None:
            pump.run()

    def close(self, timeout: float = 0.5) -> None:
        """Let the threads end once their pumps have (cancel those first)."""
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join(timeout)
        self.threads = [t for t in self.threads if t.is_alive()]
