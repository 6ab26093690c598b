"""EngineState: events in, keyed tables out, deterministic and bounded."""

from __future__ import annotations

from ui_feed import T0, ev, lab_feed

from pxetui.stages import STAGES
from pxetui.state import EngineState


def fed(events: list[dict]) -> EngineState:
    s = EngineState()
    for e in events:
        s.apply(e)
    return s


def test_lab_feed_builds_every_table():
    s = fed(lab_feed())
    assert s.engine.interface == "eth1" and s.engine.dhcp_mode == "proxy"
    assert s.engine.other_server == "10.99.0.2"
    assert {h.name: h.state for h in s.services.values()} == {
        "dhcp": "running", "tftp": "running", "http": "running", "capture": "running"}
    assert len(s.clients) == 5
    assert [le.ours for le in s.leases.values()].count(False) == 5
    assert s.transfers["t0"].status == "done" and s.transfers["t1"].status == "running"
    assert s.transfers["t1"].fraction == 0.6
    keys = set(s.alerts)
    assert {"foreign-dhcp:10.99.0.2", "loader:uefi64", "stuck:52:54:00:00:00:03"} <= keys
    assert s.sorted_alerts()[0].severity == "error"


def test_apply_reports_tables_and_dirty_keys():
    s = EngineState()
    changed = s.apply(ev("ClientUpdate", 1, mac="aa:bb:cc:dd:ee:01", stage="discover"))
    assert changed == {"logs", "clients", "alerts"}
    dirty = s.take_dirty()
    assert dirty["clients"] == {"aa:bb:cc:dd:ee:01"}
    assert s.take_dirty() == {}


def test_unknown_and_malformed_events_do_not_break_state():
    s = EngineState()
    assert s.apply({"no": "type"}) == set()
    assert s.apply({"type": "SomethingNew", "ts": T0}) == {"logs"}
    s.apply({"type": "TransferFinished", "ts": T0, "transfer_id": "x", "seconds": None})
    assert s.transfers["x"].status == "done"
    # Every event with a type is logged (whether or not it could be worded), none without.
    assert [(r.seq, r.type) for r in s.logs] == [(1, "SomethingNew"), (2, "TransferFinished")]
    assert s.logs[-1].text.startswith("TransferFinished")


def test_an_event_that_cannot_be_worded_is_logged_as_unreadable(monkeypatch):
    def refuse(ev: dict) -> str:
        raise ValueError("bad field")

    monkeypatch.setattr("pxetui.state.describe", refuse)
    s = EngineState()
    assert s.apply(ev("LeaseGranted", 1, mac="aa:bb:cc:dd:ee:01", ip="10.0.0.5")) == {
        "logs", "leases"}
    assert s.logs[-1].text == "LeaseGranted: unreadable (bad field)"
    assert s.logs[-1].mac == "aa:bb:cc:dd:ee:01" and "ours|aa:bb:cc:dd:ee:01|10.0.0.5" in s.leases


def test_service_failure_raises_and_recovery_clears_alert():
    s = EngineState()
    s.apply(ev("ServiceState", 1, service="tftp", state="failed", reason="UDP port 69 is held by in.tftpd"))
    assert s.alerts["service:tftp"].severity == "error"
    assert "port 69" in s.alerts["service:tftp"].message
    s.apply(ev("ServiceState", 2, service="tftp", state="running", ports=[69]))
    assert "service:tftp" not in s.alerts


def test_lease_ended_removes_only_the_matching_side():
    s = EngineState()
    s.apply(ev("LeaseGranted", 1, mac="aa:bb:cc:dd:ee:01", ip="10.0.0.5", ours=True))
    s.apply(ev("LeaseGranted", 1, mac="aa:bb:cc:dd:ee:01", ip="10.0.0.5", ours=False,
               server_ip="10.0.0.2"))
    s.apply(ev("LeaseEnded", 2, mac="aa:bb:cc:dd:ee:01", ip="10.0.0.5", ours=True))
    assert [le.ours for le in s.leases.values()] == [False]


def test_lease_ended_without_a_mac_ends_every_lease_of_that_address_on_its_side():
    s = EngineState()
    for mac, ip, ours in (("aa:bb:cc:dd:ee:01", "10.0.0.5", True),
                          ("aa:bb:cc:dd:ee:02", "10.0.0.5", True),
                          ("aa:bb:cc:dd:ee:01", "10.0.0.5", False),
                          ("aa:bb:cc:dd:ee:01", "10.0.0.6", True)):
        s.apply(ev("LeaseGranted", 1, mac=mac, ip=ip, ours=ours))
    s.take_dirty()
    s.apply(ev("LeaseEnded", 2, ip="10.0.0.5", reason="released"))
    assert sorted(s.leases) == ["ours|aa:bb:cc:dd:ee:01|10.0.0.6", "wire|aa:bb:cc:dd:ee:01|10.0.0.5"]
    assert s.take_dirty()["leases"] == {"ours|aa:bb:cc:dd:ee:01|10.0.0.5",
                                        "ours|aa:bb:cc:dd:ee:02|10.0.0.5"}


def test_throughput_is_bucketed_by_event_time_not_a_clock():
    s = EngineState(throughput_window=5)
    s.apply(ev("TransferStarted", 0, transfer_id="a", size=100))
    s.apply(ev("TransferProgress", 1, transfer_id="a", bytes_done=40))
    s.apply(ev("TransferProgress", 1.5, transfer_id="a", bytes_done=60))
    s.apply(ev("TransferFinished", 3, transfer_id="a", bytes_done=100))
    assert s.throughput() == [0.0, 0.0, 60.0, 0.0, 40.0]


def test_finished_transfers_are_bounded_and_logs_are_a_ring():
    s = EngineState(log_size=10, finished_keep=3)
    for i in range(6):
        s.apply(ev("TransferStarted", i, transfer_id=f"t{i}"))
        s.apply(ev("TransferFinished", i + 0.5, transfer_id=f"t{i}", bytes_done=1))
    assert sorted(s.transfers) == ["t3", "t4", "t5"]
    assert len(s.logs) == 10 and s.logs[-1].seq == 12


def test_forgotten_client_disappears_with_its_alert():
    s = fed(lab_feed())
    s.apply(ev("ClientForgotten", 20, mac="52:54:00:00:00:03"))
    assert "52:54:00:00:00:03" not in s.clients
    assert "stuck:52:54:00:00:00:03" not in s.alerts


def test_clients_by_stage_follow_boot_order():
    s = fed(lab_feed())
    assert [stage for stage, _ in s.clients_by_stage()] == [
        "discover", "ack", "bootloader", "kernel", "booted"]
    assert s.clients_in_trouble() == 1


def test_disconnect_is_an_alert():
    s = EngineState()
    s.disconnected("ConnectionResetError: peer went away")
    assert not s.connected
    assert "peer went away" in s.alerts["connection"].message


def test_stuck_alert_follows_the_diagnosis():
    s = fed(lab_feed())
    assert "TFTP timed out" in s.alerts["stuck:52:54:00:00:00:03"].message
    s.apply(ev("ClientUpdate", 30, mac="52:54:00:00:00:03", stage="kernel", diagnosis=""))
    assert "stuck:52:54:00:00:00:03" not in s.alerts and s.clients_in_trouble() == 0


def test_menu_changed_marks_the_library_for_the_screens_that_read_the_menu():
    s = EngineState()
    assert s.apply(ev("MenuChanged", 1, entries=3)) == {"logs", "library"}
    assert s.take_dirty()["library"] == {"menu"}


def test_clients_by_stage_new_first_then_boot_order_then_verdicts():
    # Fed in reverse boot order: the sort, not the arrival, puts them in the tracker's order.
    order = ["failed", "stuck", *reversed(STAGES), ""]
    s = EngineState()
    for i, stage in enumerate(order):
        s.apply(ev("ClientUpdate", i, mac=f"aa:bb:cc:dd:ee:{i:02x}", stage=stage))
    assert [stage for stage, _ in s.clients_by_stage()] == ["new", *STAGES, "failed", "stuck"]
