"""DHCP protocol handling for full and proxy mode: bytes in, replies (bytes, address) out.

No sockets here (see service.py) and no boot policy (see policy.py): `DhcpServer.handle()` is
a pure function of the packet, the lease store and the clock, plus the events it emits.
RFC 2131 is the reference for full mode; the PXE 2.1 spec and REFERENCE.md for proxyDHCP.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable

from pxetui.config import Config
from pxetui.dhcp import options as o
from pxetui.dhcp.codec import (
    BOOTREPLY,
    BOOTREQUEST,
    BROADCAST_FLAG,
    ZERO_IP,
    DhcpParseError,
    Packet,
    build,
    encode_options,
    parse,
)
from pxetui.dhcp.leases import LeaseStore, Pool
from pxetui.dhcp.policy import BootChoice, BootPolicy, ClientFacts
from pxetui.events import (
    BootDecision,
    DhcpIgnored,
    DhcpPacket,
    Event,
    LeaseEnded,
    LeaseGranted,
    Log,
    PoolExhausted,
)

SERVER_PORT, CLIENT_PORT, PXE_PORT = 67, 68, 4011
BROADCAST = "255.255.255.255"
EXHAUSTED_EVERY = 10.0  # seconds between PoolExhausted events for one pool

Address = tuple[str, int]
Reply = tuple[bytes, Address]


class Request:
    """One parsed request and the facts every handler needs, decoded once."""

    __slots__ = ("pkt", "src", "port", "msg", "mac", "vendor_class", "user_class", "ipxe",
                 "arch", "facts", "boot_client", "requested", "hostname")

    def __init__(self, pkt: Packet, src: Address, port: int) -> None:
        self.pkt, self.src, self.port = pkt, src, port
        opts = pkt.options
        self.msg = o.msg_type(pkt)
        self.mac = pkt.mac
        self.vendor_class = o.text(pkt, o.VENDOR_CLASS) if o.VENDOR_CLASS in opts else None
        classes = o.user_classes(pkt) if o.USER_CLASS in opts else []
        self.user_class = ",".join(classes) if classes else None
        # REFERENCE.md: iPXE is user class `iPXE` (a bare string) or option 175 present.
        self.ipxe = "iPXE" in classes or o.IPXE_ENCAP in opts
        self.arch = o.arch(pkt) if o.CLIENT_ARCH in opts else None
        self.facts = ClientFacts(self.mac, self.arch, self.vendor_class, self.ipxe)
        self.boot_client = (self.vendor_class or "").startswith(("PXEClient", "HTTPClient"))
        self.requested = o.ip_opt(pkt, o.REQUESTED_IP)  # option 50
        self.hostname = o.text(pkt, o.HOSTNAME) if o.HOSTNAME in opts else None


class DhcpServer:
    def __init__(self, cfg: Config, store: LeaseStore, policy: BootPolicy, mode: str,
                 emit: Callable[[Event], None],
                 boot_once_used: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if mode not in ("full", "proxy"):
            raise ValueError(f"DHCP server mode must be full or proxy, not {mode!r}")
        self.cfg, self.store, self.policy, self.mode = cfg, store, policy, mode
        self.emit, self.clock = emit, clock
        self.boot_once_used = boot_once_used or (lambda mac: None)
        self.server_ip = cfg.server_ip
        self.sid = socket.inet_aton(cfg.server_ip)
        self.lease_time = cfg.dhcp.lease_time
        self._exhausted: dict[str, float] = {}
        self._by_giaddr: dict[bytes, Pool | None] = {}
        t, home = self.lease_time, cfg.network
        times = {o.LEASE_TIME: o.u32(t), o.RENEWAL_T1: o.u32(t // 2), o.REBINDING_T2: o.u32(t * 7 // 8)}
        # The options every reply of a pool carries, encoded once: (pool, with lease times).
        self._tails: dict[tuple[str | None, bool], bytes] = {(None, False): b"", (None, True): b""}
        for pool in store.pools:
            po: dict[int, bytes] = {o.SUBNET_MASK: pool.network.netmask.packed}
            router = pool.router or (cfg.dhcp.router if pool.network == home else None)
            if router:
                po[o.ROUTER] = o.ip(router)
            if cfg.dhcp.dns:
                po[o.DNS] = o.ips(cfg.dhcp.dns)
            if cfg.dhcp.domain:
                po[o.DOMAIN] = cfg.dhcp.domain.encode()
            po[o.BROADCAST_ADDR] = pool.network.broadcast_address.packed
            self._tails[(pool.name, False)] = encode_options(po)
            self._tails[(pool.name, True)] = encode_options({**times, **po})

    # -- entry point ----------------------------------------------------------------------
    def handle(self, data: bytes, src: Address, port: int = SERVER_PORT) -> list[Reply]:
        """Handle one datagram that arrived on `port` from `src`; never raises on bad input."""
        try:
            pkt = parse(data)
        except DhcpParseError as exc:
            self._ignore(None, f"malformed: {exc}", ip=src[0])
            return []
        if pkt.op != BOOTREQUEST:
            self._ignore(None, "not a BOOTREQUEST (a reply sent to the server port)", ip=src[0],
                         mac=pkt.mac)
            return []
        req = Request(pkt, src, port)
        self._packet_in(req)
        if req.msg is None:
            self._ignore(req, "plain BOOTP (no DHCP message type) is not served")
            return []
        if pkt.hlen != 6 or pkt.htype != 1:
            self._ignore(req, f"hardware type {pkt.htype}/length {pkt.hlen} is not Ethernet")
            return []
        why = self.policy.admitted(req.mac)
        if why:
            self._ignore(req, why)
            return []
        if port == PXE_PORT:
            return self._pxe_request(req)
        if self.mode == "proxy":
            return self._proxy(req)
        handler = self._full.get(req.msg)
        if handler is None:
            self._ignore(req, f"{o.msg_name(req.msg)} is not a client message")
            return []
        return handler(self, req)

    # -- full mode (RFC 2131 4.3) ---------------------------------------------------------
    def _pool(self, req: Request) -> Pool | None:
        gi = req.pkt.giaddr
        if gi == ZERO_IP:
            return self.store.pools[0]
        # RFC 2131 4.3.1 / RFC 3046: a relayed request is served from the pool of giaddr's subnet.
        try:
            return self._by_giaddr[gi]
        except KeyError:
            pass
        g = int.from_bytes(gi)
        pool = next((p for p in self.store.pools if p.on_subnet(g)), None)
        if len(self._by_giaddr) < 4096:
            self._by_giaddr[gi] = pool
        return pool

    def _discover(self, req: Request) -> list[Reply]:
        pool = self._pool(req)
        if pool is None:
            self._ignore(req, f"relay giaddr {req.pkt.ip('giaddr')} matches no pool")
            return []
        now = self.clock()
        requested = int.from_bytes(req.requested) if req.requested else None
        ip = self.store.offer(req.mac, pool, requested, now)
        if ip is None:
            fixed = self.store.reserved.get(req.mac)
            if fixed is not None:
                self._ignore(req, f"reserved address {ipaddress.IPv4Address(fixed)} is still leased "
                                  f"to {self.store.holder(fixed, now) or 'a declining host'}")
            else:
                self._exhaust(req, pool, now)
            return []
        if not pool.on_subnet(ip):
            self._ignore(req, f"reserved address {ipaddress.IPv4Address(ip)} is not on {pool.network}")
            return []
        choice = self._decide(req, now)
        return [self._reply(req, o.OFFER, ip.to_bytes(4), choice, pool, lease=True)]

    def _request(self, req: Request) -> list[Reply]:
        pkt, now = req.pkt, self.clock()
        sid = o.ip_opt(pkt, o.SERVER_ID)
        if sid is not None and sid != self.sid:
            self.store.drop_offer(req.mac)
            self._ignore(req, f"client chose server {socket.inet_ntoa(sid)}")
            return []
        # SELECTING / INIT-REBOOT carry option 50; RENEWING / REBINDING carry ciaddr.
        addr = req.requested if req.requested is not None else pkt.ciaddr
        if addr == ZERO_IP:
            self._ignore(req, "REQUEST names no address (no option 50, no ciaddr)")
            return []
        pool = self._pool(req)
        if pool is None:
            self._ignore(req, f"relay giaddr {pkt.ip('giaddr')} matches no pool")
            return []
        ip = int.from_bytes(addr)
        if not pool.on_subnet(ip):
            return self._nak(req, f"{socket.inet_ntoa(addr)} is not on subnet {pool.network}")
        lease = self.store.bind(req.mac, ip, self.lease_time, req.hostname, now)
        if lease is None:  # bind refuses exactly what store.usable_by refuses: say which case
            holder = self.store.holder(ip, now)
            why = ("quarantined (declined)" if holder == "" else "held by another client" if holder
                   else "not in the pool or reserved for another")
            return self._nak(req, f"{socket.inet_ntoa(addr)} is {why}")
        choice = self._decide(req, now)
        self.emit(LeaseGranted(mac=req.mac, ip=socket.inet_ntoa(addr), expires=lease.expires,
                               hostname=req.hostname, server_ip=self.server_ip))
        return [self._reply(req, o.ACK, addr, choice, pool, lease=True)]

    def _decline(self, req: Request) -> list[Reply]:
        sid = o.ip_opt(req.pkt, o.SERVER_ID)
        addr = req.requested
        if sid is not None and sid != self.sid:
            self._ignore(req, f"DECLINE is for server {socket.inet_ntoa(sid)}")
        elif addr is None:
            self._ignore(req, "DECLINE without option 50")
        elif self.store.decline(req.mac, int.from_bytes(addr), self.clock()):
            ip = socket.inet_ntoa(addr)
            self.emit(LeaseEnded(mac=req.mac, ip=ip, reason="declined"))
            self.emit(Log(level_name="warning", mac=req.mac, ip=ip,
                          message=f"{req.mac} declined {ip}: in use by another host; quarantined"))
        else:
            self._ignore(req, f"DECLINE of {socket.inet_ntoa(addr)}, not this client's address")
        return []

    def _release(self, req: Request) -> list[Reply]:
        ip = req.pkt.ip("ciaddr")
        if self.store.release(req.mac, int.from_bytes(req.pkt.ciaddr)):
            self.emit(LeaseEnded(mac=req.mac, ip=ip, reason="released"))
        else:
            self._ignore(req, f"RELEASE of {ip}, which this client does not hold")
        return []

    def _inform(self, req: Request) -> list[Reply]:
        # RFC 2131 3.4: configuration only, no address, no lease time; unicast to ciaddr.
        pool = self._pool(req)
        if pool is None:
            self._ignore(req, f"relay giaddr {req.pkt.ip('giaddr')} matches no pool")
            return []
        choice = self._decide(req, self.clock())
        return [self._reply(req, o.ACK, ZERO_IP, choice, pool, lease=False)]

    _full: dict[int, Callable[[DhcpServer, Request], list[Reply]]] = {
        o.DISCOVER: _discover, o.REQUEST: _request, o.DECLINE: _decline,
        o.RELEASE: _release, o.INFORM: _inform,
    }

    def _nak(self, req: Request, why: str) -> list[Reply]:
        pkt = req.pkt
        # RFC 2131 4.3.2: a NAK through a relay sets the broadcast bit (the client has no address).
        flags = pkt.flags | (BROADCAST_FLAG if pkt.giaddr != ZERO_IP else 0)
        nak = Packet(op=BOOTREPLY, xid=pkt.xid, flags=flags, giaddr=pkt.giaddr,
                     chaddr=pkt.chaddr, options={o.MSG_TYPE: b"\x06", o.SERVER_ID: self.sid,
                                                 o.MESSAGE: why.encode()[:250]})
        if o.RELAY_AGENT in pkt.options:
            nak.options[o.RELAY_AGENT] = pkt.options[o.RELAY_AGENT]
        # RFC 2131 4.1: a NAK is broadcast (or sent to the relay), never to the client's address.
        dest = (pkt.ip("giaddr"), SERVER_PORT) if pkt.giaddr != ZERO_IP else (BROADCAST, CLIENT_PORT)
        self._packet_out(req, nak, dest, None)
        self.emit(Log(level_name="info", mac=req.mac, message=f"NAK to {req.mac}: {why}"))
        return [(build(nak), dest)]

    # -- proxyDHCP (PXE 2.1; REFERENCE.md) ------------------------------------------------
    def _proxy(self, req: Request) -> list[Reply]:
        if req.msg != o.DISCOVER:
            self._ignore(req, f"proxy mode: {o.msg_name(req.msg)} is for the address server")
            return []
        if not req.boot_client:
            self._ignore(req, "not a PXE client (proxy mode)")
            return []
        choice = self._decide(req, self.clock())
        if choice.local or not choice.boot_file:
            self._ignore(req, f"proxy mode: no boot file ({choice.reason})")
            return []
        return [self._reply(req, o.OFFER, ZERO_IP, choice, None, lease=False)]

    def _pxe_request(self, req: Request) -> list[Reply]:
        """Port 4011: the client has its address and asks us for the boot file; answer to
        the sender's own source port (OVMF uses 4011, iPXE 68; REFERENCE.md)."""
        if req.msg not in (o.REQUEST, o.INFORM):
            self._ignore(req, f"port 4011: {o.msg_name(req.msg)} is not a boot server request")
            return []
        if not req.boot_client:
            self._ignore(req, "port 4011: not a PXE client")
            return []
        choice = self._decide(req, self.clock())
        if choice.local or not choice.boot_file:
            self._ignore(req, f"port 4011: no boot file ({choice.reason})")
            return []
        return [self._reply(req, o.ACK, ZERO_IP, choice, None, lease=False, dest=req.src)]

    # -- building replies -----------------------------------------------------------------
    def _decide(self, req: Request, now: float) -> BootChoice:
        choice, consumed = self.policy.decide(req.facts, now)
        if consumed:
            self.boot_once_used(req.mac)
        if choice.kind != "none":
            self.emit(BootDecision(mac=req.mac, arch=req.arch, firmware=choice.kind,
                                   boot_file=choice.boot_file or "", reason=choice.reason))
        return choice

    def _reply(self, req: Request, msg: int, yiaddr: bytes, choice: BootChoice, pool: Pool | None,
               lease: bool, dest: Address | None = None) -> Reply:
        pkt = req.pkt
        opts: dict[int, bytes] = {o.MSG_TYPE: bytes((msg,)), o.SERVER_ID: self.sid}
        tail = self._tails[(pool.name if pool is not None else None, lease)]
        out = Packet(op=BOOTREPLY, htype=pkt.htype, hlen=pkt.hlen, xid=pkt.xid, flags=pkt.flags,
                     ciaddr=pkt.ciaddr, yiaddr=yiaddr, giaddr=pkt.giaddr, chaddr=pkt.chaddr,
                     options=opts)
        boot_file = choice.boot_file if not choice.local else None
        if choice.vendor_class and req.boot_client:
            # REFERENCE.md: a proxy offer and the port-4011 answer must say PXEClient, and UEFI
            # HTTP boot drops a reply without HTTPClient. A full-mode PXE offer must not say
            # PXEClient: a PXE 2.1 ROM would take it as a boot-server offer without discovery
            # control and go looking for a boot server instead of using `file`.
            if self.mode == "proxy" or dest is not None or choice.vendor_class == "HTTPClient":
                opts[o.VENDOR_CLASS] = choice.vendor_class.encode()
            if o.CLIENT_UUID in pkt.options:
                opts[o.CLIENT_UUID] = pkt.options[o.CLIENT_UUID]  # RFC 4578 2.3: echo 97
            if self.mode == "proxy" or dest is not None:
                out.sname = self.server_ip.encode()
            self._pxe_vendor_options(req, opts, msg, dest is not None)
        if req.ipxe:
            # REFERENCE.md: 175.176 = 1 tells iPXE not to wait ~2 s for proxyDHCP offers.
            opts[o.IPXE_ENCAP] = bytes((o.IPXE_NO_PXEDHCP, 1, 1))
        if boot_file:
            # REFERENCE.md: shim reads only the BOOTP `file` field, some firmware only option 67.
            raw = boot_file.encode()
            if len(raw) <= 127:
                out.file = raw
            opts[o.BOOTFILE] = raw
            if choice.vendor_class == "HTTPClient":
                opts[o.BOOTFILE] = o.http_boot_url(raw)
            out.siaddr = self.sid  # next-server
            prl = pkt.options.get(o.PARAM_REQUEST, b"")
            if o.TFTP_SERVER in prl:
                opts[o.TFTP_SERVER] = self.server_ip.encode()
        if o.RELAY_AGENT in pkt.options:
            opts[o.RELAY_AGENT] = pkt.options[o.RELAY_AGENT]  # RFC 3046 2.2: echo, last
        if dest is None:
            if pkt.giaddr != ZERO_IP:
                dest = (pkt.ip("giaddr"), SERVER_PORT)
            elif pkt.ciaddr != ZERO_IP:
                dest = (pkt.ip("ciaddr"), CLIENT_PORT)  # RFC 2131 4.1: renew/INFORM unicast
            else:
                # RFC 2131 4.1 lets a server unicast to yiaddr, but that needs ARP injection;
                # broadcast works for every client in REFERENCE.md.
                dest = (BROADCAST, CLIENT_PORT)
        self._packet_out(req, out, dest, boot_file)
        return build(out, tail), dest

    def _pxe_vendor_options(self, req: Request, opts: dict[int, bytes], msg: int,
                            port4011: bool) -> None:
        """Option 43 for BIOS PXE ROMs (PXE 2.1 2.2.5); UEFI and iPXE do without it."""
        if req.arch not in (0, None) or req.ipxe or (req.vendor_class or "").startswith("HTTPClient"):
            return
        if port4011:
            item = o.pxe_boot_item(req.pkt)
            if item is not None:  # REFERENCE.md: echo 43/71 (boot item type and layer)
                opts[o.VENDOR_SPECIFIC] = o.encode_suboptions({o.PXE_BOOT_ITEM: item}, end=True)
            return
        if self.mode != "proxy" or msg != o.OFFER:
            return
        # Discovery control 3 (no broadcast/multicast discovery) with one boot server, us, and a
        # one-item menu with a zero timeout: the ROM picks the item at once and sends its
        # REQUEST with 43/71 to our port 4011.
        item_type = b"\x80\x00"
        label = b"pxetui"
        opts[o.VENDOR_SPECIFIC] = o.encode_suboptions({
            o.PXE_DISCOVERY_CONTROL: b"\x03",
            o.PXE_BOOT_SERVERS: item_type + b"\x01" + self.sid,
            o.PXE_BOOT_MENU: item_type + bytes((len(label),)) + label,
            o.PXE_MENU_PROMPT: b"\x00" + label,
        }, end=True)

    # -- events ---------------------------------------------------------------------------
    def _packet_in(self, req: Request) -> None:
        pkt = req.pkt
        self.emit(DhcpPacket(
            direction="in", msg_type=o.msg_name(req.msg), xid=pkt.xid, mac=req.mac,
            ip=req.src[0], arch=req.arch, vendor_class=req.vendor_class,
            user_class=req.user_class, uuid=o.client_uuid(pkt) if o.CLIENT_UUID in pkt.options else None,
            hostname=req.hostname, ipxe=req.ipxe, port=req.port,
            # in proxy mode this is how the client's address (from another server) is known
            requested_ip=socket.inet_ntoa(req.requested) if req.requested else None))

    def _packet_out(self, req: Request, out: Packet, dest: Address, boot_file: str | None) -> None:
        yi = out.yiaddr
        self.emit(DhcpPacket(
            direction="out", msg_type=o.msg_name(out.options[o.MSG_TYPE][0]), xid=out.xid,
            mac=req.mac, ip=dest[0], server_ip=self.server_ip,
            yiaddr=socket.inet_ntoa(yi) if yi != ZERO_IP else None,
            siaddr=socket.inet_ntoa(out.siaddr) if out.siaddr != ZERO_IP else None,
            arch=req.arch, vendor_class=(out.options.get(o.VENDOR_CLASS) or b"").decode() or None,
            boot_file=boot_file, next_server=self.server_ip if boot_file else None,
            ipxe=req.ipxe, port=req.port))  # our port for the exchange (67, or 4011)

    def _ignore(self, req: Request | None, reason: str, **kw: str | None) -> None:
        if req is not None:
            kw.setdefault("mac", req.mac)
            kw.setdefault("ip", req.src[0])
        self.emit(DhcpIgnored(reason=reason, msg_type=o.msg_name(req.msg) if req else "", **kw))

    def _exhaust(self, req: Request, pool: Pool, now: float) -> None:
        self._ignore(req, f"pool {pool.name} exhausted")
        if now - self._exhausted.get(pool.name, 0.0) >= EXHAUSTED_EVERY:
            self._exhausted[pool.name] = now
            self.emit(PoolExhausted(pool=pool.name, mac=req.mac))
            self.emit(Log(level_name="warning", message=(
                f"pool {pool.name} ({pool.size} addresses) is exhausted; {req.mac} got no offer")))
