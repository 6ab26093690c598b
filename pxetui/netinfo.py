"""What the host's interfaces and ports look like (psutil), for defaults and clear refusals."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class InterfaceInfo:
    name: str
    up: bool
    address: str | None  # first IPv4 address
    netmask: str | None
    mac: str | None
    speed_mbps: int
    mtu: int

    @property
    def network(self) -> ipaddress.IPv4Network | None:
        if not self.address or not self.netmask:
            return None
        return ipaddress.IPv4Interface(f"{self.address}/{self.netmask}").network

    def describe(self) -> str:
        addr = f"{self.address}/{self.network.prefixlen}" if self.network else "no IPv4"
        state = "up" if self.up else "down"
        return f"{self.name} ({addr}, {state})"


def interfaces() -> dict[str, InterfaceInfo]:
    """Every interface of this network namespace, loopback excluded."""
    addrs = psutil.net_if_addrs()
    stats = psutil.net_if_stats()
    out: dict[str, InterfaceInfo] = {}
    for name, alist in addrs.items():
        if name == "lo":
            continue
        v4 = next((a for a in alist if a.family == socket.AF_INET), None)
        mac = next((a.address for a in alist if a.family == psutil.AF_LINK), None)
        st = stats.get(name)
        out[name] = InterfaceInfo(
            name=name,
            up=bool(st and st.isup),
            address=v4.address if v4 else None,
            netmask=v4.netmask if v4 else None,
            mac=mac.lower() if mac else None,
            speed_mbps=st.speed if st else 0,
            mtu=st.mtu if st else 1500,
        )
    for name, st in stats.items():  # interfaces with no address at all
        if name != "lo" and name not in out:
            out[name] = InterfaceInfo(name, st.isup, None, None, None, st.speed, st.mtu)
    return out


def ipv6_addresses(name: str, path: str = "/proc/net/if_inet6") -> list[tuple[str, int]]:
    """(address, prefix length) of `name`'s global-scope IPv6 addresses (ULA included), in the
    kernel's order, without tentative (DAD not done) or deprecated ones: those cannot serve."""
    out: list[tuple[str, int]] = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) != 6 or parts[5] != name:
            continue
        hexaddr, plen, scope, flags = parts[0], int(parts[2], 16), int(parts[3], 16), int(parts[4], 16)
        if scope != 0 or flags & (0x40 | 0x20):  # IFA_F_TENTATIVE, IFA_F_DEPRECATED
            continue
        out.append((str(ipaddress.IPv6Address(bytes.fromhex(hexaddr))), plen))
    return out


def join_ipv6_group(sock: socket.socket, group: str, index: int) -> None:
    """Join IPv6 multicast `group` on the interface with `index` (RFC 3493 ipv6_mreq)."""
    mreq = ipaddress.IPv6Address(group).packed + struct.pack("@I", index)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)


def usable(ifaces: dict[str, InterfaceInfo]) -> list[InterfaceInfo]:
    return [i for i in ifaces.values() if i.up and i.address]


class InterfaceError(ValueError):
    pass


def check_interface(name: str, ifaces: dict[str, InterfaceInfo] | None = None) -> InterfaceInfo:
    """The named interface, or an error that lists the usable ones."""
    ifaces = interfaces() if ifaces is None else ifaces
    ok = ", ".join(i.describe() for i in usable(ifaces)) or "none"
    info = ifaces.get(name)
    if info is None:
        raise InterfaceError(f"interface {name}: does not exist; usable interfaces: {ok}")
    if not info.up:
        raise InterfaceError(f"interface {name}: is down; usable interfaces: {ok}")
    if not info.address:
        raise InterfaceError(f"interface {name}: has no IPv4 address; usable interfaces: {ok}")
    return info


@dataclass(frozen=True)
class PortHolder:
    port: int
    proto: str
    pid: int | None
    name: str

    def describe(self) -> str:
        who = f"{self.name} (PID {self.pid})" if self.pid else "another process"
        return f"{self.proto.upper()} port {self.port} is held by {who}"


def udp_port_bound(port: int, table: str = "/proc/net/udp") -> bool:
    """Whether any socket in this network namespace is bound to this UDP port (IPv4). Reads
    the kernel's table directly: readable by an unprivileged process, and cheap enough for
    once a second."""
    want = f":{port:04X}"
    try:
        with open(table) as f:
            next(f, None)  # the header
            return any(line.split(None, 2)[1].endswith(want) for line in f)
    except (OSError, IndexError):
        return False


def port_holders(ports: dict[int, str]) -> list[PortHolder]:
    """Who holds the given {port: 'udp'|'tcp'} in this namespace (psutil sees only our own)."""
    found: list[PortHolder] = []
    try:
        conns = psutil.net_connections(kind="inet4")
    except (psutil.AccessDenied, PermissionError):
        return found
    for c in conns:
        if not c.laddr:
            continue
        proto = "udp" if c.type == socket.SOCK_DGRAM else "tcp"
        want = ports.get(c.laddr.port)
        if want != proto:
            continue
        if proto == "tcp" and c.status != psutil.CONN_LISTEN:
            continue
        name = "?"
        if c.pid:
            try:
                name = psutil.Process(c.pid).name()
            except psutil.Error:
                pass
        found.append(PortHolder(c.laddr.port, proto, c.pid, name))
    return found
