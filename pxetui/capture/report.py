"""Plain-text presentation of what the capture and tracker saw: tables and timelines.

Shared by `pxetui watch` and `pxetui analyze`; knows nothing of packets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pxetui.events import Event, apply_file_rows
from pxetui.logfmt import human_size


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


CELL = 72  # keep a row on a wide terminal line; long TFTP error texts are cut
MAX_TRANSFERS = 5000
SHOW_TRANSFERS = 40


def _cell(text: str) -> str:
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> str:
    rows = [[_cell(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


@dataclass
class View:
    """The lease, transfer, server and client tables, kept from events."""

    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # mac -> id -> row
    alerts: dict[str, str] = field(default_factory=dict)

    def client_states(self) -> list[dict[str, Any]]:
        """Each client's last update with every file row it fetched (updates carry deltas)."""
        return [{**d, "files": list(self.files.get(mac, {}).values())} for mac, d in self.clients.items()]

    def apply(self, ev: Event) -> str | None:
        """Update the tables; return one line describing the change, or None if none."""
        d = ev.to_dict()
        t = d["type"]
        if t == "LeaseGranted":
            self.leases[d["mac"]] = d
            owner = "pxetui" if d.get("ours") and d.get("service") != "capture" else d.get("server_ip")
            return f"{clock(d['ts'])} lease    {d['mac']} {d['ip']} from {owner}"
        if t == "ForeignDhcpServer":
            self.servers[d["server_ip"]] = d
            what = d.get("boot_file") or "no boot file"
            return (f"{clock(d['ts'])} server   DHCP server {d['server_ip']} ({d.get('server_mac') or '?'}) "
                    f"offers {d.get('offered') or 'boot info only'}, {what}")
        if t == "Alert":
            self.alerts[d["key"]] = d["message"]
            return f"{clock(d['ts'])} ALERT    {d['message']}"
        if t == "TransferStarted":
            self.transfers[d["transfer_id"]] = {**d, "state": "running", "bytes": 0}
            while len(self.transfers) > MAX_TRANSFERS:  # a long watch: keep memory bounded
                del self.transfers[next(iter(self.transfers))]
            srv = (d.get("options") or {}).get("server", "")
            return f"{clock(d['ts'])} transfer {d['protocol']} {d.get('ip')} <- {srv} {d['path']}"
        if t in ("TransferProgress", "TransferFinished", "TransferFailed"):
            row = self.transfers.get(d["transfer_id"])
            if row is None:
                return None
            row["bytes"] = d.get("bytes_done") or row["bytes"]
            row["size"] = d.get("size") or row.get("size")
            if t == "TransferProgress":
                return None
            row["state"] = "done" if t == "TransferFinished" else f"failed: {d.get('reason')}"
            return f"{clock(d['ts'])} transfer {row['path']} {row['state']} ({human_size(row['bytes'])})"
        if t == "ClientForgotten":
            self.clients.pop(d["mac"], None)
            self.files.pop(d["mac"], None)
            return f"{clock(d['ts'])} client   {d['mac']} forgotten ({d.get('reason') or 'by request'})"
        if t == "ClientUpdate":
            old = self.clients.get(d["mac"])
            apply_file_rows(self.files.setdefault(d["mac"], {}), d)
            self.clients[d["mac"]] = d
            if old and old["stage"] == d["stage"] and old["diagnosis"] == d["diagnosis"]:
                return None
            line = f"{clock(d['ts'])} client   {d['mac']} {d.get('ip') or ''} stage {d['stage']}"
            if d["diagnosis"]:
                line += f"\n         diagnosis: {d['diagnosis']}"
            return line
        return None

    def render(self) -> str:
        parts = []
        parts.append("DHCP servers seen\n" + table(
            ["server", "mac", "offers", "boot file"],
            [[s["server_ip"], s.get("server_mac") or "?", s.get("offered") or "boot info only",
              s.get("boot_file") or "-"] for s in self.servers.values()]))
        parts.append("Leases\n" + table(
            ["mac", "ip", "server", "hostname"],
            [[mac, d["ip"], d.get("server_ip") or "?", d.get("hostname") or ""] for mac, d in self.leases.items()]))
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
            [[mac, d.get("ip") or "", d.get("firmware") or "", d["stage"], d.get("last_event") or ""]
             for mac, d in self.clients.items()]))
        for d in self.client_states():
            parts.append(timeline(d))
        return "\n\n".join(parts)


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
