"""BPF filter text for the capture, and its compilation to classic BPF through libpcap.

What is kept (docs/FIELD-NOTES.md, "Library evidence": a port-range filter would copy every TFTP DATA
packet; a test on the UDP payload keeps only what is needed to follow a transfer):
- DHCP/BOOTP/proxyDHCP on UDP 67, 68 and 4011, in full;
- TFTP read/write requests to port 69, every ERROR (opcode 5) and OACK (opcode 6), the ACKs
  whose block number has its low `ack_sample_bits` bits clear (a sample: one ACK in 64 by
  default, ACK 0 of an OACK included), and short DATA packets (< 512 bytes of data), which
  mark the end of a transfer (RFC 1350: a block shorter than blksize is the last one);
- HTTP request lines (GET/HEAD), response status lines, and connection ends (FIN/RST).
IPv4 only: libpcap's `udp[]`/`tcp[]` accessors apply to IPv4.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from pxetui.dhcp.ports import DHCP_PORTS

TFTP_PORT = 69
DLT_EN10MB = 1

# First four payload bytes, as big-endian words for BPF comparisons.
_GET = 0x47455420  # "GET "
_HEAD = 0x48454144  # "HEAD"
_HTTP = 0x48545450  # "HTTP"
_TCP_PAYLOAD = "tcp[((tcp[12:1] & 0xf0) >> 2):4]"
# A BPF load past the end of the packet rejects the packet outright, whatever the other
# alternatives say: every payload test is guarded by a length test that runs first.
_TCP_HAS4 = "(ip[2:2] - ((ip[0] & 0x0f) << 2) - ((tcp[12:1] & 0xf0) >> 2)) >= 4"
_UDP_HAS4 = "udp[4:2] >= 12"
_NOT_DHCP = " and ".join(f"not udp port {p}" for p in DHCP_PORTS)


class FilterError(RuntimeError):
    """The filter could not be compiled (libpcap missing, or a bad expression)."""


def dhcp_filter() -> str:
    return " or ".join(f"udp port {p}" for p in DHCP_PORTS)


def tftp_filter(ack_sample_bits: int = 6) -> str:
    if not 0 <= ack_sample_bits <= 15:
        raise ValueError(f"ack_sample_bits {ack_sample_bits} is outside 0..15")
    mask = (1 << ack_sample_bits) - 1
    ack = "udp[8:2] = 4" if mask == 0 else f"(udp[8:2] = 4 and (udp[10:2] & {mask:#x}) = 0)"
    # Opcode tests apply to any UDP port (the server answers from a fresh port, RFC 1350
    # section 4), so DNS, the DHCP ports and port 69 itself are excluded from them.
    return (
        f"(udp dst port {TFTP_PORT} and {_UDP_HAS4} and (udp[8:2] = 1 or udp[8:2] = 2))"
        f" or (udp and not udp port 53 and not udp port {TFTP_PORT}"
        f" and {_NOT_DHCP} and {_UDP_HAS4}"
        f" and (udp[8:2] = 5 or udp[8:2] = 6 or {ack}"
        f" or (udp[8:2] = 3 and udp[4:2] < 524)))"
    )


def http_filter(ports: Iterable[int] = (80,)) -> str:
    parts = []
    for p in sorted(set(ports)):
        parts.append(
            f"(tcp port {p} and (tcp[tcpflags] & (tcp-fin|tcp-rst)) != 0)"
            f" or (tcp dst port {p} and {_TCP_HAS4} and ({_TCP_PAYLOAD} = {_GET:#x} or {_TCP_PAYLOAD} = {_HEAD:#x}))"
            f" or (tcp src port {p} and {_TCP_HAS4} and {_TCP_PAYLOAD} = {_HTTP:#x})"
        )
    return " or ".join(parts)


def boot_filter(http_ports: Iterable[int] = (80,), ack_sample_bits: int = 6, dhcp_only: bool = False) -> str:
    """The capture's filter: DHCP in full; with `dhcp_only` false also cheap TFTP/HTTP markers."""
    if dhcp_only:
        return dhcp_filter()
    parts = [dhcp_filter(), tftp_filter(ack_sample_bits)]
    ports = list(http_ports)
    if ports:
        parts.append(http_filter(ports))
    return " or ".join(f"({p})" for p in parts)


@dataclass(frozen=True)
class CompiledFilter:
    """Classic BPF instructions (code, jt, jf, k) as libpcap compiled them."""

    text: str
    insns: tuple[tuple[int, int, int, int], ...]

    def sock_fprog(self) -> tuple[bytes, ctypes.Array[ctypes.c_char]]:
        """`struct sock_fprog` for SO_ATTACH_FILTER, and the buffer it points into (keep it alive)."""
        raw = b"".join(struct.pack("HBBI", *i) for i in self.insns)
        buf = ctypes.create_string_buffer(raw, len(raw))
        return struct.pack("HL", len(self.insns), ctypes.addressof(buf)), buf


def compile_filter(text: str, linktype: int = DLT_EN10MB) -> CompiledFilter:
    """Compile with libpcap (Debian libpcap0.8), needing no privilege (a "dead" handle)."""
    try:
        from scapy.arch.common import compile_filter as _compile
        from scapy.error import Scapy_Exception
    except ImportError as exc:  # scapy itself missing
        raise FilterError(f"cannot compile capture filter: {exc}") from exc
    try:
        prog = _compile(text, linktype=linktype)
    except ImportError as exc:
        raise FilterError(
            "cannot compile capture filter: libpcap is not installed (Debian package libpcap0.8)"
        ) from exc
    except Scapy_Exception as exc:
        raise FilterError(f"bad capture filter: {exc}") from exc
    insns = tuple(
        (prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
        for i in range(prog.bf_len)
    )
    return CompiledFilter(text=text, insns=insns)
