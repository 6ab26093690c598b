"""`pxetui status` and /metrics from the one fold: the counters (pxetui/state.py), the status
document against docs/status.schema.json, the words, the Prometheus exposition read back by
prometheus-client's own parser, and the metrics listener's refusals."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families
from schema_lite import SCHEMA, problems

from pxetui.config import Config, MetricsConfig
from pxetui.events import (
    ClientUpdate,
    DhcpModeDecided,
    DhcpPacket,
    EngineStarted,
    Event,
    EventsDropped,
    LimitHit,
    Log,
    ReplayDone,
    ServiceState,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from pxetui.metrics import render
from pxetui.metrics_server import MetricsServer, answer
from pxetui.stages import STAGES
from pxetui.state import EngineState
from pxetui.status import status_of, text
from pxetui.supervisor import Supervisor

MAC = "52:54:00:00:00:01"


# -- a fold with one of everything ------------------------------------------------------------

def events() -> list[Event]:
    out: list[Event] = [
        EngineStarted(ts=100.0, service="engine", interface="eth1", address="10.0.0.1",
                      dhcp_mode="auto", http_port=80, version="9.9", state_dir="/st"),
        DhcpModeDecided(ts=101.0, service="dhcp", mode="proxy", reason="10.0.0.2 answered",
                        other_server="10.0.0.2"),
        ServiceState(ts=102.0, service="dhcp", state="running", pid=11, ports=[67, 4011]),
        ServiceState(ts=102.0, service="tftp", state="running", pid=12, restarts=1),
        ServiceState(ts=103.0, service="http", state="failed", reason="port 80 in use", pid=13),
    ]
    for kind, direction in (("DISCOVER", "in"), ("OFFER", "out"), ("REQUEST", "in"), ("ACK", "out")):
        out.append(DhcpPacket(ts=110.0, service="dhcp", mac=MAC, msg_type=kind, direction=direction))
    out.append(DhcpPacket(ts=110.0, service="capture", mac=MAC, msg_type="ACK", direction="wire"))
    out += [
        TransferStarted(ts=120.0, service="tftp", mac=MAC, ip="10.0.0.100", transfer_id="t1",
                        protocol="tftp", path="pxelinux.0", size=1000),
        TransferProgress(ts=121.0, service="tftp", transfer_id="t1", protocol="tftp", bytes_done=600),
        TransferFinished(ts=122.0, service="tftp", transfer_id="t1", protocol="tftp", bytes_done=1000),
        TransferStarted(ts=123.0, service="tftp", ip="10.0.0.100", transfer_id="t2", protocol="tftp",
                        path="pxelinux.cfg/01-52-54-00-00-00-01"),
        TransferFailed(ts=123.5, service="tftp", transfer_id="t2", protocol="tftp",
                       path="pxelinux.cfg/01-52-54-00-00-00-01", reason="file not found"),
        TransferStarted(ts=124.0, service="tftp", ip="10.0.0.100", transfer_id="t3", protocol="tftp",
                        path="ldlinux.c32"),
        TransferFailed(ts=125.0, service="tftp", transfer_id="t3", protocol="tftp", path="ldlinux.c32",
                       reason="timed out", bytes_done=50),
        TransferStarted(ts=126.0, service="http", ip="10.0.0.100", transfer_id="h1", protocol="http",
                        path="vmlinuz", size=5000),
        TransferProgress(ts=127.0, service="http", transfer_id="h1", protocol="http", bytes_done=2048),
        # capture's copy of a transfer: the wire's, not counted as ours
        TransferStarted(ts=126.0, service="capture", ip="10.0.0.100", transfer_id="c1", protocol="tftp",
                        path="x"),
        TransferFinished(ts=128.0, service="capture", transfer_id="c1", protocol="tftp", bytes_done=777),
        LimitHit(ts=130.0, service="tftp", ip="10.0.0.66", limit="tftp.max_per_client", count=3),
        LimitHit(ts=131.0, service="tftp", ip="10.0.0.67", limit="tftp.max_per_client", count=2),
        LimitHit(ts=131.0, service="http", ip="10.0.0.67", limit='odd"limit\\', count=1),
        EventsDropped(ts=132.0, service="dhcp", total=7, counts={"DhcpPacket": 7}),
        Log(ts=133.0, service="engine", level_name="error", message="something broke"),
        Log(ts=133.0, service="engine", level_name="warning", message="not an error"),
        ClientUpdate(ts=140.0, mac=MAC, ip="10.0.0.100", stage="kernel", firmware="bios",
                     diagnosis="no progress for 90 s", full=True),
        ClientUpdate(ts=140.0, mac="52:54:00:00:00:02", stage="", full=True),
    ]
    return out


def folded(evs: list[Event]) -> EngineState:
    st = EngineState(log_size=0, track_dirty=False)
    for ev in evs:
        st.apply(ev)
    return st


def test_the_fold_counts_what_our_services_did_and_status_says_it():
    st = status_of(folded(events()), now=200.0)
    assert problems(st, SCHEMA) == []
    c = st["counters"]
    assert c["dhcp"] == {"received": {"DISCOVER": 1, "REQUEST": 1}, "sent": {"ACK": 1, "OFFER": 1},
                         "dora_completed": 1}  # capture's copy of the ACK is not ours
    assert c["transfers"]["tftp"] == {"started": 3, "done": 1, "failed": 1, "lookup": 1,
                                      "bytes": 1050, "running": 0}
    assert c["transfers"]["http"] == {"started": 1, "done": 0, "failed": 0, "lookup": 0,
                                      "bytes": 2048, "running": 1}
    assert c["errors"] == 2  # the failed http service and the error log line
    assert c["events_dropped"] == {"dhcp": 7}
    assert c["limits_hit"] == {"tftp.max_per_client": 5, 'odd"limit\\': 1}
    assert st["dhcp"] == {"mode": "proxy", "reason": "10.0.0.2 answered", "other_server": "10.0.0.2"}
    svc = {s["name"]: s for s in st["services"]}
    assert (svc["tftp"]["pid"], svc["tftp"]["restarts"], svc["tftp"]["uptime_seconds"]) == (12, 1, 98.0)
    assert svc["http"]["uptime_seconds"] is None and svc["http"]["reason"] == "port 80 in use"
    assert st["engine"]["uptime_seconds"] == 100.0
    assert st["clients_by_stage"] == {"new": 1, "kernel": 1} and st["clients_in_trouble"] == 1
    assert st["clients"][0]["diagnosis"] == "no progress for 90 s"

    words = text(st)
    assert "DHCP: proxy (10.0.0.2 answered); other server 10.0.0.2" in words
    assert "1 DORA completed" in words and "errors: 2; events dropped: dhcp 7" in words
    assert "TFTP: 3 transfers (1 done, 1 failed, 1 config lookups not found, 0 running), 1.0 KiB" in words
    assert "52:54:00:00:00:01  10.0.0.100      kernel     bios          no progress for 90 s" in words


def test_the_validator_rejects_what_the_schema_forbids():
    st = status_of(folded(events()), now=200.0)
    st["counters"]["transfers"]["tftp"]["bytes"] = -1
    st["services"][0]["state"] = "sleeping"
    del st["clients"][0]["stage"]
    st["extra"] = 1
    st["counters"]["dhcp"]["sent"]["HELLO"] = 1
    found = problems(st, SCHEMA)
    assert len(found) == 5, found


def test_a_late_reader_counts_exactly_what_the_engine_counted(tmp_path):
    """The replay re-sends the recent history (DHCP packets, error logs): folded again they
    would count twice; the Totals at the end put the counts right."""
    sup = Supervisor(Config.from_dict({"state_dir": str(tmp_path)}), names=[])
    for ev in events():
        sup.relay(ev)
    replay = sup.replay()
    assert isinstance(replay[-1], ReplayDone) and replay[-1].events == len(replay) - 1
    late = folded(replay)
    assert late.counts == sup.state.counts and late.counts["dhcp.out.ACK"] == 1
    assert status_of(late, 200.0) == status_of(sup.state, 200.0)


def test_metrics_parse_with_prometheus_clients_parser():
    exposition = render(status_of(folded(events()), now=200.0))
    assert all(line.startswith(("# HELP pxetui_", "# TYPE pxetui_", "pxetui_"))
               for line in exposition.splitlines())
    fams = {f.name: f for f in text_string_to_metric_families(exposition)}

    def value(name: str, **labels: str) -> float:
        (hit,) = [s.value for f in fams.values() for s in f.samples
                  if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return hit

    assert fams["pxetui_transfers"].type == "counter" and fams["pxetui_clients"].type == "gauge"
    assert all(f.documentation for f in fams.values())
    assert value("pxetui_dhcp_dora_completed_total") == 1
    assert value("pxetui_dhcp_messages_total", direction="received", type="DISCOVER") == 1
    assert value("pxetui_transfers_total", protocol="tftp", outcome="lookup") == 1
    assert value("pxetui_transfer_bytes_total", protocol="http") == 2048
    assert value("pxetui_limit_hits_total", limit='odd"limit\\') == 1  # escaped, read back whole
    assert value("pxetui_events_dropped_total", source="dhcp") == 7
    assert value("pxetui_service_up", service="http") == 0
    assert value("pxetui_service_restarts_total", service="tftp") == 1
    assert value("pxetui_info", dhcp_mode="proxy") == 1
    # one gauge per stage, from the first scrape on, so a dashboard's series never appear late
    stages = {s.labels["stage"]: s.value for s in fams["pxetui_clients"].samples}
    assert set(stages) == {"new", *STAGES} and stages["kernel"] == 1 and stages["booted"] == 0
    assert value("pxetui_clients_in_trouble") == 1
    assert value("pxetui_start_time_seconds") == 100
    # no client identifier in any label (docs/SECURITY.md, "Metrics")
    assert MAC not in exposition and "10.0.0.100" not in exposition


def test_large_counters_and_times_are_written_exactly():
    st = status_of(folded(events()), now=200.0)
    st["engine"]["started"] = 1765090000.25
    st["counters"]["transfers"]["tftp"]["bytes"] = 123_456_789_012
    exposition = render(st)
    assert 'pxetui_transfer_bytes_total{protocol="tftp"} 123456789012\n' in exposition
    assert "pxetui_start_time_seconds 1765090000.25\n" in exposition
    fams = {f.name: f for f in text_string_to_metric_families(exposition)}
    assert fams["pxetui_start_time_seconds"].samples[0].value == 1765090000.25


def test_answer_serves_only_get_metrics():
    def body() -> str:
        return "pxetui_x 1\n"

    assert answer(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", body).endswith(b"\r\n\r\npxetui_x 1\n")
    head = answer(b"HEAD /metrics HTTP/1.1\r\n\r\n", body)
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
    assert answer(b"GET /metrics/../x HTTP/1.1\r\n\r\n", body).startswith(b"HTTP/1.1 404")
    assert answer(b"POST /metrics HTTP/1.1\r\n\r\n", body).startswith(b"HTTP/1.1 405")
    assert answer(b"\xff\xfe\r\n\r\n", body).startswith(b"HTTP/1.1 400")


async def _serve(cfg: MetricsConfig) -> tuple[MetricsServer, int, list[Event]]:
    seen: list[Event] = []
    server = MetricsServer(cfg, lambda: "pxetui_x 1\n", seen.append)
    await server.start()
    assert server.server is not None
    return server, server.server.sockets[0].getsockname()[1], seen


async def _get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:  # closed with our request unread: refused, nothing said
        return b""
    finally:
        writer.close()


async def test_the_listener_refuses_addresses_outside_allow_and_says_so():
    server, port, seen = await _serve(MetricsConfig(enabled=True, port=0, allow=["10.9.0.0/16"]))
    try:
        assert await _get(port) == b""  # closed before a byte is read
        (hit,) = [e for e in seen if isinstance(e, LimitHit)]
        assert hit.limit == "metrics.allow" and hit.ip == "127.0.0.1"
    finally:
        server.close()


async def test_the_listener_serves_an_allowed_scraper_and_bounds_connections():
    server, port, seen = await _serve(MetricsConfig(enabled=True, port=0, max_connections=1))
    try:
        assert (await _get(port)).endswith(b"pxetui_x 1\n")
        _, silent = await asyncio.open_connection("127.0.0.1", port)  # holds the one slot
        await asyncio.sleep(0.1)
        assert await _get(port) == b""
        assert [e.limit for e in seen if isinstance(e, LimitHit)] == ["metrics.max_connections"]
        silent.close()
    finally:
        server.close()


def test_metrics_config_is_checked():
    from pxetui.config import ConfigError

    with pytest.raises(ConfigError) as exc:
        Config.from_dict({"metrics": {"address": "eth0", "port": 70000, "allow": ["10.0.0/33"]}})
    assert [p.split(":")[0] for p in exc.value.problems] == ["metrics.address", "metrics.port",
                                                             "metrics.allow[0]"]
    assert Config().metrics.enabled is False and Config().metrics.address == "127.0.0.1"
