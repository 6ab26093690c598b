"""`pxetui analyze FILE.pcap`: replay a capture (ours or tcpdump's) through decode and the
tracker, and print each client's timeline and diagnosis."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pxetui.commands import logports
from pxetui.logfmt import printable_lines

if TYPE_CHECKING:  # imported where used: every `pxetui` command builds this parser
    from pxetui.events import Event
    from pxetui.tracker import Tracker


def replay(path: str, stuck_seconds: float = 90.0, http_ports: tuple[int, ...] = (80,),
           our_ips: tuple[str, ...] = (), tracker: Tracker | None = None,
           log_ports: tuple[int, int] | None = (514, 6666)) -> Iterator[Event]:
    """Every decoded and tracked event of a pcap, in capture order; the tracker's clock is
    the packets' time, and the end of the capture counts as `stuck_seconds` of silence.
    Datagrams to `log_ports` (syslog, netconsole) are client log lines (docs/CLIENT-LOGS.md)."""
    from pxetui.capture.decode import TFTP_IDLE, Decoder
    from pxetui.capture.pcap import read_pcap
    from pxetui.tracker import Tracker

    linktype, frames = read_pcap(path)
    dec = Decoder(our_ips=our_ips, http_ports=http_ports, linktype=linktype, log_ports=log_ports)
    tr = tracker if tracker is not None else Tracker(stuck_seconds=stuck_seconds)
    last: float | None = None
    next_tick = 0.0
    for ts, data in frames:
        if last is None:
            next_tick = ts + 1.0
        elif ts >= next_tick:
            for ev in dec.tick(ts):
                yield ev
                yield from tr.feed(ev.to_dict())
            yield from tr.tick(ts)
            next_tick = ts + 1.0
        last = ts
        for ev in dec.feed(data, ts):
            yield ev
            yield from tr.feed(ev.to_dict())
    if last is not None:
        # The end of the capture: let open transfers time out, then the clients go stuck.
        flushed = last + TFTP_IDLE + 1.0
        for ev in dec.tick(flushed):
            yield ev
            yield from tr.feed(ev.to_dict())
        yield from tr.tick(flushed + stuck_seconds)


def main(args: argparse.Namespace) -> int:
    from pxetui.capture.pcap import PcapError
    from pxetui.capture.report import View, router_text, timeline

    log_ports = logports.ports(args, "analyze")
    if log_ports is None:
        return 2
    view = View()
    try:
        for ev in replay(args.pcap, stuck_seconds=args.stuck_seconds, http_ports=tuple(args.http_port),
                         log_ports=log_ports):
            line = view.apply(ev)
            if line and args.verbose and not args.json:
                print(printable_lines(line))
    except PcapError as exc:
        print(f"pxetui analyze: {exc}", file=sys.stderr)
        return 2
    if args.json:  # one JSON object per line: servers, routers, alerts, then each client's last update
        for s in view.servers.values():
            print(json.dumps(s.to_dict(), default=str))
        for r in view.routers.values():
            print(json.dumps(r.to_dict(), default=str))
        for key, msg in view.alerts.items():
            print(json.dumps({"type": "Alert", "key": key, "message": msg}))
        for c in view.client_states():
            print(json.dumps(c, default=str))
        for lines in view.logs.values():
            for line in lines:
                print(json.dumps(line.to_dict(), default=str))
        return 0
    if args.verbose:
        print()
    # Below, what the capture's packets said (file names, boot files, log lines) reaches a
    # terminal: each line made printable (docs/SECURITY.md, "What clients write to our terminal").
    if view.servers:
        print(printable_lines("DHCP servers seen: " + ", ".join(
            f"{s.server_ip} ({s.server_mac or '?'}, boot file {s.boot_file or 'none'})"
            for s in view.servers.values())))
    for r in view.routers.values():
        print(printable_lines(router_text(r)))
    for msg in view.alerts.values():
        print(printable_lines(f"alert: {msg}"))
    if not view.clients:
        print("no boot clients in this capture")
    for c in view.client_states():
        print()
        print(printable_lines(timeline(c)))
        if lines := view.log_lines(c["mac"], args.log_lines):
            print(printable_lines(lines))
    for sender in view.log_senders():
        print()
        print(printable_lines(f"Log lines from {sender} (not a boot client)"))
        print(printable_lines(view.log_lines(sender, args.log_lines)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="replay a pcap: each client's boot timeline and diagnosis",
                       description=__doc__)
    p.add_argument("pcap", metavar="FILE.pcap", help="a capture (pcap or pcapng), e.g. from tcpdump -w")
    p.add_argument("--stuck-seconds", type=float, default=90.0,
                   help="silence after which a client counts as stuck (default 90)")
    p.add_argument("--http-port", type=int, action="append", default=[80],
                   help="a port HTTP boot traffic used (repeatable; 80 always)")
    logports.add_args(p)
    p.add_argument("--log-lines", type=int, default=20,
                   help="the last N log lines shown per client (default 20; -v prints every one)")
    p.add_argument("-v", "--verbose", action="store_true", help="also print every change as it happened")
    p.add_argument("--json", action="store_true",
                   help="JSON lines instead of text: DHCP servers, alerts, each client's last state")
    p.set_defaults(func=main)
