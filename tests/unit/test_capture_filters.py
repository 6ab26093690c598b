"""The BPF filter keeps DHCP, TFTP requests/OACK/errors/sampled ACKs/last DATA and HTTP
request/status lines and connection ends, and drops TFTP DATA and other ACKs.

Frames are built with scapy and run through the compiled program with libpcap's own
pcap_offline_filter, so what is tested is what the kernel will run."""

from __future__ import annotations

import ctypes

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pxetui.capture import filters
from pxetui.capture.filters import FilterError, boot_filter, compile_filter

SRV, CLI = "10.99.0.1", "10.99.0.120"


class _Hdr(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long), ("caplen", ctypes.c_uint32),
                ("len", ctypes.c_uint32)]


def _matcher(text: str):
    from scapy.arch.common import compile_filter as raw_compile
    from scapy.libs.winpcapy import _lib

    prog = raw_compile(text, linktype=1)
    fn = _lib.pcap_offline_filter
    fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Hdr), ctypes.c_char_p]

    def match(pkt) -> bool:
        data = bytes(pkt)
        return fn(ctypes.byref(prog), ctypes.byref(_Hdr(0, 0, len(data), len(data))), data) != 0

    return match


def udp(sport: int, dport: int, payload: bytes, src: str = CLI, dst: str = SRV):
    return Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)


def tcp(sport: int, dport: int, payload: bytes = b"", flags: str = "PA", src: str = CLI, dst: str = SRV):
    return Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags) / Raw(payload)


@pytest.fixture(scope="module")
def match():
    return _matcher(boot_filter())


def test_dhcp_kept_in_full(match):
    for sport, dport in ((68, 67), (67, 68), (68, 4011), (4011, 68)):
        pkt = Ether() / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=sport, dport=dport) / \
            BOOTP(chaddr=b"\x52\x54\0\0\0\1") / DHCP(options=[("message-type", "discover"), "end"])
        assert match(pkt), (sport, dport)


def test_tftp_markers_kept(match):
    assert match(udp(2000, 69, b"\x00\x01pxelinux.0\x00octet\x00tsize\x000\x00"))  # RRQ
    assert match(udp(40000, 2000, b"\x00\x06tsize\x0042430\x00", src=SRV, dst=CLI))  # OACK
    assert match(udp(40000, 2000, b"\x00\x05\x00\x01not found\x00", src=SRV, dst=CLI))  # ERROR
    assert match(udp(2000, 40000, b"\x00\x04\x00\x00"))  # ACK 0 (of the OACK)
    assert match(udp(2000, 40000, b"\x00\x04\x00\x40"))  # ACK 64: sampled
    assert match(udp(40000, 2000, b"\x00\x03\x00\x07" + b"x" * 100, src=SRV, dst=CLI))  # last DATA


def test_tftp_bulk_dropped(match):
    assert not match(udp(40000, 2000, b"\x00\x03\x00\x07" + b"x" * 512, src=SRV, dst=CLI))
    assert not match(udp(40000, 2000, b"\x00\x03\x00\x07" + b"x" * 1408, src=SRV, dst=CLI))
    for block in (1, 2, 63, 65, 127, 0xFFFF):  # not a multiple of 64
        assert not match(udp(2000, 40000, b"\x00\x04" + block.to_bytes(2, "big")))
    assert not match(udp(5353, 53, b"\x00\x05\x01\x00"))  # DNS with an opcode-looking id


def test_http_markers(match):
    assert match(tcp(40000, 80, b"GET /boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert match(tcp(40000, 80, b"HEAD /x.iso HTTP/1.1\r\n\r\n"))
    assert match(tcp(80, 40000, b"HTTP/1.1 404 Not Found\r\n\r\n", src=SRV, dst=CLI))
    assert match(tcp(80, 40000, flags="FA", src=SRV, dst=CLI))
    assert match(tcp(40000, 80, flags="R"))
    assert not match(tcp(80, 40000, b"\x7fELF body bytes", src=SRV, dst=CLI))
    assert not match(tcp(40000, 80, flags="A"))
    assert not match(tcp(40000, 8080, b"GET / HTTP/1.1\r\n\r\n"))


def test_other_http_ports_and_sampling():
    m = _matcher(boot_filter(http_ports=(8080,), ack_sample_bits=2))
    assert m(tcp(40000, 8080, b"GET / HTTP/1.1\r\n\r\n"))
    assert m(udp(2000, 40000, b"\x00\x04\x00\x04"))
    assert not m(udp(2000, 40000, b"\x00\x04\x00\x05"))
    with pytest.raises(ValueError, match="ack_sample_bits"):
        filters.tftp_filter(16)


def test_dhcp_only_filter_drops_tftp():
    m = _matcher(boot_filter(dhcp_only=True))
    assert not m(udp(2000, 69, b"\x00\x01pxelinux.0\x00octet\x00"))
    assert m(udp(68, 67, b"\x01" * 300))


def test_compile_errors_are_clear(monkeypatch):
    with pytest.raises(FilterError, match="bad capture filter"):
        compile_filter("udp port")
    import scapy.arch.common as common

    def no_libpcap(*a, **k):
        raise ImportError("libpcap is not available. Cannot compile filter !")

    monkeypatch.setattr(common, "compile_filter", no_libpcap)
    with pytest.raises(FilterError, match="libpcap0.8"):
        compile_filter("udp")


def test_compiled_program_shape():
    prog = compile_filter(boot_filter())
    assert 20 < len(prog.insns) < 200
    fprog, buf = prog.sock_fprog()
    assert len(buf.raw) == 8 * len(prog.insns)
    assert int.from_bytes(fprog[:2], "little") == len(prog.insns)


def test_short_packets_are_not_rejected_by_payload_loads(match):
    # An out-of-bounds BPF load rejects the whole packet: the FIN without data, a tiny UDP
    # datagram to the DHCP port must still pass.
    assert match(tcp(40000, 80, flags="FA"))
    assert match(udp(68, 67, b"\x01"))
    assert not match(udp(2000, 40000, b"\x00"))
