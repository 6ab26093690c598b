"""Simulated network-boot clients for a boot storm: many at once, from one namespace.

Each client does what a BIOS PXE client and its boot loader do, on the wire:
  1. DHCP DISCOVER/OFFER/REQUEST/ACK from its own MAC (raw AF_PACKET frames, since it has no
     address yet), with PXE's option 60/93 so the server treats it as a boot client;
  2. the boot file from the ACK over TFTP (blksize 1408 and tsize, like pxelinux; docs/FIELD-NOTES.md),
     from its leased address on an interface of its own with its own MAC (a macvlan, `CLIENT_IF`),
     so the server's neighbour table and its lease agree on who the address is, as for real
     machines: one MAC answering for every client's address would be one host using the others'
     leases, which the engine attributes to nobody (docs/SECURITY.md, "Callbacks and seeds");
  3. kernel and initrd over HTTP/1.1, checking the length; a 503 with Retry-After is asked
     again after that many seconds, as iPXE does (httpcore.c, http_rx_retry_after), at most
     HTTP_RETRIES times (a server at its connection limit answers so: http.max_connections).
A client that fails records why; the run ends when all are done or the deadline passes.

Run inside the client namespace: `python -m pxetui.lab.storm --clients 100 ...`; it prints one
JSON object with per-client timings and failures. Used by tests/e2e/test_storm.py and bench/storm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from pxetui.dhcp import codec
from pxetui.dhcp import options as o
from pxetui.dhcp.ports import CLIENT_PORT, SERVER_PORT
from pxetui.stages import rank

if TYPE_CHECKING:
    from pxetui.state import EngineState

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806


@dataclass
class ClientResult:
    mac: str
    ip: str = ""
    boot_file: str = ""
    t_dhcp: float = 0.0  # seconds from the storm's start to each milestone
    t_loader: float = 0.0
    t_kernel: float = 0.0
    t_initrd: float = 0.0
    bytes: int = 0
    dhcp_tries: int = 0
    tftp_retries: int = 0
    http_retries: int = 0  # 503s with Retry-After asked again
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.t_initrd > 0


# -- DHCP over a raw socket -----------------------------------------------------------------


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def dhcp_frame(mac: bytes, xid: int, msg: int, requested: bytes | None = None,
               server: bytes | None = None) -> bytes:
    opts = {
        o.MSG_TYPE: bytes((msg,)),
        o.VENDOR_CLASS: b"PXEClient:Arch:00000:UNDI:002001",  # as a BIOS PXE ROM
        o.CLIENT_ARCH: bytes((0, 0)),  # RFC 4578 client architecture: x86 BIOS
        o.PARAM_REQUEST: bytes((o.SUBNET_MASK, o.ROUTER, o.VENDOR_SPECIFIC, o.VENDOR_CLASS, o.BOOTFILE)),
    }
    if requested:
        opts[o.REQUESTED_IP] = requested
    if server:
        opts[o.SERVER_ID] = server
    payload = codec.build(codec.Packet(xid=xid, flags=codec.BROADCAST_FLAG, chaddr=mac, options=opts))
    udp_len = 8 + len(payload)
    src, dst = bytes(4), b"\xff\xff\xff\xff"
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", _csum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_IP) + ip + udp


def arp_request(mac: bytes, ip: str, target: str) -> bytes:
    """The ARP request (RFC 826) a client broadcasts for its server before its first TFTP packet."""
    return (b"\xff" * 6 + mac + struct.pack("!HHHBBH", ETH_P_ARP, 1, ETH_P_IP, 6, 4, 1) + mac
            + socket.inet_aton(ip) + b"\x00" * 6 + socket.inet_aton(target))


def parse_reply(frame: bytes) -> codec.Packet | None:
    """The DHCP message in a frame from port 67 to port 68 if it is a BOOTREPLY, else None."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[23] != 17:
        return None
    udp = 14 + ihl
    sport, dport = struct.unpack("!HH", frame[udp : udp + 4])
    if sport != SERVER_PORT or dport != CLIENT_PORT:
        return None
    try:
        pkt = codec.parse(frame[udp + 8 :])
    except codec.DhcpParseError:
        return None
    if pkt.op != codec.BOOTREPLY or not pkt.dhcp:
        return None
    return pkt


class DhcpMux:
    """One raw socket for every simulated client; replies are routed by xid."""

    def __init__(self, ifname: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        self.sock.bind((ifname, ETH_P_IP))
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.waiters: dict[int, asyncio.Queue[tuple[codec.Packet, str]]] = {}
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                frame = self.sock.recv(4096)
            except BlockingIOError:
                return
            pkt = parse_reply(frame)
            if pkt is None:
                continue
            q = self.waiters.get(pkt.xid)
            if q is not None:
                q.put_nowait((pkt, frame[6:12].hex(":")))  # and the MAC that sent it

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


async def dhcp(mux: DhcpMux, mac: bytes, res: ClientResult, deadline: float) -> tuple[str, str, str, str]:
    """(address, server, boot file, the MAC the ACK came from); retransmits like a PXE ROM
    (4, 8, 16 s)."""
    xid = random.getrandbits(32)
    q: asyncio.Queue[tuple[codec.Packet, str]] = asyncio.Queue()
    mux.waiters[xid] = q
    offered, server, next_server, boot = b"", b"", "", ""
    try:
        for state, msg in (("offer", o.DISCOVER), ("ack", o.REQUEST)):
            wait = 4.0
            while True:
                res.dhcp_tries += 1
                mux.send(dhcp_frame(mac, xid, msg, offered, server))  # the REQUEST names the offer
                try:
                    async with asyncio.timeout(min(wait, max(0.1, deadline - time.monotonic()))):
                        while True:
                            reply, sender = await q.get()
                            m = o.msg_type(reply)
                            if state == "offer" and m == o.OFFER:
                                offered, server = reply.yiaddr, reply.options.get(o.SERVER_ID, reply.siaddr)
                                boot = reply.options.get(o.BOOTFILE, reply.file).rstrip(b"\0").decode()
                                next_server = socket.inet_ntoa(reply.siaddr if reply.siaddr != codec.ZERO_IP
                                                               else server)
                                break
                            if state == "ack" and m == o.NAK:
                                raise RuntimeError("DHCP NAK")
                            if state == "ack" and m == o.ACK:
                                return reply.ip("yiaddr"), next_server, boot, sender
                    break
                except TimeoutError:
                    if time.monotonic() >= deadline or res.dhcp_tries > 8:
                        raise RuntimeError(f"no DHCP {state.upper()} after {res.dhcp_tries} tries") from None
                    wait = min(wait * 2, 16.0)
        raise RuntimeError("unreachable")
    finally:
        mux.waiters.pop(xid, None)


# -- TFTP (RFC 1350 + 2347/2348/2349 options) ------------------------------------------------


class _TftpProto(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.q: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.q.put_nowait((data, addr))


def client_socket(kind: int, local_ip: str, device: str | None) -> socket.socket:
    """A non-blocking socket bound to the client's address and, when it has one, its own
    interface: with one address per macvlan on one subnet, the route lookup alone would send
    from whichever interface comes first, with that interface's MAC."""
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.bind((local_ip, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def tftp_get(local_ip: str, server: str, path: str, res: ClientResult, blksize: int = 1408,
                   port: int = 69, device: str | None = None) -> int:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _TftpProto, sock=client_socket(socket.SOCK_DGRAM, local_ip, device))
    try:
        rrq = (b"\x00\x01" + path.encode() + b"\0octet\0blksize\0" + str(blksize).encode()
               + b"\0tsize\0" + b"0\0")
        last: bytes = rrq
        dest: tuple[str, int] = (server, port)
        transport.sendto(rrq, dest)
        expected, total, size, tries = 1, 0, None, 0
        blk = 512
        while True:
            try:
                async with asyncio.timeout(1.0):
                    data, addr = await proto.q.get()
            except TimeoutError:
                tries += 1
                res.tftp_retries += 1
                if tries > 8:
                    raise RuntimeError(f"TFTP {path}: timed out at block {expected}") from None
                transport.sendto(last, dest)
                continue
            op = struct.unpack("!H", data[:2])[0]
            dest = addr  # RFC 1350: the server answers from its transfer port
            if op == 5:
                why = data[4:].rstrip(b"\0").decode(errors="replace")
                raise RuntimeError(f"TFTP {path}: error {why}")
            if op == 6:  # OACK (RFC 2347)
                parts = data[2:].split(b"\0")
                opts = {parts[i].decode().lower(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2)}
                blk = int(opts.get("blksize", 512))
                size = int(opts["tsize"]) if "tsize" in opts else None
                last = b"\x00\x04\x00\x00"
                transport.sendto(last, dest)
                tries = 0
                continue
            if op != 3:
                continue
            block = struct.unpack("!H", data[2:4])[0]
            if block == expected & 0xFFFF:
                total += len(data) - 4
                last = b"\x00\x04" + data[2:4]
                transport.sendto(last, dest)
                tries = 0
                expected += 1
                if len(data) - 4 < blk:
                    if size is not None and total != size:
                        raise RuntimeError(f"TFTP {path}: got {total} bytes, tsize said {size}")
                    return total
            else:
                transport.sendto(b"\x00\x04" + struct.pack("!H", (expected - 1) & 0xFFFF), dest)
    finally:
        transport.close()


# -- HTTP -------------------------------------------------------------------------------------


HTTP_RETRIES = 30


class RetryLater(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


async def http_get(local_ip: str, server: str, port: int, path: str, res: ClientResult,
                   device: str | None = None) -> int:
    for _ in range(HTTP_RETRIES):
        try:
            return await _http_get_once(local_ip, server, port, path, device)
        except RetryLater as later:
            res.http_retries += 1
            await asyncio.sleep(later.seconds)
    raise RuntimeError(f"HTTP {path}: still 503 after {HTTP_RETRIES} tries")


async def _http_get_once(local_ip: str, server: str, port: int, path: str, device: str | None = None) -> int:
    sock = client_socket(socket.SOCK_STREAM, local_ip, device)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (server, port))
    except OSError:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"GET /{path} HTTP/1.1\r\nHost: {server}\r\nUser-Agent: pxetui-storm\r\n"
                     f"Connection: close\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        headers: dict[bytes, bytes] = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        retry = headers.get(b"retry-after", b"")
        if b" 503 " in status + b" " and retry:
            raise RetryLater(float(retry) if retry.isdigit() else 5.0)  # iPXE: 5 s if not a number
        if b" 200 " not in status + b" ":
            raise RuntimeError(f"HTTP {path}: {status.decode(errors='replace')}")
        length = int(headers[b"content-length"]) if b"content-length" in headers else None
        got = 0
        while chunk := await reader.read(1 << 18):
            got += len(chunk)
        if length is not None and got != length:
            raise RuntimeError(f"HTTP {path}: got {got} of {length} bytes")
        return got
    finally:
        writer.close()


# -- the storm ---------------------------------------------------------------------------------


@dataclass
class StormSpec:
    clients: int = 100
    ifname: str = "eth0"
    prefix: int = 24
    kernel: str = "lab/vmlinuz"
    initrd: str = "lab/initrd.gz"
    http_port: int = 80
    timeout: float = 120.0
    mac_base: int = 0x525400AA0000


@dataclass
class StormResult:
    clients: list[ClientResult] = field(default_factory=list)
    seconds: float = 0.0  # start to the last client done

    @property
    def failures(self) -> list[ClientResult]:
        return [c for c in self.clients if not c.ok]

    def to_json(self) -> str:
        return json.dumps({"seconds": self.seconds, "clients": [asdict(c) for c in self.clients]})


def client_macs(clients: int, mac_base: int = StormSpec.mac_base) -> list[str]:
    """The MACs of a storm's clients, as the engine's events name them (aa:bb:cc:dd:ee:ff)."""
    return [(mac_base + i).to_bytes(6, "big").hex(":") for i in range(clients)]


@dataclass
class TrackerView:
    """What the engine's tracker says of a storm's clients, from a UI's fold of its events
    (pxetui.state.EngineState): the stage each reached, and which it calls stuck or failed."""

    clients: int = 0  # storm clients the tracker reported
    missing: list[str] = field(default_factory=list)  # storm MACs it never reported
    stages: dict[str, int] = field(default_factory=dict)  # furthest stage reached -> clients
    stuck: list[str] = field(default_factory=list)  # ClientUpdate stage "stuck"
    failed: list[str] = field(default_factory=list)  # ClientUpdate stage "failed"
    diagnosed: dict[str, str] = field(default_factory=dict)  # MAC -> the tracker's diagnosis
    without_initrd: list[str] = field(default_factory=list)  # never reached the initrd stage
    # not every file of its boot (loader, kernel, initrd) reported finished
    unfinished: list[str] = field(default_factory=list)

    @property
    def all_booted(self) -> bool:
        """Every client reported, each at the initrd stage or past it with its loader, kernel
        and initrd finished, none in trouble: the storm client's whole boot (it stops after the
        initrd; there is no callback)."""
        return not (self.missing or self.stuck or self.failed or self.diagnosed or self.without_initrd
                    or self.unfinished)


def tracker_view(state: EngineState, macs: list[str]) -> TrackerView:
    view = TrackerView()
    stages: dict[str, int] = {}
    for mac in macs:
        c = state.clients.get(mac)
        if c is None:
            view.missing.append(mac)
            continue
        view.clients += 1
        # `stage` is the verdict the UI alerts on ("stuck", "failed"); `stages` is where the
        # boot actually got (pxetui/tracker.py, Client._update).
        reached = [s.get("stage") for s in c.stages]
        furthest = str(reached[-1]) if reached else (c.stage or "new")
        stages[furthest] = stages.get(furthest, 0) + 1
        if c.stage == "stuck":
            view.stuck.append(mac)
        elif c.stage == "failed":
            view.failed.append(mac)
        if c.diagnosis:
            view.diagnosed[mac] = c.diagnosis
        if "initrd" not in reached and "rootfs" not in reached and "booted" not in reached:
            view.without_initrd.append(mac)
        done = {row.get("kind") for row in c.files.values() if row.get("status") == "done"}
        if not {"bootloader", "kernel", "initrd"} <= done:
            view.unfinished.append(mac)
    view.stages = dict(sorted(stages.items(), key=lambda kv: rank(kv[0])))
    return view


CLIENT_IF = "st{}"  # client i's macvlan, with its MAC; gone with the namespace


def separate_clients() -> None:
    """Each interface answers ARP only for its own addresses, from its own MAC (arp_ignore=1,
    arp_announce=2; this namespace's settings): else every macvlan answers for every client.
    And the clients' interfaces get no IPv6 (a PXE ROM on IPv4 has none): each would send its
    own DAD, router solicitations and MLD reports, multicasts the storm's interface then copies
    to every other client's."""
    settings = [(f"ipv4/conf/{scope}/{key}", value) for key, value in (("arp_ignore", "1"), ("arp_announce", "2"))
                for scope in ("all", "default")] + [("ipv6/conf/default/disable_ipv6", "1")]
    for key, value in settings:
        with open(f"/proc/sys/net/{key}", "w") as fh:
            fh.write(value)


def _add_client(i: int, mac: str, ip: str, spec: StormSpec, server: tuple[str, str]) -> str:
    """Client i's own interface (a macvlan on the storm's, with the client's MAC) holding its
    leased address: the kernel answers ARP for it from that MAC and routes the replies to it.

    The server's address is a permanent neighbour entry there, from the MAC its ACK came from:
    the kernel's neighbour table is shared by every namespace and holds 1,024 entries that are
    not permanent (net.ipv4.neigh.default.gc_thresh3), and the server's side already needs one
    per client. A real client's ARP would be one entry per macvlan, and past 512 clients the
    table overflowed. The client still sends its ARP request (one_client), from which the
    server learns it. Every broadcast reaching the storm's interface is copied to each macvlan
    (the server's own ARP requests, DHCP replies): the queue is long enough for a whole storm's."""
    dev = CLIENT_IF.format(i)
    batch = (f"link add link {spec.ifname} name {dev} address {mac} type macvlan mode private"
             f" bcqueuelen 65536\n"
             f"link set {dev} up\n"
             f"address add {ip}/{spec.prefix} dev {dev}\n"
             f"neigh replace {server[0]} lladdr {server[1]} dev {dev} nud permanent\n")
    r = subprocess.run(["ip", "-batch", "-"], input=batch, capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"cannot give client {mac} its interface {dev}: {r.stderr.strip()[:200]}")
    return dev


async def one_client(i: int, spec: StormSpec, mux: DhcpMux, t0: float, deadline: float) -> ClientResult:
    mac = (spec.mac_base + i).to_bytes(6, "big")
    res = ClientResult(mac=mac.hex(":"))
    try:
        ip, server, boot, server_mac = await dhcp(mux, mac, res, deadline)
        res.ip, res.boot_file, res.t_dhcp = ip, boot, time.monotonic() - t0
        dev = await asyncio.to_thread(_add_client, i, res.mac, ip, spec, (server, server_mac))
        # As a PXE ROM does before its first TFTP packet: the server learns our MAC from the
        # request and answers us unicast, with no ARP broadcast of its own for our address.
        mux.send(arp_request(mac, ip, server))
        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
            res.bytes += await tftp_get(ip, server, boot, res, device=dev)
            res.t_loader = time.monotonic() - t0
            res.bytes += await http_get(ip, server, spec.http_port, spec.kernel, res, device=dev)
            res.t_kernel = time.monotonic() - t0
            res.bytes += await http_get(ip, server, spec.http_port, spec.initrd, res, device=dev)
            res.t_initrd = time.monotonic() - t0
    except TimeoutError:
        res.error = "storm deadline passed"
    except (OSError, RuntimeError, ValueError, asyncio.IncompleteReadError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    return res


async def storm(spec: StormSpec) -> StormResult:
    mux = DhcpMux(spec.ifname)
    t0 = time.monotonic()
    deadline = t0 + spec.timeout
    try:
        clients = await asyncio.gather(*(one_client(i, spec, mux, t0, deadline)
                                         for i in range(spec.clients)))
    finally:
        mux.close()
    done = [c.t_initrd for c in clients if c.ok]
    return StormResult(clients=list(clients), seconds=max(done) if done else 0.0)


# The clients stand for other machines: on this one they must not wait for the CPU behind the
# server they test. pxetui runs its services at nice -10/-5, each in a session (autogroup) of its
# own (pxetui/supervisor.py); a storm client below them read so slowly that HTTP cut it for
# http.min_rate and its connections held http.max_connections (a 1,000-client storm: 25 s ->
# 175-306 s). As bench/engine does for perfdhcp, the storm runs above the server.
CLIENT_NICE = -15


def stand_for_other_machines() -> None:
    """Our session's autogroup and this process at CLIENT_NICE (root; otherwise as we are).
    Only a session of our own: from a shell it would renice the shell's whole session."""
    if os.getsid(0) == os.getpid():
        try:
            with open("/proc/self/autogroup", "w") as fh:
                fh.write(str(CLIENT_NICE))
        except OSError:
            pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, CLIENT_NICE)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pxetui.lab.storm", description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--ifname", default="eth0")
    p.add_argument("--kernel", default="lab/vmlinuz")
    p.add_argument("--initrd", default="lab/initrd.gz")
    p.add_argument("--http-port", type=int, default=80)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--prefix", type=int, default=24, help="the lab subnet's prefix length")
    a = p.parse_args(argv)
    if not 1 <= a.clients <= 1000:
        p.error("--clients: use 1..1000")
    if not 8 <= a.prefix <= 30:
        p.error("--prefix: use 8..30")
    if os.environ.get("PXETUI_NETNS_GUARD") is None:
        # DHCP from made-up MACs belongs on a lab network only (safety.py's guard).
        print("storm: refusing to run outside a lab namespace (PXETUI_NETNS_GUARD unset)", file=sys.stderr)
        return 2
    from pxetui.safety import check_netns_guard

    check_netns_guard()
    separate_clients()
    stand_for_other_machines()
    # Each client holds a TFTP socket, then an HTTP connection, at once with all the others.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * a.clients + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    spec = StormSpec(clients=a.clients, ifname=a.ifname, prefix=a.prefix, kernel=a.kernel,
                     initrd=a.initrd, http_port=a.http_port, timeout=a.timeout)
    result = asyncio.run(storm(spec))
    print(result.to_json())
    return 0 if not result.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
