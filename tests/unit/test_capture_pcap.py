"""pcap writing and reading: our own files, tcpdump's, pcapng, and bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import PcapNgWriter

from pxetui.capture.packets import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, parse_frame
from pxetui.capture.pcap import PcapError, PcapWriter, read_pcap

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"


def frame(n: int) -> bytes:
    return bytes(Ether() / IP(src="10.99.0.5", dst="10.99.0.1") / UDP(sport=2000 + n, dport=69) /
                 Raw(b"\x00\x01f%d\x00octet\x00" % n))


def test_roundtrip(tmp_path):
    p = tmp_path / "out" / "x.pcap"
    with PcapWriter(p) as w:
        for i in range(5):
            w.write(frame(i), 1000.0 + i * 0.25)
    lt, frames = read_pcap(p)
    got = list(frames)
    assert lt == LINKTYPE_ETHERNET
    assert [round(ts, 6) for ts, _ in got] == [1000.0, 1000.25, 1000.5, 1000.75, 1001.0]
    assert [d for _, d in got] == [frame(i) for i in range(5)]


def test_snaplen_truncates_but_keeps_wire_length(tmp_path):
    p = tmp_path / "x.pcap"
    with PcapWriter(p, snaplen=40) as w:
        w.write(frame(1), 1.0)
    raw = p.read_bytes()
    caplen, length = struct.unpack_from("<II", raw, 24 + 8)
    assert caplen == 40 and length == len(frame(1))


def test_reads_tcpdump_capture():
    lt, frames = read_pcap(DATA / "bios_pxelinux.pcap")
    first = next(iter(frames))
    assert lt == LINKTYPE_ETHERNET
    seg = parse_frame(first[1])
    assert seg is not None and seg.dport == 67


def test_reads_pcapng(tmp_path):
    p = tmp_path / "x.pcapng"
    w = PcapNgWriter(str(p))
    pkt = Ether(frame(3))
    pkt.time = 1234.5
    w.write(pkt)
    w.close()
    lt, frames = read_pcap(p)
    got = list(frames)
    assert lt == LINKTYPE_ETHERNET and len(got) == 1
    assert got[0][1] == frame(3) and abs(got[0][0] - 1234.5) < 1e-3


def test_big_endian_nanosecond_pcap(tmp_path):
    p = tmp_path / "be.pcap"
    data = frame(7)
    p.write_bytes(struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
                  + struct.pack(">IIII", 10, 500_000_000, len(data), len(data)) + data)
    lt, frames = read_pcap(p)
    ((ts, got),) = list(frames)
    assert ts == 10.5 and got == data


def test_cut_short_capture_keeps_whole_frames(tmp_path):
    p = tmp_path / "cut.pcap"
    with PcapWriter(p) as w:
        w.write(frame(1), 1.0)
        w.write(frame(2), 2.0)
    p.write_bytes(p.read_bytes()[:-5])
    _, frames = read_pcap(p)
    assert len(list(frames)) == 1


@pytest.mark.parametrize("content,msg", [(b"", "too short"), (b"x" * 30, "not a pcap"),
                                         (b"\x0a\x0d\x0d\x0a" + b"\0" * 30, "pcapng")])
def test_bad_files(tmp_path, content, msg):
    p = tmp_path / "bad.pcap"
    p.write_bytes(content)
    with pytest.raises(PcapError, match=msg):
        lt, frames = read_pcap(p)
        list(frames)


def test_missing_file(tmp_path):
    with pytest.raises(PcapError, match="cannot open"):
        read_pcap(tmp_path / "nope.pcap")


def test_linux_cooked_capture():
    # tcpdump -i any writes LINUX_SLL: 16-byte header, protocol at offset 14.
    ip = bytes(IP(src="10.99.0.5", dst="10.99.0.1") / UDP(sport=68, dport=67) / Raw(b"x"))
    sll = struct.pack("!HHH8sH", 0, 1, 6, bytes.fromhex("525400000001") + b"\0\0", 0x0800)
    seg = parse_frame(sll + ip, LINKTYPE_LINUX_SLL)
    assert seg is not None and seg.src_mac == "52:54:00:00:00:01" and seg.dport == 67


# -- the recording is bounded (docs/SECURITY.md, "Bounded disk and memory") -------------------

def frames_of(p: Path) -> list[bytes]:
    return [d for _, d in read_pcap(p)[1]]


def test_the_recording_rotates_at_its_size_cap_and_keeps_the_newest_files(tmp_path):
    from pxetui.capture.pcap import HEADER_BYTES, RECORD_BYTES, RotatingPcapWriter, pcap_name

    p = tmp_path / "boot.pcap"
    cap = HEADER_BYTES + 3 * (RECORD_BYTES + len(frame(10)))  # three frames a file
    with RotatingPcapWriter(p, max_bytes=cap, files=3) as w:
        started = [w.write(frame(10 + i), 100.0 + i) for i in range(20)]
    assert started.count(True) == w.rotated == 6  # a new file every third frame
    kept = [pcap_name(p, n) for n in (2, 1, 0)]  # oldest first
    assert [x.name for x in sorted(tmp_path.iterdir())] == ["boot.1.pcap", "boot.2.pcap", "boot.pcap"]
    assert all(x.stat().st_size <= cap for x in kept)
    # What is kept is the newest frames, whole and in order: 20 frames, 3 a file, 3 files.
    assert [f for x in kept for f in frames_of(x)] == [frame(10 + i) for i in range(12, 20)]


def test_a_restart_starts_a_new_file_and_never_truncates_the_earlier_capture(tmp_path):
    from pxetui.capture.pcap import RotatingPcapWriter

    p = tmp_path / "boot.pcap"
    with RotatingPcapWriter(p, max_bytes=1 << 20, files=3) as w:
        for i in range(3):
            w.write(frame(i), 1.0 + i)
    first = p.read_bytes()
    with RotatingPcapWriter(p, max_bytes=1 << 20, files=3) as w:  # the service restarted
        w.write(frame(9), 9.0)
    assert (tmp_path / "boot.1.pcap").read_bytes() == first
    assert frames_of(p) == [frame(9)]


def test_restarts_past_the_count_remove_the_oldest_files_and_leftovers(tmp_path):
    from pxetui.capture.pcap import RotatingPcapWriter

    p = tmp_path / "boot.pcap"
    (tmp_path / "boot.4.pcap").write_bytes(b"left from capture.files = 5")
    (tmp_path / "other.pcap").write_bytes(b"not ours")
    for run in range(4):
        with RotatingPcapWriter(p, max_bytes=1 << 20, files=2) as w:
            w.write(frame(run), float(run))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["boot.1.pcap", "boot.pcap", "other.pcap"]
    assert frames_of(tmp_path / "boot.1.pcap") == [frame(2)] and frames_of(p) == [frame(3)]


def test_a_link_planted_where_the_recording_goes_is_not_written_through(tmp_path):
    from pxetui.capture.pcap import RotatingPcapWriter

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    p = tmp_path / "boot.pcap"
    p.symlink_to(victim)
    with RotatingPcapWriter(p, max_bytes=1 << 20, files=2) as w:
        w.write(frame(1), 1.0)
    assert victim.read_bytes() == b"precious" and not p.is_symlink() and frames_of(p) == [frame(1)]


def test_a_recording_that_cannot_be_written_stops_with_an_alert_and_the_capture_goes_on(tmp_path):
    import errno

    from pxetui.capture.service import Capture
    from pxetui.events import Alert, LimitHit

    events: list = []
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    cap = Capture("eth0", set(), [80], events.append, pcap=str(blocked / "x.pcap"))
    assert cap.writer is None
    (alert,) = [e for e in events if isinstance(e, Alert)]
    assert alert.key == "capture.pcap" and str(blocked / "x.pcap") in alert.message
    cap.close()

    events.clear()
    _, frames = read_pcap(DATA / "bios_pxelinux.pcap")
    frames = list(frames)
    cap = Capture("eth0", set(), [80], events.append, pcap=str(tmp_path / "r.pcap"), pcap_max_bytes=1200,
                  pcap_files=2)
    for ts, data in frames[:6]:  # DHCP frames of ~350 bytes: the 1200-byte cap rotates
        cap.on_frame(data, ts)
    hits = [e for e in events if isinstance(e, LimitHit)]
    assert cap.writer is not None and hits and len(hits) == cap.writer.rotated
    assert {h.limit for h in hits} == {"capture.max_bytes"} and "capture.files" in hits[0].message

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    cap.writer._new = full  # type: ignore[method-assign]
    cap.writer.max_bytes = 1  # the next recorded frame starts a new file: the disk is full
    for ts, data in frames[:6] + frames[6:]:  # the DHCP frames again (recorded), then TFTP
        cap.on_frame(data, ts + 100)
    alerts = [e for e in events if isinstance(e, Alert)]
    assert cap.writer is None and len(alerts) == 1 and "No space left" in alerts[0].message
    assert any(e.type == "TransferStarted" for e in events)  # decoding went on after the alert
    cap.close()
