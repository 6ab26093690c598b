"""`GET /metrics`: the status document (pxetui/status.py) in Prometheus's text exposition
format 0.0.4, `pxetui_` names, a HELP and a TYPE line per family.

No client identifier (MAC, address) becomes a label: a label per client would be a series per
machine that ever booted, and the counters are for a dashboard, not for tracking machines
(docs/SECURITY.md, "Metrics"). Every label value is from a bounded set: service, protocol,
outcome, DHCP message type, stage, limit (a config key), event source.
"""

from __future__ import annotations

from typing import Any

from pxetui.stages import NEW, STAGES
from pxetui.status import OUTCOMES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    """Whole numbers as integers, others exactly: %g would print 123456789 bytes as 1.23457e+08."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    return repr(float(value))


def _family(out: list[str], name: str, kind: str, help_: str, samples: list[Sample]) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}")


def render(st: dict[str, Any]) -> str:
    """The exposition of one status document (pxetui.status.status_of)."""
    out: list[str] = []
    e, c = st["engine"], st["counters"]
    _family(out, "pxetui_info", "gauge", "The engine: version, interface and DHCP mode (always 1).",
            [({"version": e["version"], "interface": e["interface"], "dhcp_mode": st["dhcp"]["mode"]}, 1)])
    if e["started"] is not None:
        _family(out, "pxetui_start_time_seconds", "gauge", "When the engine started (Unix time).",
                [({}, e["started"])])
    _family(out, "pxetui_service_up", "gauge", "1 when the service is running, else 0.",
            [({"service": s["name"]}, 1 if s["state"] == "running" else 0)
             for s in st["services"]])
    _family(out, "pxetui_service_restarts_total", "counter", "Times the supervisor restarted the service.",
            [({"service": s["name"]}, s["restarts"]) for s in st["services"]])
    dh = c["dhcp"]
    _family(out, "pxetui_dhcp_dora_completed_total", "counter",
            "DHCP ACKs our server sent: exchanges (DORA or renewal) completed.", [({}, dh["dora_completed"])])
    _family(out, "pxetui_dhcp_messages_total", "counter", "DHCP messages our server received and sent, by type.",
            [({"direction": d, "type": k}, v) for d in ("received", "sent") for k, v in dh[d].items()])
    _family(out, "pxetui_transfers_total", "counter",
            "TFTP and HTTP transfers by outcome (lookup: a config lookup that found nothing, normal).",
            [({"protocol": p, "outcome": o}, t[o]) for p, t in c["transfers"].items() for o in OUTCOMES])
    _family(out, "pxetui_transfer_bytes_total", "counter", "Bytes our TFTP and HTTP services sent.",
            [({"protocol": p}, t["bytes"]) for p, t in c["transfers"].items()])
    _family(out, "pxetui_transfers_running", "gauge", "Transfers in progress.",
            [({"protocol": p}, t["running"]) for p, t in c["transfers"].items()])
    _family(out, "pxetui_errors_total", "counter", "Events logged at error level.", [({}, c["errors"])])
    _family(out, "pxetui_events_dropped_total", "counter",
            "Events the engine or a UI never got because its reader fell behind, by source.",
            [({"source": k}, v) for k, v in c["events_dropped"].items()])
    _family(out, "pxetui_limit_hits_total", "counter", "Times a configured limit refused or cut something.",
            [({"limit": k}, v) for k, v in c["limits_hit"].items()])
    by_stage = {s: 0 for s in (NEW, *STAGES)}  # every stage, so a series exists before its first client
    by_stage.update(st["clients_by_stage"])
    _family(out, "pxetui_clients", "gauge", "Boot clients tracked, by the stage they reached.",
            [({"stage": k}, v) for k, v in by_stage.items()])
    _family(out, "pxetui_clients_in_trouble", "gauge", "Clients diagnosed stuck or failed.",
            [({}, st["clients_in_trouble"])])
    return "\n".join(out) + "\n"
