"""Zero-copy sending: os.sendfile from a file (or from a file's byte extent inside an .iso)
to a non-blocking socket, driven by the event loop's writer callback."""

from __future__ import annotations

import asyncio
import os

from pxetui.http.transfer import Transfer

SENDFILE_MAX = 1 << 30  # Linux sends at most ~2 GiB per call anyway


class ShortFile(Exception):
    """The file ended before Content-Length bytes (truncated while being served)."""


class TooSlow(TimeoutError):
    """The client took fewer than min_rate bytes/s over a whole window (docs/SECURITY.md)."""

    def __init__(self, rate: float) -> None:
        super().__init__(f"{rate:.0f} bytes/s")
        self.rate = rate


class FileSender:
    """os.sendfile driven by a writer callback: one registration for the whole transfer and
    one sendfile call per writable event, so no future, task switch or epoll_ctl per chunk
    (measured, 20 clients x 1 GiB: 2.4 s of server CPU when awaiting writability per chunk,
    1.9 s this way, nginx 1.6 s), and connections take turns fairly. `done` resolves when
    `count` bytes are sent, or with the error (OSError, ShortFile, TimeoutError, TooSlow).

    The slow-reader checks cost nothing per chunk: one timer per transfer looks at the bytes
    sent when `timeout` of idleness or a `window` of `min_rate` is due."""

    def __init__(self, out: int, fd: int, offset: int, count: int, xfer: Transfer,
                 timeout: float, min_rate: int = 0, window: float = 30.0) -> None:
        self.loop = asyncio.get_running_loop()
        self.out, self.fd, self.offset, self.count = out, fd, offset, count
        self.xfer, self.timeout = xfer, timeout
        self.min_rate, self.window = min_rate, window
        self.sent = 0
        self.done: asyncio.Future[None] = self.loop.create_future()
        self._last = self.loop.time()
        self._mark_at, self._mark_sent = self._last, 0  # start of the current rate window
        self._watch: asyncio.TimerHandle | None = None
        self._registered = False

    def start(self) -> asyncio.Future[None]:
        if self.count <= 0:
            self.done.set_result(None)
            return self.done
        self.loop.add_writer(self.out, self._step)
        self._registered = True
        self._watch = self.loop.call_later(self._next_check(self._last), self._watchdog)
        return self.done

    def stop(self) -> None:
        if self._registered:
            self._registered = False
            self.loop.remove_writer(self.out)
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _step(self) -> None:
        if self.done.done():
            return
        try:
            n = os.sendfile(self.out, self.fd, self.offset + self.sent,
                            min(self.count - self.sent, SENDFILE_MAX))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EPIPE, ECONNRESET: the client went away
            self._finish(exc)
            return
        if n == 0:
            self._finish(ShortFile())
            return
        self.sent += n
        self._last = self.loop.time()
        self.xfer.progress(self.sent)
        if self.sent >= self.count:
            self._finish(None)

    def _next_check(self, now: float) -> float:
        """Seconds until the idle limit or the end of the rate window, whichever comes first."""
        wait = self._last + self.timeout - now
        if self.min_rate:
            wait = min(wait, self._mark_at + self.window - now)
        return max(wait, 0.01)

    def _watchdog(self) -> None:
        now = self.loop.time()
        if now - self._last >= self.timeout:
            self._finish(TimeoutError())
            return
        span = now - self._mark_at
        if self.min_rate and span >= self.window:
            moved = self.sent - self._mark_sent
            if moved < self.min_rate * span:
                self._finish(TooSlow(moved / span))
                return
            self._mark_at, self._mark_sent = now, self.sent
        self._watch = self.loop.call_later(self._next_check(now), self._watchdog)

    def _finish(self, exc: BaseException | None) -> None:
        self.stop()
        if self.done.done():
            return
        if exc is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(exc)
