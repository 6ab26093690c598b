"""`pxetui watch --interface IF`: watch-only mode. Serves nothing; fills the lease, transfer
and client tables purely from the wire and prints them as they change, so a site whose boot
service is dnsmasq, WDS or anything else can be troubleshot."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from pxetui.commands import logports
from pxetui.logfmt import printable_lines
from pxetui.persecond import PerSecond

if TYPE_CHECKING:  # imported where used: every `pxetui` command builds this parser
    from pxetui.events import Event


RATE = 200  # lines a second by default: a storm on the wire is thousands, over SSH at 80x24


class Lines:
    """A line per change on a stream, at most `rate` a second (0: no limit). A DHCP storm on
    the watched segment is thousands of lines a second, more than a terminal over SSH shows
    or a reader follows: the rest are counted and said in one line per second; the tables
    (`--refresh`) and the end summary still have everything."""

    def __init__(self, rate: int, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.budget = stream, PerSecond(rate, clock)
        self.held = 0  # lines held back in the budget's second

    def __call__(self, text: str) -> None:
        self.tick()
        if not self.budget.take():
            self.held += 1
            return
        self._write(text)

    def tick(self) -> None:
        """Say what was held back, once its second is over (also called by the watch loop)."""
        if self.held and self.budget.new_second():
            held, self.held = self.held, 0
            self._write(f"... {held:,} lines not shown in that second (--rate {self.budget.rate}/s; "
                        "the tables have them)")

    def _write(self, text: str) -> None:
        # What the wire says (file names, another server's boot file) reaches a terminal here.
        print(printable_lines(text), file=self.stream or sys.stdout, flush=True)


async def watch(iface: str, duration: float | None, refresh: float, stuck_seconds: float,
                pcap: str = "", all_boot_traffic: bool = False, db: str | None = None,
                http_ports: list[int] | None = None,
                log_ports: tuple[int, int] | None = (514, 6666), rate: int = RATE) -> int:
    from pxetui.capture.report import View
    from pxetui.capture.service import Capture
    from pxetui.capture.sniffer import CaptureError
    from pxetui.tracker import Tracker

    view = View()
    tracker = Tracker(stuck_seconds=stuck_seconds, db_path=db)
    changed = False
    lines = Lines(rate)

    def show(ev: Event) -> None:
        nonlocal changed
        line = view.apply(ev)
        if line:
            lines(line)
            changed = True

    def emit(ev: Event) -> None:
        show(ev)
        for upd in tracker.feed(ev.to_dict()):
            show(upd)

    # Watch-only: no address is ours, every server seen is someone else's.
    cap = Capture(iface, set(), http_ports or [80], emit, pcap=pcap, all_boot_traffic=all_boot_traffic,
                  log_ports=log_ports)
    loop = asyncio.get_running_loop()
    try:
        cap.sniffer.attach(loop, cap.on_frame)
    except CaptureError as exc:
        print(f"pxetui watch: {exc}", file=sys.stderr)
        cap.close()
        tracker.close()
        return 1
    stop = asyncio.Event()
    # Set explicitly, whatever was inherited (a parent that ignores SIGINT); SIGHUP: the
    # terminal went away.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    print(f"watching {iface} (watch-only: serving nothing); Ctrl-C to stop", flush=True)
    end = time.monotonic() + duration if duration else None
    last_tables = time.monotonic()
    try:
        while not stop.is_set() and (end is None or time.monotonic() < end):
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
            cap.tick()
            lines.tick()
            if cap.sniffer.error is not None:
                print(f"pxetui watch: {cap.sniffer.error}", file=sys.stderr, flush=True)
                break
            for upd in tracker.tick(time.time()):
                show(upd)
            _, drops = cap.sniffer.stats()
            if drops:
                print(f"warning: the kernel dropped {drops} captured packets", file=sys.stderr, flush=True)
            if changed and refresh > 0 and time.monotonic() - last_tables >= refresh:
                print("\n" + view.render() + "\n", flush=True)
                changed, last_tables = False, time.monotonic()
    finally:
        cap.sniffer.detach(loop)
        cap.close()
        tracker.close()
    lines.tick()
    print("\n" + view.render(), flush=True)
    return 1 if cap.sniffer.error is not None else 0


def main(args: argparse.Namespace) -> int:
    iface = getattr(args, "interface", None)
    if not iface:
        print("pxetui watch: name the interface to watch (--interface IFACE)", file=sys.stderr)
        return 2
    log_ports = logports.ports(args, "watch")
    if log_ports is None:
        return 2
    return asyncio.run(watch(iface, args.duration, args.refresh, args.stuck_seconds, pcap=args.pcap or "",
                             all_boot_traffic=args.all_boot_traffic, db=args.db,
                             http_ports=sorted({80, *args.http_port}),
                             log_ports=log_ports, rate=args.rate))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="watch-only: show DHCP/TFTP/HTTP boot traffic of any server",
                       description=__doc__)
    # SUPPRESS keeps a top-level `pxetui -i IF watch` working.
    p.add_argument("--interface", "-i", metavar="IFACE", default=argparse.SUPPRESS,
                   help="the interface to watch")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--refresh", type=float, default=5.0,
                   help="print the full tables at most this often when they changed (0: only at the end)")
    p.add_argument("--stuck-seconds", type=float, default=90.0, help="silence before a client is diagnosed")
    p.add_argument("--rate", type=_rate, default=RATE,
                   help=f"lines a second at most; the rest are counted once a second (0: no limit; default {RATE})")
    p.add_argument("--pcap", metavar="FILE", help="also record the DHCP traffic to this pcap file")
    p.add_argument("--all-boot-traffic", action="store_true",
                   help="with --pcap: record the TFTP/HTTP markers too, not only DHCP")
    p.add_argument("--db", metavar="FILE", help="keep client history in this SQLite file")
    p.add_argument("--http-port", type=int, action="append", default=[],
                   help="another port HTTP boot traffic uses (repeatable; 80 always)")
    logports.add_args(p)
    p.set_defaults(func=main)


def _rate(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of lines a second") from None
    if not 0 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{n} is outside 0..1000000 lines a second")
    return n
