"""The one fold of the event stream (pxetui/state.py): a UI that attaches late, rebuilt from the
supervisor's replay, holds exactly the state of a UI that watched live."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from pxetui.config import Config
from pxetui.control import ControlClient, socket_path
from pxetui.events import (
    Alert,
    ClientForgotten,
    ClientUpdate,
    DhcpModeDecided,
    DhcpPacket,
    EngineStarted,
    Event,
    EventsDropped,
    ForeignDhcpServer,
    IsoImported,
    LabVm,
    LeaseEnded,
    LeaseGranted,
    LimitHit,
    Log,
    MenuChanged,
    PoolExhausted,
    ServiceState,
    TransferClosed,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from pxetui.state import EngineState
from pxetui.supervisor import Supervisor

MAC, IP = "52:54:00:aa:bb:20", "10.99.0.70"


def fold(events: list[Event], keep: int = 300) -> EngineState:
    s = EngineState(finished_keep=keep)
    for e in events:
        s.apply(e)
    return s


def cfg_for(tmp_path) -> Config:
    cfg = Config.from_dict({"interface": "eth0", "state_dir": str(tmp_path / "st")})
    cfg.server_ip, cfg.netmask = "10.99.0.1", "255.255.255.0"
    return cfg


async def test_a_late_ui_keeps_the_wire_lease_our_lease_ended_beside(tmp_path):
    """Issue 14: our lease and a lease capture saw on the wire hold one address; our lease
    ends. The live UI keeps the wire lease, and so must a UI attaching afterwards (the old
    replay cache keyed leases by address: the end of ours took the wire's with it)."""
    cfg = cfg_for(tmp_path)
    sup = Supervisor(cfg, names=[])
    live = EngineState()
    sup.on_event = live.apply
    await sup.start()
    try:
        sup.relay(LeaseGranted(ts=1.0, service="dhcp", mac=MAC, ip=IP, expires=3601.0))
        sup.relay(LeaseGranted(ts=1.5, service="capture", mac=MAC, ip=IP, ours=False,
                               server_ip="10.99.0.2", expires=7201.0))
        sup.relay(LeaseEnded(ts=2.0, service="dhcp", mac=MAC, ip=IP, reason="released"))
        assert [(le.ours, le.server_ip) for le in live.leases.values()] == [(False, "10.99.0.2")]
        await asyncio.sleep(0)  # the end of the batch: the tracker's update of the client goes

        n = len(sup.replay())  # what the next UI is sent before anything live
        client = await ControlClient.connect(socket_path(cfg.state_dir))
        late = EngineState()

        async def take_replay() -> None:
            got = 0
            async for ev in client.typed_events():
                late.apply(ev)
                got += 1
                if got == n:
                    return
        await asyncio.wait_for(take_replay(), 5)
        await client.close()
        assert [(le.ours, le.server_ip) for le in late.leases.values()] == [(False, "10.99.0.2")]
        assert late.folded() == live.folded()
    finally:
        await sup.stop()


async def test_the_supervisor_replays_one_state_per_key_and_bounded_history(tmp_path):
    """What the old StateCache pinned, now through the one fold: the latest state per service,
    one DHCP mode, ended leases gone, a transfer's start merged with its outcome, and the
    newest FINISHED_KEEP finished transfers, oldest first."""
    cfg = cfg_for(tmp_path)
    sup = Supervisor(cfg, names=[])
    for state in ("starting", "running"):
        sup.relay(ServiceState(service="tftp", state=state))
    sup.relay(ServiceState(service="http", state="starting"))
    sup.relay(DhcpModeDecided(mode="full"))
    sup.relay(DhcpModeDecided(mode="proxy", reason="another server answered"))
    sup.relay(LeaseGranted(ip="10.0.0.5", mac="aa:bb:cc:dd:ee:01"))
    sup.relay(LeaseGranted(ip="10.0.0.6", mac="aa:bb:cc:dd:ee:02"))
    sup.relay(LeaseEnded(ip="10.0.0.5", reason="released"))
    sup.relay(TransferStarted(transfer_id="t", path="pxelinux.0", size=100, options={"blksize": 1432}))
    sup.relay(TransferProgress(transfer_id="t", bytes_done=50))
    sup.relay(TransferFinished(transfer_id="t", bytes_done=100, seconds=0.5))
    replay = sup.replay()
    assert {e.service: e.state for e in replay if isinstance(e, ServiceState)} == {
        "tftp": "running", "http": "starting"}
    assert [e.mode for e in replay if isinstance(e, DhcpModeDecided)] == ["proxy"]
    assert [e.ip for e in replay if isinstance(e, LeaseGranted)] == ["10.0.0.6"]
    t = fold(replay).transfers["t"]
    assert (t.path, t.options, t.bytes_done, t.status) == ("pxelinux.0", {"blksize": 1432}, 100, "done")

    for i in range(700):
        sup.relay(TransferStarted(transfer_id=f"t{i}"))
        sup.relay(TransferFinished(transfer_id=f"t{i}"))
    kept = [e.transfer_id for e in sup.replay() if isinstance(e, TransferStarted)]
    assert kept == [f"t{i}" for i in range(200, 700)]  # the newest 500, oldest first


# -- the property: fold(live) == fold(replay(fold(live))) ------------------------------------

MACS = st.sampled_from(["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"])
IPS = st.sampled_from(["10.0.0.5", "10.0.0.6"])
TIDS = st.sampled_from([f"t{i}" for i in range(6)])
SERVICES = st.sampled_from(["dhcp", "tftp", "http", "capture", "ui"])
STAGES = st.sampled_from(["discover", "kernel", "booted", "installed"])
KEYS = st.sampled_from(["service:tftp", "stuck:52:54:00:00:00:01", "foreign-dhcp:10.0.0.2",
                        "loader:uefi64", "pool:main"])
WORDS = st.sampled_from(["", "a", "timed out", "port 69 in use"])
TS = st.floats(min_value=0, max_value=100, allow_nan=False)
ROWS = st.lists(st.fixed_dictionaries({"id": st.sampled_from(["a", "b", "c", "d"]),
                                       "status": st.sampled_from(["running", "done"]),
                                       "bytes": st.integers(0, 99)}), max_size=3)

EVENTS = st.one_of(
    st.builds(EngineStarted, ts=TS, interface=WORDS, dhcp_mode=st.sampled_from(["auto", "full"]),
              http_port=st.integers(0, 9000)),
    st.builds(DhcpModeDecided, ts=TS, mode=st.sampled_from(["full", "proxy", ""]), reason=WORDS,
              other_server=st.none() | st.just("10.0.0.2")),
    st.builds(ServiceState, ts=TS, service=SERVICES,
              state=st.sampled_from(["starting", "running", "restarting", "failed", "stopped"]),
              reason=WORDS, pid=st.none() | st.integers(1, 9), restarts=st.integers(0, 3),
              ports=st.lists(st.integers(1, 9), max_size=2)),
    st.builds(EventsDropped, ts=TS, service=SERVICES, total=st.integers(-1, 50),
              counts=st.dictionaries(st.sampled_from(["Log", "DhcpPacket"]), st.integers(-1, 9))),
    st.builds(Alert, ts=TS, key=KEYS, severity=st.sampled_from(["warning", "error"]),
              message=WORDS, cleared=st.booleans()),
    st.builds(ForeignDhcpServer, ts=TS, server_ip=st.sampled_from(["10.0.0.2", "10.0.0.3"]),
              offered=st.none() | IPS, boot_file=st.none() | st.just("undionly.kpxe")),
    st.builds(PoolExhausted, ts=TS, pool=st.sampled_from(["main"])),
    st.builds(LimitHit, ts=TS, ip=st.none() | IPS, limit=st.sampled_from(["tftp.max_per_client"]),
              count=st.integers(0, 5), message=WORDS),
    st.builds(LeaseGranted, ts=TS, mac=MACS, ip=IPS, ours=st.booleans(),
              server_ip=st.none() | st.just("10.0.0.2"), expires=TS,
              state=st.sampled_from(["offered", "bound"])),
    st.builds(LeaseEnded, ts=TS, mac=st.none() | MACS, ip=st.none() | IPS, ours=st.booleans()),
    st.builds(TransferStarted, ts=TS, transfer_id=TIDS, ip=st.none() | IPS, mac=st.none() | MACS,
              service=st.sampled_from(["tftp", "http", "capture"]),
              protocol=st.sampled_from(["tftp", "http"]), path=WORDS,
              size=st.none() | st.integers(0, 1000), options=st.just({"blksize": 1432})),
    st.builds(TransferProgress, ts=TS, transfer_id=TIDS, bytes_done=st.integers(0, 1000),
              size=st.none() | st.integers(0, 1000), rate=st.floats(0, 10), retransmits=st.integers(0, 2)),
    st.builds(TransferFinished, ts=TS, transfer_id=TIDS, bytes_done=st.integers(0, 1000),
              rate=st.floats(0, 10), retransmits=st.integers(0, 2)),
    st.builds(TransferFailed, ts=TS, transfer_id=TIDS, bytes_done=st.integers(0, 1000),
              reason=WORDS | st.just("file not found"), ip=st.none() | IPS,
              path=st.sampled_from(["", "pxelinux.cfg/0A", "pxelinux.cfg/default"])),
    st.builds(TransferClosed, ts=TS, transfer_id=TIDS, reason=WORDS),
    st.builds(LabVm, ts=TS, state=st.sampled_from(["running", "off"]), booted=st.booleans(),
              boots=st.integers(1, 3), exit_code=st.none() | st.integers(0, 2), detail=WORDS),
    st.builds(ClientUpdate, ts=TS, mac=MACS, ip=st.none() | IPS,
              stage=STAGES, diagnosis=WORDS, full=st.booleans(),
              files=ROWS, files_removed=st.lists(st.sampled_from(["a", "b"]), max_size=1),
              stages=st.lists(st.fixed_dictionaries({"stage": STAGES, "ts": TS}), max_size=2),
              boot=st.integers(0, 2), files_dropped=st.integers(0, 3)),
    st.builds(ClientForgotten, ts=TS, mac=MACS),
    st.builds(IsoImported, ts=TS, name=st.sampled_from(["debian", "alpine"]), path=WORDS),
    st.builds(Log, ts=TS, message=WORDS),
    st.builds(DhcpPacket, ts=TS, mac=MACS, msg_type=st.sampled_from(["DISCOVER", "ACK"])),
    st.builds(MenuChanged, ts=TS, entries=st.integers(0, 3)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=60))
def test_the_replay_of_a_fold_folds_to_the_same_state(events: list[Event]):
    live = fold(events, keep=3)
    assert fold(live.snapshot(), keep=3).folded() == live.folded()


# Transfers and what closes them (a client that booted or moved on, a service gone), more often.
CLOSING = st.one_of(
    st.builds(TransferStarted, ts=TS, transfer_id=TIDS, ip=IPS, service=st.sampled_from(["tftp", "capture"]),
              protocol=st.sampled_from(["tftp", "http"])),
    st.builds(TransferProgress, ts=TS, transfer_id=TIDS, bytes_done=st.integers(0, 1000)),
    st.builds(TransferFinished, ts=TS, transfer_id=TIDS, ip=IPS),
    st.builds(ServiceState, ts=TS, service=st.sampled_from(["tftp", "capture"]),
              state=st.sampled_from(["running", "failed", "restarting"])),
    st.builds(ClientUpdate, ts=TS, mac=MACS, ip=IPS, stage=STAGES, boot=st.integers(0, 2),
              stages=st.lists(st.fixed_dictionaries({"stage": STAGES, "ts": TS}), max_size=2)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS | CLOSING | CLOSING, max_size=60), st.integers(0, 60))
def test_a_ui_that_attached_midway_stays_equal_to_the_live_fold(events: list[Event], cut: int):
    # What a late UI really does: fold the replay of the events so far, then the live stream.
    # The transfers the fold closes by inference (a client moved on, a service went away)
    # must close in both, in the same order (the finished history is ordered).
    live = fold(events[:cut], keep=3)
    late = fold(live.snapshot(), keep=3)
    for e in events[cut:]:
        live.apply(e)
        late.apply(e)
    assert late.folded() == live.folded()


def test_the_supervisor_and_a_ui_keep_the_same_finished_history(tmp_path):
    # A smaller UI history diverges when an evicted transfer ends again (failed, then finished):
    # the live UI has forgotten its reason, the supervisor's replay still carries it.
    sup = Supervisor(cfg_for(tmp_path), names=[])
    assert sup.state.finished_keep == EngineState().finished_keep


async def test_service_lines_are_rebuilt_as_their_classes_once_and_bad_ones_named(tmp_path):
    from types import SimpleNamespace

    from pxetui.supervisor import ServiceRunner

    sup = Supervisor(cfg_for(tmp_path), names=[])
    runner = ServiceRunner(sup, "dhcp")
    import time

    now = time.time()  # read as it comes (an old DhcpPacket would be shed: SHED_LAG)
    stream = asyncio.StreamReader()
    stream.feed_data(f'{{"type": "DhcpPacket", "ts": {now}, "mac": "52:54:00:aa:bb:21", "msg_type": "DISCOVER"}}\n'
                     f'{{"type": "NoSuchEvent", "ts": {now}}}\n'
                     'not json\n'
                     f'{{"type": "ServiceState", "ts": {now}, "state": "running", "ports": [67]}}\n'.encode())
    stream.feed_eof()
    runner.proc = SimpleNamespace(stdout=stream)  # type: ignore[assignment]
    seen: list[Event] = []
    sup.on_event = seen.append
    await runner._pump_events()
    pkt, bad, health, count = seen
    assert isinstance(pkt, DhcpPacket) and pkt.service == "dhcp" and pkt.msg_type == "DISCOVER"
    assert isinstance(bad, Log) and bad.level_name == "error" and "NoSuchEvent" in bad.message
    assert isinstance(health, ServiceState) and health.service == "dhcp" and runner.ever_running
    assert isinstance(count, Log) and count.message == "2 bad event lines skipped"
    assert sup.state.services["dhcp"].ports == [67]


async def test_clients_a_previous_run_left_are_in_the_replay(tmp_path):
    import time

    cfg = cfg_for(tmp_path)
    now = time.time()
    first = Supervisor(cfg, names=[])
    await first.start()
    try:
        first.relay(DhcpPacket(ts=now, service="dhcp", mac=MAC, msg_type="ACK", xid=1,
                               direction="out", arch=0, yiaddr=IP, server_ip="10.99.0.1"))
        first.relay(TransferStarted(ts=now + 0.1, service="tftp", ip=IP, transfer_id="t",
                                    path="pxelinux.0", size=1000))
    finally:
        await first.stop()
    again = Supervisor(cfg, names=[])
    await again.start()
    try:
        (c,) = [e for e in again.replay() if isinstance(e, ClientUpdate)]
        assert c.mac == MAC and c.full and [f["id"] for f in c.files] == ["t"]
    finally:
        await again.stop()


def test_limit_hits_from_a_spoofed_flood_stay_bounded_and_replay_alike():
    # Each spoofed source is a new (limit, address) pair: the fold keeps the most recent.
    from pxetui.events import LimitHit
    from pxetui.state import LIMITS_KEEP

    live = EngineState()
    for i in range(LIMITS_KEEP + 300):
        live.apply(LimitHit(ts=float(i), service="tftp", limit="tftp.max_per_client",
                            ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", count=1, message="x"))
    live.apply(LimitHit(ts=1e6, service="tftp", limit="tftp.max_per_client", ip="10.0.1.44", count=2))
    assert len(live.limits) == LIMITS_KEEP
    assert list(live.limits)[-1] == "tftp.max_per_client|10.0.1.44"
    assert live.limits["tftp.max_per_client|10.0.1.44"].count == 3  # an old pair hit again
    late = EngineState()
    for ev in live.snapshot():
        late.apply(ev)
    assert late.limits == live.limits


# -- tables keyed by what the wire says: bounded, and dropped alike in every fold ----------------


def _addr(i: int, net: int = 10) -> str:
    return f"{net}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def _late(live: EngineState) -> EngineState:
    late = EngineState()
    for ev in live.snapshot():
        late.apply(ev)
    return late


def test_the_http_service_s_refusals_per_address_are_capped_like_the_wire_s():
    """Refused seeds and callbacks raise an alert per address (pxetui/http/routes.py); a host
    taking address after address must not grow the table a late UI is sent, and a late fold
    drops what the live one does."""
    from pxetui.state import WIRE_ALERTS_KEEP

    live = EngineState()
    live.apply(ServiceState(ts=0.0, service="tftp", state="failed", reason="port 69 in use"))
    n, kinds = WIRE_ALERTS_KEEP + 300, ("untokened", "badtoken", "misattributed")
    for i in range(n):
        live.apply(Alert(ts=1.0 + i, service="http", key=f"{kinds[i % 3]}:{_addr(i)}", message="refused"))
    assert len(live.alerts) == WIRE_ALERTS_KEEP + 1 and "service:tftp" in live.alerts
    assert f"untokened:{_addr(0)}" not in live.alerts
    assert f"{kinds[(n - 1) % 3]}:{_addr(n - 1)}" in live.alerts
    late = _late(live)
    assert late.folded() == live.folded()
    for i in range(n, n + 50):
        for s in (live, late):
            s.apply(Alert(ts=1.0 + i, service="http", key=f"badtoken:{_addr(i)}", message="refused"))
    assert late.folded() == live.folded() and len(late.alerts) == WIRE_ALERTS_KEEP + 1


def test_forged_dhcp_servers_and_their_alerts_keep_the_newest_and_ours_stay():
    from pxetui.state import FOREIGN_KEEP, WIRE_ALERTS_KEEP

    live = EngineState()
    live.apply(ServiceState(ts=0.0, service="tftp", state="failed", reason="port 69 in use"))
    live.apply(PoolExhausted(ts=0.0, service="dhcp", pool="main"))
    # our DHCP service switched to proxy because of this one: its alert is ours, never dropped
    live.apply(Alert(ts=0.0, service="dhcp", key="foreign-dhcp:10.0.0.2", severity="error", message="proxy now"))
    live.apply(Alert(ts=0.0, service="capture", key="capture", severity="error", message="no capture"))
    n = max(FOREIGN_KEEP, WIRE_ALERTS_KEEP) + 500
    for i in range(n):  # each forged reply names a new server: a table row and two alert events
        ip = _addr(i, 11)
        live.apply(ForeignDhcpServer(ts=1.0 + i, service="capture", server_ip=ip, offered=_addr(i)))
        live.apply(Alert(ts=1.0 + i, service="capture", key=f"foreign-dhcp:{ip}", message="another"))
        live.apply(Alert(ts=1.0 + i, service="capture", key=f"unanswered:{i}", message="unanswered"))
    assert len(live.foreign) == FOREIGN_KEEP and list(live.foreign)[-1] == _addr(n - 1, 11)
    assert _addr(0, 11) not in live.foreign
    assert len(live.alerts) == WIRE_ALERTS_KEEP + 4
    assert f"unanswered:{n - 1}" in live.alerts and f"foreign-dhcp:{_addr(n - 1, 11)}" in live.alerts
    assert "unanswered:0" not in live.alerts
    for ours in ("service:tftp", "pool:main", "foreign-dhcp:10.0.0.2", "capture"):
        assert ours in live.alerts
    late = _late(live)
    assert late.folded() == live.folded()
    for i in range(n, n + 300):  # the flood goes on: both drop the same ones
        ip = _addr(i, 11)
        for s in (live, late):
            s.apply(ForeignDhcpServer(ts=1.0 + i, service="capture", server_ip=ip))
            s.apply(Alert(ts=1.0 + i, service="capture", key=f"unanswered:{i}", message="unanswered"))
    assert late.folded() == live.folded()


def test_forged_wire_leases_keep_the_newest_and_ours_are_untouched():
    from pxetui.state import WIRE_LEASES_KEEP

    live = EngineState()
    for i in range(WIRE_LEASES_KEEP + 1000):  # ours: only LeaseEnded removes them
        live.apply(LeaseGranted(ts=0.0, service="dhcp", mac=f"ours{i}", ip=_addr(i), ours=True,
                                expires=100.0))
    for i in range(WIRE_LEASES_KEEP + 500):  # forged ACKs, random chaddr and yiaddr
        live.apply(LeaseGranted(ts=1.0 + i, service="capture", mac=f"w{i}", ip=_addr(i, 12), ours=False,
                                expires=1e9))
    wire = [le for le in live.leases.values() if not le.ours]
    assert len(wire) == WIRE_LEASES_KEEP and wire[-1].mac == f"w{WIRE_LEASES_KEEP + 499}"
    assert wire[0].mac == "w500"
    assert sum(le.ours for le in live.leases.values()) == WIRE_LEASES_KEEP + 1000  # expired too: ours
    # capture's copy naming our address (a forged option 54 while our DHCP is down) is the wire's
    live.apply(LeaseGranted(ts=9e5, service="capture", mac="copy", ip="10.9.9.9", ours=True, expires=1e9))
    assert live.leases["ours|copy|10.9.9.9"].from_wire
    assert sum(not le.from_wire for le in live.leases.values()) == WIRE_LEASES_KEEP + 1000
    late = _late(live)
    assert late.folded() == live.folded()
    for i in range(100):
        for s in (live, late):
            s.apply(LeaseGranted(ts=1e6 + i, service="capture", mac=f"x{i}", ip=_addr(i, 13), ours=False,
                                 expires=1e9))
    assert late.folded() == live.folded() and "wire|w500|" + _addr(500, 12) not in live.leases


def test_wire_leases_whose_expiry_passed_are_dropped_at_the_next_wire_grant():
    live = EngineState()
    live.apply(LeaseGranted(ts=0.0, service="dhcp", mac="ours", ip="10.0.0.1", ours=True, expires=5.0))
    live.apply(LeaseGranted(ts=0.0, service="capture", mac="a", ip="10.0.0.2", ours=False, expires=10.0))
    live.apply(LeaseGranted(ts=1.0, service="capture", mac="b", ip="10.0.0.3", ours=False, expires=50.0))
    live.apply(LeaseGranted(ts=2.0, service="capture", mac="c", ip="10.0.0.4", ours=False, expires=0.0))
    live.apply(LeaseGranted(ts=3.0, service="capture", mac="a", ip="10.0.0.2", ours=False, expires=30.0))
    live.apply(LeaseGranted(ts=40.0, service="capture", mac="d", ip="10.0.0.5", ours=False, expires=90.0))
    # a renewed to 30 (its first expiry's entry is stale), gone by 40; c never expires; ours stay
    assert sorted(le.mac for le in live.leases.values()) == ["b", "c", "d", "ours"]
    assert _late(live).folded() == live.folded()


WIRE_EVENTS = st.one_of(
    st.builds(ForeignDhcpServer, ts=TS, service=st.just("capture"),
              server_ip=st.sampled_from([f"10.0.0.{i}" for i in range(2, 7)])),
    st.builds(Alert, ts=TS, service=st.sampled_from(["capture", "dhcp"]),
              key=st.sampled_from(["foreign-dhcp:10.0.0.2", "foreign-dhcp:10.0.0.5", "unanswered:a",
                                   "unanswered6:b", "unanswered:c", "capture"]),
              message=WORDS, cleared=st.booleans()),
    st.builds(LeaseGranted, ts=TS, service=st.sampled_from(["capture", "dhcp"]), mac=MACS,
              ip=st.sampled_from([f"10.0.0.{i}" for i in range(5, 8)]), ours=st.booleans(),
              expires=st.just(0.0) | TS),  # 0: never expires
    st.builds(LeaseEnded, ts=TS, mac=st.none() | MACS, ip=st.none() | IPS, ours=st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([EVENTS, WIRE_EVENTS, WIRE_EVENTS]).flatmap(lambda s: s), max_size=60),
       st.integers(0, 60))
def test_the_caps_drop_alike_in_a_live_and_a_late_fold(events: list[Event], cut: int):
    # Caps of 3 so the drops happen: what a late UI drops next must be what the live one drops.
    from unittest import mock

    import pxetui.state as state

    with mock.patch.multiple(state, FOREIGN_KEEP=3, WIRE_LEASES_KEEP=3, WIRE_ALERTS_KEEP=3):
        live = fold(events[:cut], keep=3)
        late = fold(live.snapshot(), keep=3)
        assert late.folded() == live.folded()
        for e in events[cut:]:
            live.apply(e)
            late.apply(e)
        assert late.folded() == live.folded()
        assert len(live.foreign) <= 3 and sum(le.from_wire for le in live.leases.values()) <= 3
