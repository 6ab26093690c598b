"""One readable line per event, for `pxetui serve` on stderr and for the log file."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from pxetui.persecond import PerSecond

if TYPE_CHECKING:
    from pxetui.events import Event

# Too chatty for a terminal unless asked for (-v).
VERBOSE_ONLY = {"TransferProgress", "DhcpIgnored"}

# What a client sent (an HTTP path, a TFTP file name, a User-Agent, a DHCP boot file name, a
# syslog line) ends up in these lines, on a terminal and in engine.log. C0 controls, DEL and C1
# (ESC, CSI 0x9b, OSC...) would let it retitle or clear a terminal, and CR, LF, NEL, the
# Unicode line and paragraph separators would let it forge a log line of its own. Each becomes
# `?`, as in client log lines (docs/CLIENT-LOGS.md); a tab becomes a space. Lone surrogates
# (undecodable bytes of a TFTP file name) too: written out they are the raw bytes again.
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` safe for one line of a terminal or a log file (see _UNSAFE)."""
    if text.isprintable():  # the common case, in C: nothing to replace
        return text
    return _UNSAFE.sub("?", text.replace("\t", " "))


def printable_lines(text: str) -> str:
    """`text` of several lines, each made printable (its own newlines kept, no others)."""
    return text if text.isprintable() else "\n".join(printable(line) for line in text.split("\n"))


def human_size(n: float | None, compact: bool = False) -> str:
    """1536 -> '1.5 KiB' (compact, for narrow table columns: '1.5K')."""
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            if compact:
                return f"{n:.0f}B" if unit == "B" else f"{n:.1f}{unit[0]}"
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"  # unreachable: the GiB branch always returns


def describe(ev: dict[str, Any]) -> str:
    """The event in words, without time and service, on one line with no control characters."""
    return printable(_describe(ev))


def _describe(ev: dict[str, Any]) -> str:
    t = ev.get("type", "?")
    who = ev.get("mac") or ev.get("ip") or ""
    g = ev.get
    if t == "Log":
        return str(g("message", ""))
    if t == "ServiceState":
        extra = f" ports {','.join(map(str, g('ports') or []))}" if g("ports") else ""
        reason = f": {g('reason')}" if g("reason") else ""
        return f"{g('state')}{extra}{reason}"
    if t == "EngineStarted":
        return (f"pxetui {g('version')} on {g('interface')} {g('address')} dhcp={g('dhcp_mode')} "
                f"tftp={g('tftp_root')} http=:{g('http_port')} {g('http_root')}")
    if t == "DhcpPacket":
        arrow = {"in": "<-", "out": "->", "wire": "~~"}.get(str(g("direction")), "")
        bits = [f"{g('msg_type')} {arrow} {who}"]
        if g("yiaddr") and g("yiaddr") != "0.0.0.0":
            bits.append(f"addr {g('yiaddr')}")
        if g("arch") is not None:
            bits.append(f"arch {g('arch')}")
        if g("ipxe"):
            bits.append("iPXE")
        if g("boot_file"):
            bits.append(f"file {g('boot_file')}")
        if g("direction") == "wire" and g("server_ip"):
            bits.append(f"server {g('server_ip')}")
        return " ".join(bits)
    if t == "DhcpIgnored":
        return f"ignored {g('msg_type')} from {who}: {g('reason')}"
    if t == "DhcpModeDecided":
        other = f" (other server {g('other_server')})" if g("other_server") else ""
        return f"DHCP mode {g('mode')}: {g('reason')}{other}"
    if t == "LeaseGranted":
        src = "" if g("ours", True) else f" by {g('server_ip')}"
        return f"lease {g('ip')} -> {g('mac')}{src}"
    if t == "LeaseEnded":
        return f"lease {g('ip')} ended ({g('reason')})"
    if t == "BootDecision":
        return f"boot {who}: {g('firmware')} -> {g('boot_file') or '(local disk)'} ({g('reason')})"
    if t == "TransferStarted":
        opts = " ".join(f"{k}={v}" for k, v in (g("options") or {}).items())
        return f"{g('protocol')} {who} {g('path')} {human_size(g('size'))} {opts}".rstrip()
    if t == "TransferProgress":
        return f"{g('protocol')} {who} {human_size(g('bytes_done'))}/{human_size(g('size'))}"
    if t == "TransferFinished":
        return (f"{g('protocol')} {who} {g('path')} done {human_size(g('bytes_done'))} in "
                f"{g('seconds', 0):.2f}s ({human_size(g('rate'))}/s, {g('retransmits', 0)} resent)")
    if t == "TransferFailed":
        return f"{g('protocol')} {who} {g('path')} FAILED: {g('reason')}"
    if t == "TransferClosed":
        return f"{g('protocol')} transfer {g('transfer_id')} closed: {g('reason')}"
    if t == "LabVm":
        if g("state") == "off":
            return f"lab VM {g('detail')}"
        return f"lab VM running (boot {g('boots')}{', its system is up' if g('booted') else ''})"
    if t == "BootCallback":
        return f"{who} {g('stage')} {g('entry') or ''}".rstrip()
    if t == "ClientLog":  # an installer's syslog or a kernel's netconsole line (docs/CLIENT-LOGS.md)
        app = f"{g('app')}: " if g("app") else ""
        return f"{who or 'unknown sender'} {g('source')} {app}{g('message', '')}"
    if t == "ClientUpdate":
        diag = f" - {g('diagnosis')}" if g("diagnosis") else ""
        return f"client {who} {g('stage')}{diag}"
    if t == "ClientForgotten":
        return f"client {who} forgotten ({g('reason') or 'by request'})"
    if t == "Alert":
        return f"ALERT {g('message')}"
    if t == "ForeignDhcpServer":
        return f"another DHCP server on the wire: {g('server_ip')} ({g('server_mac')}) offers {g('offered')}"
    if t == "RouterAdvert":
        flags = f"M={int(bool(g('managed')))} O={int(bool(g('other')))}"
        return f"IPv6 router {g('ip')} ({g('router_mac')}) advertises {' '.join(g('prefixes') or []) or 'no prefix'}, {flags}"
    if t == "PoolExhausted":
        return f"address pool {g('pool')} is full"
    if t == "EventsDropped":
        counts = g("counts") or {}
        top = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:4])
        return f"{g('total', 0)} events dropped, the reader fell behind ({top})"
    if t == "LimitHit":
        times = f" ({g('count')} times)" if (g("count") or 1) > 1 else ""
        return f"limit {g('limit')} hit{times}: {g('message')}"
    if t == "ReplayDone":
        return f"attached: {g('events', 0)} events replayed, live from here"
    if t == "Totals":
        return f"counters: {len(g('counts') or {})} as the engine counts them"
    fields = {k: v for k, v in ev.items() if k not in ("type", "ts", "service", "mac", "ip")}
    return f"{t} {who} {fields}".rstrip()


def event_level(ev: Event) -> str:
    """level_of for an event object, without making its dict."""
    t = type(ev).__name__
    if t == "Log" or t in WARNING_TYPES or t == "ServiceState" or t in VERBOSE_ONLY:
        return level_of({"type": t, "level_name": getattr(ev, "level_name", "info"),
                         "state": getattr(ev, "state", None)})
    return "info"


WARNING_TYPES = frozenset(("TransferFailed", "PoolExhausted", "ForeignDhcpServer", "Alert", "LimitHit",
                           "EventsDropped"))


def level_of(ev: dict[str, Any]) -> str:
    t = ev.get("type")
    if t == "Log":
        return str(ev.get("level_name", "info"))
    if t in WARNING_TYPES:
        return "warning"
    if t == "ServiceState" and ev.get("state") == "failed":
        return "error"
    if t in VERBOSE_ONLY:
        return "debug"
    return "info"


MARKS = {"warning": "W ", "error": "E ", "debug": "  "}


@functools.lru_cache(maxsize=4)
def _clock(second: int) -> str:
    # A storm logs thousands of lines a second, all in a handful of seconds: format each once.
    return time.strftime("%H:%M:%S", time.localtime(second))


def line(ev: dict[str, Any], lvl: str | None = None) -> str:
    ts = _clock(int(float(ev.get("ts") or time.time())))
    lvl = lvl or level_of(ev)
    # Cleaned once, whole: the service name comes from the event too.
    return printable(f"{ts} {MARKS.get(lvl, '  ')}{ev.get('service', ''):<8} {_describe(ev)}")


class Printer:
    """`pxetui serve`'s log: one line per event (debug ones only when verbose) on a stream.

    Lines are written once per turn of the event loop, not one write(2) each: the supervisor
    handles a service's events a batch at a time, and in a DHCP storm a write per line was a
    fifth of its CPU (bench/engine/relay.py). Without a running loop each line goes at once.

    At most `rate` info lines a second (`log.rate`; 0: no limit). A storm of 5,000 DORA/s is
    30,000 lines a second that nobody reads, and formatting them was two fifths of the
    supervisor's CPU (bench/engine/run.py); the UI, `pxetui status` and the tracker keep every
    event. What is held back is counted by type and said in one warning line per second.
    Warnings and errors always go out."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False, rate: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream  # None: whatever sys.stderr is when a line is written
        self.verbose = verbose
        self._budget = PerSecond(rate, clock)  # info lines a second (log.rate)
        self._lines: list[str] = []
        self._held: Counter[str] = Counter()  # info lines held back in the budget's second, by type
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, ev: Event) -> None:
        lvl = event_level(ev)
        if lvl == "debug" and not self.verbose:
            return
        if lvl == "info" and self._budget.rate:
            if self._budget.new_second():
                self._say_held()
            if not self._budget.take():
                self._held[type(ev).__name__] += 1
                if self._timer is None:  # said when the second ends, if nothing else comes
                    with contextlib.suppress(RuntimeError):
                        self._timer = asyncio.get_running_loop().call_later(1.0, self._held_timer)
                return
        self._add(line(ev.view(), lvl))

    def _add(self, text: str) -> None:
        self._lines.append(text)
        if len(self._lines) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def _held_timer(self) -> None:
        self._timer = None
        if self._budget.new_second():
            self._say_held()
            self.flush()
        elif self._held:
            with contextlib.suppress(RuntimeError):
                self._timer = asyncio.get_running_loop().call_later(0.1, self._held_timer)

    def close(self) -> None:
        """The last lines, and what the limit held back (the engine is stopping)."""
        self._say_held()
        self.flush()

    def _say_held(self) -> None:
        """One line for what the limit held back in the second that ended."""
        if not self._held:
            return
        held, self._held = self._held, Counter()
        top = ", ".join(f"{k} {v:,}" for k, v in held.most_common(4))
        ts = _clock(int(time.time()))
        self._add(f"{ts} {MARKS['warning']}{'engine':<8} {sum(held.values()):,} log lines not shown in "
                  f"the last second (log.rate {self._budget.rate}/s: {top}); the UI and `pxetui status` have them")

    def flush(self) -> None:
        if self._held and self._budget.new_second():
            self._say_held()
        if not self._lines:
            return
        text, self._lines = "\n".join(self._lines) + "\n", []
        stream = self.stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # stderr closed or gone (a terminal that went away)
            pass
