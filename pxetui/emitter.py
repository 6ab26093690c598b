"""Both ends of the event pipe between a service process and whoever reads it (the supervisor,
or a TFTP service reading its workers).

Writing: serving never waits for watching. A service hands every event to `LineEmitter`, which
queues it (bounded) and writes JSON lines into a non-blocking pipe: as much as the pipe takes,
then it waits for writability with `loop.add_writer`; it never spins and never blocks the
event loop that answers DHCP, TFTP and HTTP. When the reader falls behind, a progress event
(a class with `coalesce` set, e.g. TransferProgress) replaces the still-queued one of its
transfer, and once the queue is full other events are dropped and counted by type; one
`EventsDropped` a second at most, written ahead of what is waiting, tells the reader what it
lost, during a sustained storm too.
The events written keep the order they were emitted in.

Reading: `LineReader` reads big chunks and splits them into lines, so a reader spends one
await per chunk rather than one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import socket
import stat
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable

from pxetui.config import EventsConfig
from pxetui.events import Event, EventsDropped, dumps
from pxetui.persecond import PerSecond

FLUSH_EVERY = 0.02  # seconds events wait to share one write: a storm emits thousands a second
FLUSH_AT = 512  # ... or this many queued, whichever comes first
CHUNK = 1 << 18  # bytes per write() and per read(): more than a pipe holds
REPORT_EVERY = 1.0  # at most one EventsDropped a second
# A wider pipe rides out a reader late by a few hundred ms without queueing here at all:
# 1 MB is the default pipe-max-size, so it works unprivileged too.
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux; Python 3.11 lacks the name
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)  # Linux
LINE_MAX = 16 * 1024 * 1024  # a longer line is a bug in the writer: skipped, counted


def widen_pipe(fd: int, size: int = PIPE_SIZE) -> None:
    """Enlarge `fd`'s kernel buffer where allowed: a pipe, or the socket pair uvloop gives a
    subprocess for its stdout (`pxetui serve` runs on uvloop). Anything else is left alone."""
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode):
            fcntl.fcntl(fd, F_SETPIPE_SZ, size)
        elif stat.S_ISSOCK(mode):
            sock = socket.socket(fileno=os.dup(fd))
            try:  # FORCE: past net.core.wmem_max, as root (services start as root)
                sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, size)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            finally:
                sock.close()
    except OSError:
        pass  # over the limits unprivileged: the default buffer still works


class _Slot:
    """A queued event a newer one of the same slot may supersede (`line` None: superseded)."""

    __slots__ = ("key", "line")

    def __init__(self, line: bytes, key: tuple[str, str]) -> None:
        self.line: bytes | None = line
        self.key = key


class LineEmitter:
    """Events of one service as JSON lines into `fd`, through a bounded queue (see the module
    docstring). Call it with an event; `close()` once at the end of the process."""

    def __init__(self, fd: int, service: str, queue_max: int = EventsConfig.queue_max, *,
                 report_every: float = REPORT_EVERY, packet_rate: int = EventsConfig.packet_rate,
                 clock: Callable[[], float] = time.monotonic) -> None:
        os.set_blocking(fd, False)
        widen_pipe(fd)
        self.fd, self.service, self.queue_max = fd, service, queue_max
        self.report_every, self.clock = report_every, clock
        self._queue: deque[bytes | _Slot] = deque()
        self._live = 0  # queued events not superseded: what queue_max bounds
        self._dead = 0  # superseded slots still in _queue (skipped when written, compacted)
        self._latest: dict[tuple[str, str], _Slot] = {}  # coalesce slot -> its queued event
        self._pending: memoryview | None = None  # the rest of a partial write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting = False  # add_writer is registered: the pipe was full
        self._scheduled = False
        self._report_timer: asyncio.TimerHandle | None = None
        self._reported = float("-inf")
        self.dropped: Counter[str] = Counter()  # since the last EventsDropped
        self.dropped_packets: Counter[str] = Counter()  # ... their Event.tally() (DHCP messages)
        self._packets = PerSecond(packet_rate, clock)  # admit's budget (events.packet_rate)
        self.coalesced = 0  # progress events superseded by a newer one (not lost: outdated)
        self.closed = False  # the reader is gone, or close() ran

    def __len__(self) -> int:
        return self._live

    @property
    def backlog(self) -> int:
        """Entries held, superseded ones included: bounded by 2 * queue_max + FLUSH_AT."""
        return len(self._queue)

    # -- in ---------------------------------------------------------------------------
    def admit(self, kind: str, tally: str | None) -> bool:
        """Whether to make a per-packet event at all: at most `packet_rate` a second
        (events.packet_rate). A refused one is counted as dropped (`tally`: what the DHCP
        counters count it as; None: nothing). Asked before the event is made, so a storm above
        the rate costs the service no event work nobody could read."""
        if self._packets.take():
            return True
        self.dropped[kind] += 1
        if tally is not None:
            self.dropped_packets[tally] += 1
        self._kick()  # the report goes out with the next flush
        return False

    def __call__(self, ev: Event) -> None:
        if self.closed:
            return
        if not ev.service:
            ev.service = self.service
        if self._live >= self.queue_max and not self._waiting:
            self.flush()  # full, but the pipe may still take some: drop only when it does not
            if self.closed:
                return
        field = ev.coalesce
        if field is None:
            if self._live >= self.queue_max:
                self.dropped[type(ev).__name__] += 1
                tally = ev.tally()
                if tally is not None:
                    self.dropped_packets[tally] += 1
                return
            self._queue.append(dumps(ev.to_dict()))
        else:
            key = (type(ev).__name__, str(getattr(ev, field)))
            old = self._latest.get(key)
            if old is not None and (self._waiting or self._live >= self.queue_max):
                # Under pressure the newest count of a transfer is all a reader needs; the
                # new one goes to the back so the output stays in emission order.
                old.line = None
                self._dead += 1
                self._live -= 1
                self.coalesced += 1
            elif self._live >= self.queue_max:
                self.dropped[key[0]] += 1
                return
            slot = _Slot(dumps(ev.to_dict()), key)
            self._latest[key] = slot
            self._queue.append(slot)
            if self._dead > max(FLUSH_AT, self._live):
                self._compact()
        self._live += 1
        self._kick()

    def _compact(self) -> None:
        self._queue = deque(i for i in self._queue if type(i) is not _Slot or i.line is not None)
        self._dead = 0

    def _kick(self) -> None:
        if self._waiting:
            return  # the writability callback writes it
        if self._live >= FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            loop = self._get_loop()
            if loop is None:
                self.flush()
                return
            self._scheduled = True
            loop.call_later(FLUSH_EVERY, self.flush)

    def _get_loop(self) -> asyncio.AbstractEventLoop | None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # outside a loop (start-up, shut-down): write what fits, no waiting
            return None
        return self._loop

    # -- out --------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what the pipe takes now; the rest waits for writability (never blocks)."""
        self._scheduled = False
        if not self._waiting and not self.closed:
            self._drain()

    def _drain(self) -> None:
        done = self._write()
        if self._report_due() and done:
            done = self._write()  # the report itself
        if done:
            if self._waiting and self._loop is not None:
                self._loop.remove_writer(self.fd)
            self._waiting = False
        elif not self.closed and not self._waiting:
            loop = self._get_loop()
            if loop is not None:
                loop.add_writer(self.fd, self._drain)
                self._waiting = True

    def _write(self) -> bool:
        """Write until the queue is empty (True) or the pipe is full or gone (False)."""
        while True:
            if self._pending is None:
                data = self._take()
                if not data:
                    return True
                self._pending = memoryview(data)
            try:
                n = os.write(self.fd, self._pending)
            except BlockingIOError:
                return False
            except OSError:  # EPIPE and the like: the reader is gone, nobody left to tell
                self._gone()
                return False
            self._pending = self._pending[n:] if n < len(self._pending) else None

    def _take(self) -> bytes:
        """Up to CHUNK bytes of queued lines, oldest first, superseded ones skipped."""
        q, latest = self._queue, self._latest
        lines: list[bytes] = []
        size = 0
        while q and size < CHUNK:
            item = q.popleft()
            if type(item) is _Slot:
                if item.line is None:
                    self._dead -= 1
                    continue
                if latest.get(item.key) is item:
                    del latest[item.key]
                item = item.line
            lines.append(item)  # type: ignore[arg-type]
            size += len(item) + 1  # type: ignore[arg-type]
        if not lines:
            return b""
        self._live -= len(lines)
        lines.append(b"")
        return b"\n".join(lines)

    def _gone(self) -> None:
        if self._waiting and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(self.fd)
        self._waiting = False
        self.closed = True
        self._queue.clear()
        self._latest.clear()
        self._pending = None
        self._live = self._dead = 0

    # -- telling the reader what it lost ------------------------------------------------
    def _report_due(self) -> bool:
        """Queue an EventsDropped if events were dropped and the last report is a second old;
        True if it queued one. Not waiting for the pressure to ease: under a sustained storm
        the queue never drains to half, and the reader would never learn what it lost."""
        if not self.dropped or self.closed:
            return False  # re-checked on every drain
        wait = self._reported + self.report_every - self.clock()
        if wait > 0:
            loop = self._loop
            if self._report_timer is None and loop is not None:
                self._report_timer = loop.call_later(wait, self._report_timer_fired)
            return False
        self._queue_report()
        return True

    def _report_timer_fired(self) -> None:
        self._report_timer = None
        if not self._waiting and not self.closed:
            self._drain()

    def _queue_report(self) -> None:
        # Above the bound by one at most: one report a second is what keeps the drops visible.
        counts, packets = dict(self.dropped), dict(self.dropped_packets)
        self.dropped.clear()
        self.dropped_packets.clear()
        self._reported = self.clock()
        ev = EventsDropped(service=self.service, counts=counts, total=sum(counts.values()), packets=packets)
        # Ahead of the backlog: behind it, a reader seconds late in a storm (the queue holds
        # events.queue_max) would show the drops only seconds after they began, or after the
        # storm. A count needs no order; the events themselves keep theirs.
        self._queue.appendleft(dumps(ev.to_dict()))
        self._live += 1

    # -- the end ------------------------------------------------------------------------
    def close(self, timeout: float = 1.0) -> None:
        """The last events before the process exits, drops reported: this waits up to
        `timeout` for the reader (no event loop is left to wait on), then gives up."""
        if self.closed:
            return
        with contextlib.suppress(Exception):  # the loop may be closed already
            if self._report_timer is not None:
                self._report_timer.cancel()
            if self._waiting and self._loop is not None:
                self._loop.remove_writer(self.fd)
        self._report_timer = None
        self._waiting = False
        if self.dropped:
            self._queue_report()
        deadline = time.monotonic() + timeout
        poll = select.poll()
        poll.register(self.fd, select.POLLOUT)
        while not self._write() and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            poll.poll(left * 1000)
        self.closed = True


class LineReader:
    """The lines of a stream, a chunk at a time: `async for lines in LineReader(s).batches()`."""

    def __init__(self, stream: asyncio.StreamReader, limit: int = LINE_MAX, chunk: int = CHUNK) -> None:
        self.stream, self.limit, self.chunk = stream, limit, chunk
        self.skipped = 0  # lines that grew past `limit` without their newline, skipped

    async def batches(self) -> AsyncIterator[list[bytes]]:
        rest = b""
        skipping = False  # inside an over-long line: discard up to its newline
        while data := await self.stream.read(self.chunk):
            if skipping:
                end = data.find(b"\n")
                if end < 0:
                    continue
                data, skipping = data[end + 1:], False
            lines = (rest + data if rest else data).split(b"\n")
            rest = lines.pop()
            if len(rest) > self.limit:  # no newline in sight: never hold more than the limit
                rest, skipping = b"", True
                self.skipped += 1
            if lines:
                yield lines
        if rest and not skipping:
            yield [rest]  # a last line without its newline: the writer died mid-line
