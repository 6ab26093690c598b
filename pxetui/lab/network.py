"""The lab's isolated virtual LAN: a network namespace of its own with a bridge and a tap.

    host (untouched)          lab namespace  pxlab<hex>
                              ┌──────────────────────────────────────────┐
                              │ br0 10.77.0.1/24  <- pxetui serves here   │
                              │  ├─ tap0           <- the QEMU VM         │
                              │  └─ vp<hex> ─ veth ─ peer namespace(s)    │
                              └──────────────────────────────────────────┘

Every interface is created inside namespaces made here, with unique names, so two labs (or
pytest-xdist workers) never collide and the host's own interfaces are never touched. Peers
(another DHCP server for proxyDHCP, simulated clients) get namespaces of their own joined to
the bridge by a veth. `destroy()` ends the processes started here by PID and deletes the
namespaces, which removes every interface inside them.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pxetui.safety import GUARD_ENV

SERVER_IP = "10.77.0.1"
PREFIX = 24
SERVER_IP6 = "fd77::1"  # a ULA (RFC 4193) /64 for `pxetui lab --ipv6`
BRIDGE = "br0"
TAP = "tap0"


class LabError(RuntimeError):
    """The lab cannot be built or run; the message says what is missing."""


def _unique(prefix: str) -> str:
    # IFNAMSIZ is 16 bytes: prefix + 7 hex characters stays well inside it.
    return f"{prefix}{uuid.uuid4().hex[:7]}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        r = subprocess.run(["ip", *args], text=True, capture_output=True, timeout=30)
    except FileNotFoundError:
        raise LabError("`ip` not found: install iproute2") from None
    if check and r.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r


@dataclass
class Namespace:
    """One namespace made by the lab, and the processes started in it (tracked by PID)."""

    name: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def exec_args(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env[GUARD_ENV] = self.name  # a DHCP server started here refuses to run elsewhere
        env["PYTHONUNBUFFERED"] = "1"
        repo = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        if extra:
            env.update(extra)
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(self.exec_args(cmd), text=True, capture_output=True, timeout=timeout,
                           env=self.env())
        if check and r.returncode != 0:
            raise LabError(f"in {self.name}: {' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
        return r

    def popen(self, cmd: Sequence[str], *, stdout: object = subprocess.DEVNULL,
              stderr: object = subprocess.STDOUT, stdin: object = subprocess.DEVNULL,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process inside the namespace, in its own session so it is ended as a group."""
        p = subprocess.Popen(self.exec_args(cmd), stdout=stdout, stderr=stderr, stdin=stdin,  # type: ignore[arg-type]
                             env=self.env(env), start_new_session=True)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        if p.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                return
            try:
                p.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def destroy(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)
        # A daemon that forked away from its group is still ours: it lives in our namespace.
        r = _ip("netns", "pids", self.name, check=False)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _ip("netns", "del", self.name, check=False)


@dataclass
class LabNetwork:
    """Build with `create()`, always `destroy()` (also a context manager)."""

    server_ip: str = SERVER_IP
    prefix: int = PREFIX
    server_ip6: str = ""  # e.g. SERVER_IP6: the bridge gets it as a /64 beside its IPv4 address
    ns: Namespace = field(default_factory=lambda: Namespace(_unique("pxlab")))
    peers: list[Namespace] = field(default_factory=list)
    bridge: str = BRIDGE
    tap: str = TAP
    created: bool = False

    @property
    def name(self) -> str:
        return self.ns.name

    @property
    def subnet_base(self) -> str:
        return self.server_ip.rsplit(".", 1)[0]

    def dhcp_range(self) -> tuple[str, str]:
        """The addresses a DHCP server on the lab hands out: the subnet but its first ten and
        last five (the server, a site DHCP server at .2 and peers with fixed addresses sit
        there): .10-.250 of a /24; a wider prefix holds a boot storm of 1,000 clients."""
        net = ipaddress.IPv4Network(f"{self.server_ip}/{self.prefix}", strict=False)
        return str(net.network_address + 10), str(net.broadcast_address - 5)

    def create(self) -> LabNetwork:
        if os.geteuid() != 0:
            raise LabError("the lab needs root to create network namespaces (run with sudo)")
        _ip("netns", "add", self.ns.name)
        self.created = True
        try:
            ns = self.ns
            ns.run("ip", "link", "set", "lo", "up")
            ns.run("ip", "link", "add", self.bridge, "type", "bridge", "stp_state", "0",
                   "forward_delay", "0")
            ns.run("ip", "addr", "add", f"{self.server_ip}/{self.prefix}", "dev", self.bridge)
            ns.run("ip", "tuntap", "add", "dev", self.tap, "mode", "tap")
            ns.run("ip", "link", "set", self.tap, "master", self.bridge)
            ns.run("ip", "link", "set", self.tap, "up")
            # A bridge has carrier only while a port has: the tap has none until QEMU opens
            # it, and an interface without carrier is "down" to psutil, so pxetui would refuse
            # it. A veth port whose other end is up keeps the bridge up from the start (a
            # dummy would do, but not every kernel has the dummy driver).
            ns.run("ip", "link", "add", "keep0", "type", "veth", "peer", "name", "keep1")
            # keep1 sits on the bridge's segment in the same namespace: with Linux's default
            # arp_ignore=0 it answers ARP for the bridge's address too ("ARP flux"), a client
            # that learns its MAC sends to keep1, and sockets bound to the bridge
            # (SO_BINDTODEVICE, docs/SECURITY.md) never see those packets. It must stay silent.
            ns.run("ip", "link", "set", "keep1", "arp", "off")
            ns.run("ip", "link", "set", "keep0", "master", self.bridge)
            ns.run("ip", "link", "set", "keep1", "up")
            ns.run("ip", "link", "set", "keep0", "up")
            if self.server_ip6:
                # keep1 would send its own RS and MLD reports on the segment: IPv6 off there.
                ns.run("sysctl", "-q", "-w", "net.ipv6.conf.keep1.disable_ipv6=1")
                # nodad: usable at once, and pxetui's config resolve() skips tentative addresses
                ns.run("ip", "-6", "addr", "add", f"{self.server_ip6}/64", "dev", self.bridge, "nodad")
            ns.run("ip", "link", "set", self.bridge, "up")
            self._wait_address()
        except BaseException:
            self.destroy()
            raise
        return self

    def _wait_address(self, timeout: float = 5.0) -> None:
        """The bridge's address is usable once DAD is done (IPv4: immediately; be bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.ns.run("ip", "-4", "-o", "addr", "show", "dev", self.bridge, check=False)
            if self.server_ip in r.stdout:
                return
            time.sleep(0.05)
        raise LabError(f"{self.bridge} in {self.name} did not get {self.server_ip}")

    def ipv4_off(self, port: str) -> None:
        """No IPv4 (nor ARP) to or from bridge port `port`: its segment is IPv6-only while the
        server keeps its dual-stack configuration (issue 17's "IPv4 disabled on the client's
        segment"). Bridge-family nftables hooks: input (to our own addresses), forward (to
        peers), output (from us); a dropped frame never reaches the bridge device, so the
        engine's capture does not see it either."""
        rules = (f"table bridge pxlab_ipv6only {{\n"
                 f"  chain to_us {{ type filter hook input priority 0; policy accept;\n"
                 f"    iifname \"{port}\" ether type {{ ip, arp }} drop; }}\n"
                 f"  chain across {{ type filter hook forward priority 0; policy accept;\n"
                 f"    iifname \"{port}\" ether type {{ ip, arp }} drop;\n"
                 f"    oifname \"{port}\" ether type {{ ip, arp }} drop; }}\n"
                 f"  chain from_us {{ type filter hook output priority 0; policy accept;\n"
                 f"    oifname \"{port}\" ether type {{ ip, arp }} drop; }}\n}}\n")
        try:
            r = subprocess.run(self.ns.exec_args(["nft", "-f", "-"]), input=rules, text=True,
                               capture_output=True, timeout=30)
        except FileNotFoundError:
            raise LabError("`ip` not found: install iproute2") from None
        if r.returncode != 0:
            hint = " (install the Debian package nftables)" if "nft" in r.stderr and "No such file" in r.stderr else ""
            raise LabError(f"in {self.name}: nft: {r.stderr.strip() or r.returncode}{hint}")

    def add_peer(self, address: str | None = None, ifname: str = "eth0") -> Namespace:
        """A new namespace joined to the bridge by a veth (`ifname` inside it)."""
        peer = Namespace(_unique("pxlp"))
        _ip("netns", "add", peer.name)
        self.peers.append(peer)
        outer, inner = _unique("vp"), _unique("vq")
        # Both ends are created inside the lab namespace, then one end moves to the peer:
        # nothing is ever created in the host's namespace.
        self.ns.run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        self.ns.run("ip", "link", "set", inner, "netns", peer.name)
        self.ns.run("ip", "link", "set", outer, "master", self.bridge)
        self.ns.run("ip", "link", "set", outer, "up")
        peer.run("ip", "link", "set", "lo", "up")
        peer.run("ip", "link", "set", inner, "name", ifname)
        if address:
            peer.run("ip", "addr", "add", address, "dev", ifname)
        peer.run("ip", "link", "set", ifname, "up")
        return peer

    def destroy(self) -> None:
        for peer in reversed(self.peers):
            peer.destroy()
        self.peers.clear()
        if self.created:
            self.ns.destroy()
            self.created = False

    def __enter__(self) -> LabNetwork:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
