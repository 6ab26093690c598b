"""What `pxetui status` and `GET /metrics` report, from the one fold (pxetui/state.py).

`status_of()` turns an `EngineState` into the document docs/status.schema.json describes (the
JSON of `pxetui status --json`, stable: fields are added, never renamed or removed, without a
new `schema` number); `text()` says the same in words; pxetui/metrics.py writes the same
numbers in Prometheus's format. `now` is a parameter: the fold has no clock of its own.
"""

from __future__ import annotations

from typing import Any

from pxetui.logfmt import human_size
from pxetui.stages import NEW
from pxetui.state import DHCP_TYPES, EngineState

SCHEMA_VERSION = 1
OUTCOMES = ("started", "done", "failed", "lookup")  # EngineState.counts' transfers.<proto>.*
PROTOCOLS = ("tftp", "http")


def _since(t: float | None, now: float) -> float | None:
    return None if t is None else round(max(0.0, now - t), 3)


def status_of(state: EngineState, now: float) -> dict[str, Any]:
    """The engine as docs/status.schema.json describes it."""
    e, n = state.engine, state.counts
    services = [{
        "name": h.name, "state": h.state, "reason": h.reason, "pid": h.pid, "restarts": h.restarts,
        "ports": list(h.ports),
        # a service reports "running" once, when it serves: its uptime runs from that event
        "uptime_seconds": _since(h.ts, now) if h.state == "running" else None,
    } for h in sorted(state.services.values(), key=lambda h: h.name)]
    dhcp: dict[str, dict[str, int]] = {"received": {}, "sent": {}}
    for kind in sorted(DHCP_TYPES | {"other"}):
        for direction, side in (("in", "received"), ("out", "sent")):
            if n[f"dhcp.{direction}.{kind}"]:
                dhcp[side][kind] = n[f"dhcp.{direction}.{kind}"]
    transfers = {p: {**{o: n[f"transfers.{p}.{o}"] for o in OUTCOMES}, "bytes": n[f"bytes.{p}"],
                     "running": sum(1 for t in state.transfers.values()
                                    if t.protocol == p and t.status == "running" and t.service == p)}
                 for p in PROTOCOLS}
    limits: dict[str, int] = {}
    for hit in state.limits.values():
        limits[hit.limit] = limits.get(hit.limit, 0) + hit.count
    clients = [{
        "mac": c.mac, "ip": c.ip, "stage": c.stage or NEW, "firmware": c.firmware,
        "diagnosis": c.diagnosis, "last_event": c.last_event, "last_seen": c.ts,
    } for c in sorted(state.clients.values(), key=lambda c: c.mac)]
    return {
        "schema": SCHEMA_VERSION,
        "engine": {
            "version": e.version, "interface": e.interface, "address": e.address,
            "http_port": e.http_port, "state_dir": e.state_dir, "started": e.started,
            "uptime_seconds": _since(e.started, now),
        },
        "dhcp": {"mode": e.dhcp_mode, "reason": e.dhcp_mode_reason, "other_server": e.other_server},
        "services": services,
        "counters": {
            "dhcp": {**dhcp, "dora_completed": n["dhcp.out.ACK"]},
            "transfers": transfers,
            "errors": n["errors"],
            "events_dropped": dict(sorted(state.dropped.items())),
            "limits_hit": dict(sorted(limits.items())),
        },
        "clients": clients,
        "clients_by_stage": dict(state.clients_by_stage()),
        "clients_in_trouble": state.clients_in_trouble(),
        "alerts": [{"key": a.key, "severity": a.severity, "message": a.message}
                   for a in state.sorted_alerts()],
    }


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def text(st: dict[str, Any]) -> str:
    """`pxetui status` without --json: the same document in lines a person reads."""
    e, d, c = st["engine"], st["dhcp"], st["counters"]
    out = [f"pxetui {e['version']} on {e['interface']} {e['address']}, up {duration(e['uptime_seconds'])}",
           f"DHCP: {d['mode'] or 'undecided'}" + (f" ({d['reason']})" if d["reason"] else "")
           + (f"; other server {d['other_server']}" if d["other_server"] else ""),
           "services:"]
    for s in st["services"]:
        why = f"  {s['reason']}" if s["reason"] else ""
        out.append(f"  {s['name']:<8} {s['state']:<10} pid {s['pid'] or '-':<7} "
                   f"up {duration(s['uptime_seconds']):<8} restarts {s['restarts']}{why}")
    dh = c["dhcp"]
    out.append("counters:")
    out.append(f"  DHCP: {dh['dora_completed']} DORA completed (ACKs sent); received "
               f"{sum(dh['received'].values())}, sent {sum(dh['sent'].values())}")
    for p, t in c["transfers"].items():
        out.append(f"  {p.upper()}: {t['started']} transfers ({t['done']} done, {t['failed']} failed, "
                   f"{t['lookup']} config lookups not found, {t['running']} running), "
                   f"{human_size(t['bytes'])}")
    dropped = ", ".join(f"{k} {v}" for k, v in c["events_dropped"].items()) or "none"
    limits = ", ".join(f"{k} {v}" for k, v in c["limits_hit"].items()) or "none"
    out.append(f"  errors: {c['errors']}; events dropped: {dropped}; limits hit: {limits}")
    stages = ", ".join(f"{k} {v}" for k, v in st["clients_by_stage"].items())
    out.append(f"clients: {len(st['clients'])}" + (f" ({stages})" if stages else "")
               + (f", {st['clients_in_trouble']} in trouble" if st["clients_in_trouble"] else ""))
    for cl in st["clients"]:
        why = f"  {cl['diagnosis']}" if cl["diagnosis"] else ""
        out.append(f"  {cl['mac']}  {cl['ip'] or '-':<15} {cl['stage']:<10} {cl['firmware'] or '-':<12}{why}".rstrip())
    for a in st["alerts"]:
        out.append(f"{a['severity']}: {a['message']}")
    return "\n".join(out)
