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
