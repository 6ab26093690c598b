"""What the `logs` service does with each datagram or TCP message, sockets aside: rate limit
by source address, decode, attribute to a MAC, emit ClientLog and store (docs/CLIENT-LOGS.md).

Every bound holds against a flood (docs/SECURITY.md, "Bounded disk and memory"): lines past a
source's token bucket are dropped and counted (one LimitHit per interval and source), the bucket
table forgets its least recently seen sources, a bad message is reported once per interval per
source, and storage keeps the newest lines per MAC.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from pxetui.clientlogs.decode import LogLine, decode
from pxetui.clientlogs.store import LogStore
from pxetui.config import LogsConfig
from pxetui.events import Event, LimitReporter, Log

MAX_SOURCES = 4096  # token buckets kept; the least recently seen source is forgotten past it
BAD_REPORT_EVERY = 10.0  # seconds between reports of bad messages from one source


class Buckets:
    """A token bucket per source address: `rate` lines a second, up to `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self._b: OrderedDict[str, list[float]] = OrderedDict()  # ip -> [tokens, last refill]

    def take(self, ip: str, n: int = 1) -> int:
        """How many of `n` lines from `ip` may pass now."""
        now = self.clock()
        b = self._b.get(ip)
        if b is None:
            if len(self._b) >= MAX_SOURCES:
                self._b.popitem(last=False)
            b = self._b[ip] = [self.burst, now]
        else:
            self._b.move_to_end(ip)
            b[0] = min(self.burst, b[0] + (now - b[1]) * self.rate)
            b[1] = now
        ok = min(n, int(b[0]))
        b[0] -= ok
        return ok


class Receiver:
    def __init__(self, cfg: LogsConfig, emit: Callable[[Event], None], mac_for: Callable[[str], str | None],
                 store: LogStore | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.emit, self.mac_for, self.store, self.clock = cfg, emit, mac_for, store, clock
        self.buckets = Buckets(cfg.rate, cfg.burst, clock)
        self.limits = LimitReporter(emit)
        self._bad: OrderedDict[str, list[float]] = OrderedDict()  # ip -> [last report, count since]
        self.lines = self.dropped = self.bad = 0  # counters, for the service's summary

    def take(self, source: str, payload: bytes, ip: str) -> int:
        """One datagram (or framed TCP message) from `ip`: the number of lines emitted."""
        try:
            lines = decode(source, payload, self.cfg.max_line_bytes)
        except ValueError as exc:
            self._report_bad(ip, source, exc)
            return 0
        if not lines:
            return 0
        ok = self.buckets.take(ip, len(lines))
        if ok < len(lines):
            self.dropped += len(lines) - ok
            self.limits.hit("logs.rate", ip, f"{ip} sends more than {self.cfg.rate:g} log lines/s "
                            f"(burst {self.cfg.burst}): lines dropped", self.clock())
        mac = self.mac_for(ip) if ok else None
        for line in lines[:ok]:
            self._emit(line, ip, mac)
        return ok

    def _emit(self, line: LogLine, ip: str, mac: str | None) -> None:
        if line.truncated:
            self.limits.hit("logs.max_line_bytes", ip,
                            f"{ip} sent a log line over {self.cfg.max_line_bytes} bytes: cut there", self.clock())
        ev = line.event("logs", mac, ip)
        self.lines += 1
        self.emit(ev)
        if self.store is not None:
            self.store.add(ev)

    def flush(self) -> None:
        """Write the stored lines; a MAC past logs.max_lines_per_client lost its oldest."""
        if self.store is None:
            return
        for mac, n in self.store.flush().items():
            self.limits.hit("logs.max_lines_per_client", None,
                            f"{mac or 'unattributed senders'}: more than {self.cfg.max_lines_per_client} "
                            f"log lines kept; the oldest {n} dropped", self.clock())

    def _report_bad(self, ip: str, source: str, exc: ValueError) -> None:
        self.bad += 1
        now = self.clock()
        st = self._bad.get(ip)
        if st is not None:
            st[1] += 1
            if now - st[0] < BAD_REPORT_EVERY:
                return
        if len(self._bad) >= MAX_SOURCES:
            self._bad.popitem(last=False)
        count = int(st[1]) if st is not None else 1
        self._bad[ip] = [now, 0]
        self.emit(Log(service="logs", ip=ip, level_name="warning",
                      message=f"logs: {count} bad {source} message(s) from {ip}: {exc}"))
