"""BPF filter text for the capture, and its compilation to classic BPF through libpcap.

What is kept (docs/FIELD-NOTES.md, "Library evidence": a port-range filter would copy every TFTP DATA
packet; a test on the UDP payload keeps only what is needed to follow a transfer):
- DHCP/BOOTP/proxyDHCP on UDP 67, 68 and 4011, in full;
- TFTP read/write requests to port 69, every ERROR (opcode 5) and OACK (opcode 6), the ACKs
  whose block number has its low `ack_sample_bits` bits clear (a sample: one ACK in 64 by
  default, ACK 0 of an OACK included), and short DATA packets (< 512 bytes of data), which
  mark the end of a transfer (RFC 1350: a block shorter than blksize is the last one);
- HTTP request lines (GET/HEAD), response status lines, and connection ends (FIN/RST).
libpcap's `udp[]`/`tcp[]` accessors apply to IPv4 only: the IPv6 alternatives read the same
fields through `ip6[]` at fixed offsets (40-byte header, no extension headers: what DHCPv6,
TFTP and HTTP clients send, RFC 8200 section 4), and keep in full
- DHCPv6 on UDP 546 and 547 (RFC 8415 section 7.2), and
- ICMPv6 Router Advertisements (type 134, RFC 4861 section 4.2): whether a router tells the
  firmware to use DHCPv6 (the M flag) decides an IPv6 boot (docs/FIELD-NOTES.md).
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
DHCP6_PORTS = (546, 547)  # client, server/relay (RFC 8415 section 7.2)
ICMP6_ROUTER_ADVERT = 134
# IPv6 without extension headers: next header at byte 6, the transport header at byte 40.
_UDP6 = "(ip6 and ip6[6] = 17)"
_TCP6 = "(ip6 and ip6[6] = 6)"
_UDP6_HAS4 = "ip6[4:2] >= 12"  # payload length = UDP header + 4 bytes at least
_UDP6_OP = "ip6[48:2]"  # the TFTP opcode: the first 2 bytes after the UDP header
_TCP6_HDR = "((ip6[52] & 0xf0) >> 2)"
_TCP6_PAYLOAD = f"ip6[40 + {_TCP6_HDR}:4]"
_TCP6_HAS4 = f"(ip6[4:2] - {_TCP6_HDR}) >= 4"
_NOT_DHCP6 = " and ".join(f"not udp port {p}" for p in DHCP6_PORTS)


class FilterError(RuntimeError):
    """The filter could not be compiled (libpcap missing, or a bad expression)."""


def dhcp_filter() -> str:
    return " or ".join(f"udp port {p}" for p in DHCP_PORTS)


def dhcp6_filter() -> str:
    """DHCPv6 in full, and Router Advertisements."""
    ports = " or ".join(f"udp port {p}" for p in DHCP6_PORTS)
    return f"(ip6 and ({ports})) or (ip6 and ip6[6] = 58 and ip6[40] = {ICMP6_ROUTER_ADVERT})"


def tftp6_filter(ack_sample_bits: int = 6) -> str:
    """tftp_filter's markers for TFTP over IPv6."""
    if not 0 <= ack_sample_bits <= 15:
        raise ValueError(f"ack_sample_bits {ack_sample_bits} is outside 0..15")
    mask = (1 << ack_sample_bits) - 1
    op = _UDP6_OP
    ack = f"{op} = 4" if mask == 0 else f"({op} = 4 and (ip6[50:2] & {mask:#x}) = 0)"
    return (
        f"({_UDP6} and udp dst port {TFTP_PORT} and {_UDP6_HAS4} and ({op} = 1 or {op} = 2))"
        f" or ({_UDP6} and not udp port 53 and not udp port {TFTP_PORT} and {_NOT_DHCP6}"
        f" and {_UDP6_HAS4} and ({op} = 5 or {op} = 6 or {ack}"
        f" or ({op} = 3 and ip6[44:2] < 524)))"
    )


def http6_filter(ports: Iterable[int] = (80,)) -> str:
    """http_filter's markers for HTTP over IPv6."""
    parts = []
    for p in sorted(set(ports)):
        parts.append(
            f"({_TCP6} and tcp port {p} and (ip6[53] & 0x05) != 0)"
            f" or ({_TCP6} and tcp dst port {p} and {_TCP6_HAS4}"
            f" and ({_TCP6_PAYLOAD} = {_GET:#x} or {_TCP6_PAYLOAD} = {_HEAD:#x}))"
            f" or ({_TCP6} and tcp src port {p} and {_TCP6_HAS4} and {_TCP6_PAYLOAD} = {_HTTP:#x})"
        )
    return " or ".join(parts)


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


def log_filter(ports: Iterable[int]) -> str:
    """Datagrams to the syslog and netconsole ports, in full (docs/CLIENT-LOGS.md): what
    `pxetui watch` shows of installers' and kernels' log lines."""
    return " or ".join(f"udp dst port {p}" for p in sorted(set(ports)))


def boot_filter(http_ports: Iterable[int] = (80,), ack_sample_bits: int = 6, dhcp_only: bool = False,
                log_ports: Iterable[int] = ()) -> str:
    """The capture's filter: DHCP and DHCPv6 (with RAs) in full; with `dhcp_only` false also
    cheap TFTP/HTTP markers over IPv4 and IPv6, and log lines sent to `log_ports`."""
    if dhcp_only:
        return f"({dhcp_filter()}) or ({dhcp6_filter()})"
    parts = [dhcp_filter(), dhcp6_filter(), tftp_filter(ack_sample_bits), tftp6_filter(ack_sample_bits)]
    ports = list(http_ports)
    if ports:
        parts += [http_filter(ports), http6_filter(ports)]
    if log_ports:
        parts.append(log_filter(log_ports))
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
