"""What on this host keeps clients from booting off `iface`: the firewall (firewall.py), another
server on the PXE ports, a DHCP client managing the interface, strict reverse-path filtering, no
carrier, an MTU too small for TFTP blocks. Each finding carries the command that fixes it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psutil

from pxetui.dhcp.ports import PXE_PORT, SERVER_PORT
from pxetui.doctor import firewall
from pxetui.doctor.finding import Finding
from pxetui.netinfo import port_holders
from pxetui.tftp.options import HEADERS

SYS_NET = Path("/sys/class/net")
PROC_CONF = Path("/proc/sys/net/ipv4/conf")
RFC1350_BLOCK = 512  # the block every TFTP client can fall back to (RFC 1350)
COMMON_BLKSIZE = 1468  # what OVMF asks for on a 1500-byte LAN (docs/FIELD-NOTES.md, "Client fingerprints")
DHCP_CLIENTS = ("dhclient", "dhcpcd", "udhcpc", "dhcpcd5")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_netns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


def _same_netns(pid: int, mine: str | None) -> bool:
    """Processes of other network namespaces (a lab's, a container's) manage other interfaces."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == mine
    except OSError:
        return False


def listeners(http_port: int) -> list[Finding]:
    """Another DHCP, TFTP or HTTP server on the ports pxetui serves (pxetui's own are fine)."""
    out = []
    for h in port_holders({SERVER_PORT: "udp", PXE_PORT: "udp", firewall.TFTP_PORT: "udp", http_port: "tcp"}):
        if h.pid and _is_pxetui(h.pid):
            continue
        stop = f"systemctl stop {h.name} (or kill {h.pid})" if h.pid else f"ss -lunp 'sport = :{h.port}'"
        alt = " or serve with --http-port N" if h.proto == "tcp" else " or serve with --dhcp off" if h.port != 69 else ""
        out.append(Finding("listener", "error", h.describe(), stop + alt))
    return out


def _is_pxetui(pid: int) -> bool:
    try:
        return any("pxetui" in part for part in psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def dhcp_clients(iface: str) -> list[Finding]:
    """A DHCP client on the interface renews its own lease, may replace its address, and some
    (NetworkManager) bring it down when no server answers."""
    out = []
    mine = _own_netns()
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        name, args = p.info["name"] or "", p.info["cmdline"] or []
        if not _same_netns(p.info["pid"], mine):
            continue
        if name == "busybox" and len(args) > 1:  # `busybox udhcpc -i eth0`
            name, args = args[1], args[1:]
        if name in DHCP_CLIENTS:
            ifaces = [a for a in args[1:] if not a.startswith("-") and (SYS_NET / a).exists()]
            if iface in ifaces or not ifaces:
                out.append(Finding("dhcp-client", "error",
                                   f"{name} (PID {p.info['pid']}) runs a DHCP client on {iface}",
                                   f"give {iface} a static address (ip addr add ADDR/PREFIX dev {iface}) "
                                   f"and stop it: kill {p.info['pid']}"))
        elif name == "NetworkManager":
            state = _nm_state(iface)
            if state is not None and "unmanaged" not in state:
                out.append(Finding("dhcp-client", "warning",
                                   f"NetworkManager manages {iface} ({state})",
                                   f"nmcli device set {iface} managed no (then give it a static address)"))
        elif name == "systemd-networkd":
            network = _networkd_file(iface)
            if network:
                out.append(Finding("dhcp-client", "warning",
                                   f"systemd-networkd manages {iface} ({network})",
                                   f"set DHCP=no and Address= in {network}, then networkctl reload"))
    return out


def _nm_state(iface: str) -> str | None:
    if shutil.which("nmcli") is None:
        return "state unknown: nmcli is missing"
    try:
        r = subprocess.run(["nmcli", "-g", "GENERAL.STATE", "device", "show", iface],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def _networkd_file(iface: str) -> str | None:
    index = _read(SYS_NET / iface / "ifindex")
    state = _read(Path("/run/systemd/netif/links") / index) if index else None
    if not state or "ADMIN_STATE=configured" not in state:
        return None
    for line in state.splitlines():
        if line.startswith("NETWORK_FILE="):
            return line.partition("=")[2]
    return "a .network file"


def rp_filter(iface: str) -> list[Finding]:
    """Strict reverse-path filtering (1) drops requests whose source would not route back out of
    this interface: relayed clients, asymmetric routes. The kernel uses the larger of `all` and
    the interface's value, so setting the interface to loose (2) is enough."""
    vals = [_read(PROC_CONF / n / "rp_filter") for n in ("all", iface)]
    effective = max((int(v) for v in vals if v and v.isdigit()), default=0)
    if effective != 1:
        return []
    return [Finding("rp_filter", "warning",
                    f"reverse-path filtering is strict on {iface} (rp_filter=1): requests from relayed "
                    "clients or over asymmetric routes are dropped before pxetui sees them",
                    f"sysctl -w net.ipv4.conf.{iface}.rp_filter=2")]


def link(iface: str, mtu: int) -> list[Finding]:
    out = []
    if not (SYS_NET / iface).exists():
        return [Finding("carrier", "error", f"interface {iface} does not exist", "ip -br link (pick one)")]
    oper = _read(SYS_NET / iface / "operstate")
    flags = _read(SYS_NET / iface / "flags") or "0x0"
    if not int(flags, 16) & 0x1:  # IFF_UP
        out.append(Finding("carrier", "error", f"{iface} is down", f"ip link set {iface} up"))
    elif _read(SYS_NET / iface / "carrier") == "0" or oper == "down":
        out.append(Finding("carrier", "error", f"{iface} has no carrier: no cable, or the switch port is off",
                           f"plug in the cable or enable the switch port; ip link show {iface} then says LOWER_UP"))
    if mtu < RFC1350_BLOCK + HEADERS:
        out.append(Finding("mtu", "error",
                           f"{iface}'s MTU {mtu} is below {RFC1350_BLOCK + HEADERS}: even TFTP's 512-byte "
                           "blocks are fragmented, and PXE ROMs do not reassemble",
                           f"ip link set {iface} mtu 1500"))
    elif mtu < COMMON_BLKSIZE + HEADERS:
        out.append(Finding("mtu", "warning",
                           f"{iface}'s MTU {mtu} is below {COMMON_BLKSIZE + HEADERS}: TFTP blocks are cut to "
                           f"{mtu - HEADERS} bytes (clients ask {COMMON_BLKSIZE}), more round trips per file",
                           f"ip link set {iface} mtu 1500 (if the switch carries it)"))
    return out


def check(iface: str | None, http_port: int, ipv6: bool = False,
          router_ads: bool = False) -> tuple[list[Finding], list[str]]:
    """Every host finding, and which firewall rule sets were read (`ipv6`: its side too;
    `router_ads`: our router advertisements may answer router solicitations)."""
    found, read = firewall.check(iface, http_port, ipv6, router_ads)
    found += listeners(http_port)
    if iface:
        mtu = int(_read(SYS_NET / iface / "mtu") or 1500)
        found += link(iface, mtu) + rp_filter(iface) + dhcp_clients(iface)
    return found, read
