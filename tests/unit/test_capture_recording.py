"""The capture pipeline without a socket: which addresses count as ours, and what is recorded
to the pcap (DHCP only, or all boot traffic the filter keeps)."""

from __future__ import annotations

from pathlib import Path

from services import base_config

from pxetui.capture.packets import parse_frame
from pxetui.capture.pcap import read_pcap
from pxetui.capture.service import Capture, http_ports, our_addresses
from pxetui.commands.analyze import replay
from pxetui.tracker import Tracker

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"


def test_our_addresses_follow_what_we_serve(tmp_path):
    serving = base_config(tmp_path)
    assert our_addresses(serving) == {"10.99.0.1"}
    watch_only = base_config(tmp_path, dhcp={"mode": "off"}, tftp={"enabled": False}, http={"enabled": False})
    assert our_addresses(watch_only) == set()
    assert http_ports(base_config(tmp_path, http={"port": 8080})) == [80, 8080]


def run_capture(tmp_path: Path, all_boot: bool) -> tuple[list, list]:
    events: list = []
    out = tmp_path / f"rec-{all_boot}.pcap"
    cap = Capture("eth0", set(), [80], events.append, pcap=str(out), all_boot_traffic=all_boot)
    _, frames = read_pcap(DATA / "bios_pxelinux.pcap")
    for ts, data in frames:
        cap.on_frame(data, ts)
    cap.close()
    _, rec = read_pcap(out)
    return events, [parse_frame(d) for _, d in rec]


def test_records_dhcp_only_by_default(tmp_path):
    events, recorded = run_capture(tmp_path, all_boot=False)
    dhcp = [e for e in events if e.type == "DhcpPacket"]
    assert len(recorded) == len(dhcp) > 0
    assert all({s.sport, s.dport} <= {67, 68, 4011} for s in recorded)
    # Our own recording reads back through analyze: the DHCP part of the timeline.
    tr = Tracker()
    list(replay(str(tmp_path / "rec-False.pcap"), tracker=tr))
    assert [s["stage"] for s in tr.clients["52:54:00:12:34:01"].stages] == ["discover", "offer", "ack"]


def test_records_all_boot_traffic_when_asked(tmp_path):
    events, recorded = run_capture(tmp_path, all_boot=True)
    assert len(recorded) == 149  # every frame of the source capture
    assert any(s.dport == 69 for s in recorded)
    assert any(e.type == "TransferFinished" for e in events)


def test_watch_view_tables_and_bounded_transfer_list():
    from pxetui.capture.report import MAX_TRANSFERS, SHOW_TRANSFERS, View
    from pxetui.events import LeaseGranted, TransferFinished, TransferStarted

    v = View()
    assert "lease    52:54:00:00:00:01 10.0.0.5 from 10.0.0.1" in v.apply(
        LeaseGranted(ts=0.0, service="capture", mac="52:54:00:00:00:01", ip="10.0.0.5", server_ip="10.0.0.1",
                     ours=False))
    for i in range(SHOW_TRANSFERS + 5):
        v.apply(TransferStarted(ts=1.0, ip="10.0.0.5", transfer_id=f"t{i}", path=f"f{i}", options={"server": "s"}))
    assert "done" in v.apply(TransferFinished(ts=2.0, transfer_id="t44", path="f44", bytes_done=2048))
    out = v.render()
    assert f"the last {SHOW_TRANSFERS}; 5 older not shown" in out
    assert "f44" in out and "2.0 KiB" in out and "  f0  " not in out
    # A long watch keeps at most MAX_TRANSFERS rows, dropping the oldest.
    for i in range(MAX_TRANSFERS):
        v.apply(TransferStarted(ts=3.0, ip="10.0.0.6", transfer_id=f"u{i}", path=f"g{i}"))
    assert len(v.transfers) == MAX_TRANSFERS and "t44" not in v.transfers and "u0" in v.transfers


def test_our_own_probe_is_not_a_booting_client():
    """Auto mode's probe sends a DISCOVER with the interface's own MAC: not a client."""
    _, frames_iter = read_pcap(DATA / "bios_pxelinux.pcap")
    frames = list(frames_iter)
    seen: list = []
    Capture("eth0", set(), [80], seen.append, own_mac="52:54:00:12:34:01").on_frame(frames[0][1], frames[0][0])
    assert seen == []
    Capture("eth0", set(), [80], seen.append, own_mac="52:54:00:99:99:99").on_frame(frames[0][1], frames[0][0])
    assert [e.mac for e in seen] == ["52:54:00:12:34:01"]
