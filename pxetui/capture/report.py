"""Plain-text presentation of what the capture and tracker saw: tables and timelines.

Shared by `pxetui watch` and `pxetui analyze`; knows nothing of packets.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pxetui.events import (
    Alert,
    ClientForgotten,
    ClientLog,
    ClientUpdate,
    Event,
    ForeignDhcpServer,
    LeaseGranted,
    RouterAdvert,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from pxetui.logfmt import human_size
from pxetui.state import ClientInfo, EngineState, client_update, foreign_server


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


CELL = 72  # keep a row on a wide terminal line; long TFTP error texts are cut
MAX_TRANSFERS = 5000
SHOW_TRANSFERS = 40
LOG_LINES_KEPT = 1000  # per sender, as a UI keeps them (pxetui/state.py CLIENT_LOG_LINES)
LOG_SENDERS_KEPT = 256
SHOW_LOG_LINES = 5  # per sender in watch's tables


def _cell(text: str) -> str:
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> str:
    rows = [[_cell(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


TRANSFER_EVENTS = (TransferStarted, TransferProgress, TransferFinished, TransferFailed)


def _folder() -> EngineState:
    return EngineState(log_size=0, track_dirty=False)


@dataclass
class View:
    """The lease, server and client tables, read off the one fold of the event stream
    (pxetui/state.py, as the supervisor and the UI keep it), and the transfer list: a display
    list of its own, bounded by rows (MAX_TRANSFERS), for capture shows transfers it never
    sees end."""

    state: EngineState = field(default_factory=_folder)
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)  # what capture itself raised
    routers: dict[str, RouterAdvert] = field(default_factory=dict)  # IPv6 routers, by address
    # syslog/netconsole lines by sender (its MAC, else its address), the latest senders last
    logs: dict[str, deque[ClientLog]] = field(default_factory=dict)

    @property
    def servers(self) -> dict[str, ForeignDhcpServer]:
        return {ip: foreign_server(s) for ip, s in self.state.foreign.items()}

    @property
    def clients(self) -> dict[str, ClientInfo]:
        return self.state.clients

    def client_states(self) -> list[dict[str, Any]]:
        """Each client whole, as its full ClientUpdate (updates carry deltas of the files)."""
        return [client_update(c).to_dict() for c in self.state.clients.values()]

    def apply(self, ev: Event) -> str | None:
        """Update the tables; return one line describing the change, or None if none."""
        before = self.state.clients.get(ev.mac or "") if isinstance(ev, ClientUpdate) else None
        seen = (before.stage, before.diagnosis) if before is not None else None
        if not isinstance(ev, TRANSFER_EVENTS):
            self.state.apply(ev)
        at = clock(ev.ts)
        if isinstance(ev, LeaseGranted):
            owner = "pxetui" if ev.ours and ev.service != "capture" else ev.server_ip
            return f"{at} lease    {ev.mac} {ev.ip} from {owner}"
        if isinstance(ev, ForeignDhcpServer):
            return (f"{at} server   DHCP server {ev.server_ip} ({ev.server_mac or '?'}) "
                    f"offers {ev.offered or 'boot info only'}, {ev.boot_file or 'no boot file'}")
        if isinstance(ev, Alert):
            if ev.cleared:
                self.alerts.pop(ev.key, None)
                return f"{at} cleared  {ev.message}"
            self.alerts[ev.key] = ev.message
            return f"{at} ALERT    {ev.message}"
        if isinstance(ev, ClientLog):
            self._keep_log(ev)
            return f"{at} log      {log_text(ev)}"
        if isinstance(ev, RouterAdvert):
            self.routers[ev.ip or "?"] = ev
            while len(self.routers) > 64:
                del self.routers[next(iter(self.routers))]
            return f"{at} router   {router_text(ev)}"
        if isinstance(ev, TransferStarted):
            self.transfers[ev.transfer_id] = {"ip": ev.ip, "protocol": ev.protocol, "path": ev.path,
                                              "size": ev.size, "state": "running", "bytes": 0}
            while len(self.transfers) > MAX_TRANSFERS:  # a long watch: keep memory bounded
                del self.transfers[next(iter(self.transfers))]
            srv = (ev.options or {}).get("server", "")
            return f"{at} transfer {ev.protocol} {ev.ip} <- {srv} {ev.path}"
        if isinstance(ev, TRANSFER_EVENTS):
            row = self.transfers.get(ev.transfer_id)
            if row is None:
                return None
            row["bytes"] = ev.bytes_done or row["bytes"]
            row["size"] = getattr(ev, "size", None) or row.get("size")
            if isinstance(ev, TransferProgress):
                return None
            row["state"] = "done" if isinstance(ev, TransferFinished) else f"failed: {ev.reason}"
            return f"{at} transfer {row['path']} {row['state']} ({human_size(row['bytes'])})"
        if isinstance(ev, ClientForgotten):
            return f"{at} client   {ev.mac} forgotten ({ev.reason or 'by request'})"
        if isinstance(ev, ClientUpdate) and ev.mac:
            if seen == (ev.stage, ev.diagnosis):
                return None
            line = f"{at} client   {ev.mac} {ev.ip or ''} stage {ev.stage}"
            if ev.diagnosis:
                line += f"\n         diagnosis: {ev.diagnosis}"
            return line
        return None

    def _keep_log(self, ev: ClientLog) -> None:
        key = ev.mac or ev.ip or "?"
        lines = self.logs.pop(key, None)
        self.logs[key] = lines if lines is not None else deque(maxlen=LOG_LINES_KEPT)
        self.logs[key].append(ev)
        while len(self.logs) > LOG_SENDERS_KEPT:
            del self.logs[next(iter(self.logs))]

    def log_lines(self, sender: str, last: int) -> str:
        """A sender's last `last` log lines, indented, with how many there were."""
        lines = list(self.logs.get(sender, ()))
        if not lines:
            return ""
        shown = lines[-last:] if last > 0 else []
        more = f", the last {len(shown)} shown" if len(shown) < len(lines) else ""
        out = [f"  log lines ({len(lines)}{more}):"]
        out += [f"    {clock(ev.ts)}  {ev.source:<10} {log_message(ev)}" for ev in shown]
        return "\n".join(out)

    def render(self) -> str:
        parts = []
        parts.append("DHCP servers seen\n" + table(
            ["server", "mac", "offers", "boot file"],
            [[s.server_ip, s.server_mac or "?", s.offered or "boot info only", s.boot_file or "-"]
             for s in self.state.foreign.values()]))
        if self.routers:
            parts.append("IPv6 routers seen\n" + table(
                ["router", "mac", "flags", "prefixes"],
                [[r.ip or "?", r.router_mac or "?", flags_text(r), " ".join(r.prefixes) or "-"]
                 for r in self.routers.values()]))
        parts.append("Leases\n" + table(
            ["mac", "ip", "server", "hostname"],
            [[le.mac, le.ip, le.server_ip or "?", le.hostname or ""]
             for le in self.state.leases.values()]))
        shown = list(self.transfers.values())[-SHOW_TRANSFERS:]
        older = len(self.transfers) - len(shown)
        parts.append("Transfers" + (f" (the last {len(shown)}; {older} older not shown)" if older else "")
                     + "\n" + table(
            ["client", "proto", "path", "size", "state"],
            [[d.get("ip") or "?", d["protocol"], d["path"],
              human_size(d.get("size") or d["bytes"]) if (d.get("size") or d["bytes"]) else "", d["state"]]
             for d in shown]))
        parts.append("Clients\n" + table(
            ["mac", "ip", "firmware", "stage", "last"],
            [[c.mac, c.ip or "", c.firmware, c.stage, c.last_event] for c in self.state.clients.values()]))
        for d in self.client_states():
            parts.append(timeline(d) + (("\n" + lines) if (lines := self.log_lines(
                d["mac"], SHOW_LOG_LINES)) else ""))
        for sender in self.log_senders():
            parts.append(f"Log lines from {sender} (not a boot client)\n"
                         + self.log_lines(sender, SHOW_LOG_LINES))
        return "\n\n".join(parts)

    def log_senders(self) -> list[str]:
        """Senders of log lines that are not boot clients (a MAC or, unattributed, an address)."""
        return [k for k in self.logs if k not in self.state.clients]


def log_message(ev: ClientLog) -> str:
    return f"{ev.app + ': ' if ev.app else ''}{ev.message}"


def log_text(ev: ClientLog) -> str:
    who = ev.mac or f"{ev.ip} (no MAC)"
    return f"{who} {ev.source} {log_message(ev)}"


def flags_text(r: RouterAdvert) -> str:
    """RFC 4861 M and O flags as an operator reads them."""
    return f"M={int(r.managed)} O={int(r.other)}"


def router_text(r: RouterAdvert) -> str:
    use = "DHCPv6 addresses" if r.managed else "no DHCPv6 addresses (M flag off)"
    return (f"IPv6 router {r.ip} ({r.router_mac or '?'}) advertises {' '.join(r.prefixes) or 'no prefix'}, "
            f"{flags_text(r)}: {use}")


def timeline(c: dict[str, Any]) -> str:
    """One client's stages with times and durations, its files, and the diagnosis."""
    head = f"Client {c['mac']}  ip {c.get('ip') or '?'}  firmware {c.get('firmware') or '?'}"
    if c.get("vendor_class"):
        head += f"  vendor class {c['vendor_class']}"
    if c.get("uuid"):
        head += f"  uuid {c['uuid']}"
    lines = [head]
    t0 = c["stages"][0]["ts"] if c.get("stages") else 0.0
    for s in c.get("stages", []):
        dur = f"{s['duration']:.2f}s" if s.get("duration") is not None else ""
        lines.append(f"  {clock(s['ts'])}  +{s['ts'] - t0:7.2f}s  {s['stage']:<10} {dur:>9}  {s['detail']}")
    for f in c.get("files", []):
        if f["status"] == "probe":
            continue
        size = human_size(f.get("size") or f.get("bytes")) if (f.get("size") or f.get("bytes")) else ""
        lines.append(f"    {f['protocol']:<4} {f['kind']:<10} {f['status']:<7} {size:>10}  {f['path']}"
                     + (f"  ({f['reason']})" if f.get("reason") and f["status"] == "failed" else ""))
    lines.append(f"  diagnosis: {c.get('diagnosis') or 'none'}")
    return "\n".join(lines)
