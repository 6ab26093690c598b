"""DHCP protocol handling for full and proxy mode: bytes in, replies (bytes, address) out.

No sockets here (see service.py) and no boot policy (see policy.py): `DhcpServer.handle()` is
a pure function of the packet, the lease store and the clock, plus the events it emits.
RFC 2131 is the reference for full mode; the PXE 2.1 spec and docs/FIELD-NOTES.md for proxyDHCP.

On a network that is not ours (docs/SECURITY.md, "DHCP on a network that is not ours"): every
MAC and the rate of new offers are limited before a packet costs more than its parse; we are
silent about addresses that are not ours; DECLINE and RELEASE count only from the holder; and
`saw_reply()` turns full mode into proxyDHCP when another server hands out addresses.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Callable

from pxetui import archtypes
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
from pxetui.dhcp.leases import Lease, LeaseStore, Pool
from pxetui.dhcp.limits import Bucket, KeyedBuckets
from pxetui.dhcp.policy import BootChoice, BootPolicy, ClientFacts
from pxetui.dhcp.ports import CLIENT_PORT, PXE_PORT, SERVER_PORT
from pxetui.events import (
    Alert,
    BootDecision,
    DhcpIgnored,
    DhcpModeDecided,
    DhcpPacket,
    Event,
    ForeignDhcpServer,
    LeaseEnded,
    LeaseGranted,
    LimitReporter,
    Log,
    PoolExhausted,
    admit_all,
    packet_tally,
)

BROADCAST = "255.255.255.255"
EXHAUSTED_EVERY = 10.0  # seconds between PoolExhausted events for one pool

Address = tuple[str, int]
Reply = tuple[bytes, Address]


DECISION_REPEAT = 30.0  # seconds: the same boot decision for a MAC is told again after this
DECISIONS_KEPT = 4096  # MACs whose last boot decision is remembered

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
        # docs/FIELD-NOTES.md: iPXE is user class `iPXE` (a bare string) or option 175 present.
        self.ipxe = "iPXE" in classes or o.IPXE_ENCAP in opts
        self.arch = o.arch(pkt) if o.CLIENT_ARCH in opts else None
        self.facts = ClientFacts(self.mac, self.arch, self.vendor_class, self.ipxe)
        self.boot_client = archtypes.is_boot_client(self.vendor_class)
        self.requested = o.ip_opt(pkt, o.REQUESTED_IP)  # option 50
        self.hostname = o.text(pkt, o.HOSTNAME) if o.HOSTNAME in opts else None


class DhcpServer:
    def __init__(self, cfg: Config, store: LeaseStore, policy: BootPolicy, mode: str,
                 emit: Callable[[Event], None],
                 boot_once_used: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 answer_url: Callable[[str, str], str | None] | None = None,
                 admit: Callable[[str, str | None], bool] | None = None) -> None:
        if mode not in ("full", "proxy"):
            raise ValueError(f"DHCP server mode must be full or proxy, not {mode!r}")
        self.cfg, self.store, self.policy, self.mode = cfg, store, policy, mode
        self.emit, self.clock = emit, clock
        # Whether to make a packet's event (ServiceContext.admit, events.packet_rate): in a
        # storm the packet is served and counted, its event never made. None: always.
        self.admit = admit or admit_all
        self.boot_once_used = boot_once_used or (lambda mac: None)
        # (mac, ip) -> Proxmox's answer URL or None: pxetui.dhcp.answer decides who gets one.
        self.answer_url = answer_url
        self.server_ip = cfg.server_ip
        self.sid = socket.inet_aton(cfg.server_ip)
        self.lease_time = cfg.dhcp.lease_time
        self._exhausted: dict[str, float] = {}
        lim = cfg.dhcp.limits
        self.mac_limit = KeyedBuckets(lim.mac_rate, lim.mac_burst, lim.mac_table)
        self.offer_limit = Bucket(lim.new_offers_per_second, lim.new_offers_burst, clock())
        self.limits = LimitReporter(emit)
        # The last decision told per MAC: the ACK repeats the OFFER's, and saying it once per
        # exchange is one event less of seven per DORA (bounded: the oldest go first).
        self._told: OrderedDict[str, tuple[tuple[str, str, str], float]] = OrderedDict()
        store.on_reclaim = self._reclaimed
        self.probe_mac: str | None = None  # our own probe for other servers (service.py): ignored
        # Switched from full to proxy: our running leases are still confirmed to their
        # holders until they expire, never extended (docs/SECURITY.md).
        self.keep_leases = False
        self.foreign: str | None = None  # the server that made us switch
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
        if req.mac == self.probe_mac:
            return []  # our own DISCOVER looking for other servers: not a client
        if not self._within_limits(req):
            return []
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

    # -- limits (docs/SECURITY.md) ----------------------------------------------------------
    def _within_limits(self, req: Request) -> bool:
        """Per-MAC rate, then the rate of offers to new clients; what is over a limit is dropped
        before it costs an event, and counted (one LimitHit per interval, not per packet)."""
        now, mac = self.clock(), req.mac
        if not self.mac_limit.take(mac, now):
            lim = self.cfg.dhcp.limits
            self.limits.hit("dhcp.limits.mac_rate", None,
                            f"{mac} sent more than {lim.mac_rate:g} messages/s (burst {lim.mac_burst}): "
                            "dropped", now)
            return False
        if req.port == PXE_PORT or not self._may_bind_new(req):
            return True
        if self.store.knows(mac):
            return True  # a client we know: not a new offer
        if self.offer_limit.take(now):
            return True
        self.limits.hit("dhcp.limits.new_offers_per_second", None,
                        f"more than {self.cfg.dhcp.limits.new_offers_per_second:g} new clients/s: "
                        f"{o.msg_name(req.msg)} dropped (latest {mac})", now)
        return False

    def _may_bind_new(self, req: Request) -> bool:
        """Could this message give a client we do not know an address? A DISCOVER (an offer;
        in proxy mode only a boot client's), and in full mode a REQUEST that selects us or
        renews (RENEWING/REBINDING: ciaddr, no option 50). One REQUEST per spoofed MAC would
        otherwise fill the pool without ever paying for an offer (docs/SECURITY.md). An
        INIT-REBOOT from a stranger is not counted: it is never answered (see _request)."""
        if req.msg == o.DISCOVER:
            return self.mode == "full" or req.boot_client
        if req.msg != o.REQUEST or self.mode != "full":
            return False
        sid = o.ip_opt(req.pkt, o.SERVER_ID)
        return sid == self.sid or (sid is None and req.requested is None)

    def _reclaimed(self, why: str, lease: Lease) -> None:
        if why == "cap":
            key, text = "dhcp.limits.max_offers", f"{self.store.max_offers} offers outstanding"
        else:
            pool = self.store.pool_for(lease.ip)
            key = "dhcp.range" if pool is None or pool is self.store.pools[0] else "dhcp.relay_pools"
            text = f"pool {pool.name if pool else '?'} full"
        self.limits.hit(key, None, f"{text}: took back the unanswered offer of {lease.address} "
                                   f"to {lease.mac}", self.clock())

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
        ip = int.from_bytes(addr)
        if sid is None and not self.store.ours(ip):
            # INIT-REBOOT, RENEWING or REBINDING about an address outside our pools that we
            # hold no lease on: another server's client. RFC 2131 4.3.2: no record, stay silent
            # (a NAK would tear down a lease we know nothing of; docs/SECURITY.md).
            self._ignore(req, f"{socket.inet_ntoa(addr)} is not ours (outside our pools, no lease "
                              "of ours): silent (RFC 2131 4.3.2)")
            return []
        if sid is None and req.requested is not None and not self.store.knows(req.mac):
            # INIT-REBOOT from a client with no lease, offer or reservation here. RFC 2131
            # 4.3.2: "no record of this client: MUST remain silent". Binding it would let one
            # REQUEST per spoofed MAC fill the pool past the new-offer limit (docs/SECURITY.md);
            # a real client falls back to DISCOVER. Our lease database persists, so a client
            # reusing its lease after our restart is still known.
            self._ignore(req, f"INIT-REBOOT for {socket.inet_ntoa(addr)} from a client we have no "
                              "record of (no lease, offer or reservation): silent (RFC 2131 4.3.2)")
            return []
        pool = self._pool(req)
        if pool is None:
            self._ignore(req, f"relay giaddr {pkt.ip('giaddr')} matches no pool")
            return []
        if not pool.on_subnet(ip):
            return self._nak(req, f"{socket.inet_ntoa(addr)} is not on subnet {pool.network}")
        lease = self.store.bind(req.mac, ip, self.lease_time, req.hostname, now, selecting=sid is not None)
        if lease is None:  # bind refuses exactly what store.usable_by refuses: say which case
            holder = self.store.holder(ip, now)
            why = ("quarantined (declined)" if holder == "" else "held by another client" if holder
                   else "not in the pool or reserved for another")
            return self._nak(req, f"{socket.inet_ntoa(addr)} is {why}")
        choice = self._decide(req, now)
        self.emit(LeaseGranted(mac=req.mac, ip=socket.inet_ntoa(addr), expires=lease.expires,
                               hostname=req.hostname, server_ip=self.server_ip))
        return [self._reply(req, o.ACK, addr, choice, pool, lease=True)]

    def _not_for_us(self, req: Request) -> str | None:
        """RFC 2131 table 5: DECLINE and RELEASE MUST carry the server identifier. Without
        ours, the message is for another server or forged: never a state change here."""
        sid = o.ip_opt(req.pkt, o.SERVER_ID)
        if sid is None:
            return "no server identifier (option 54)"
        if sid != self.sid:
            return f"it is for server {socket.inet_ntoa(sid)}"
        return None

    def _relay_refused(self, req: Request, addr: bytes) -> str | None:
        """A relayed DECLINE or RELEASE (giaddr set) counts only from the relay itself and
        only for an address on the subnet of the pool giaddr selects. giaddr is just a field:
        without these checks any host could name a made-up relay and end a victim's lease
        from anywhere (docs/SECURITY.md). RFC 2131 4.1: a relay puts its own address in
        giaddr; one that sends from another of its addresses is refused, and the lease then
        runs out as if never given back."""
        gi = req.pkt.ip("giaddr")
        if req.src[0] != gi:
            return f"relayed (giaddr {gi}) but sent from {req.src[0]}, not from the relay"
        pool = self._pool(req)
        if pool is None:
            return f"relay giaddr {gi} matches no pool"
        if not pool.on_subnet(int.from_bytes(addr)):
            return f"not on the relay's subnet {pool.network}"
        return None

    def _decline(self, req: Request) -> list[Reply]:
        addr = req.requested
        why = self._not_for_us(req)
        if why is None and addr is None:
            why = "no option 50"
        if why is None and req.pkt.giaddr != ZERO_IP:
            assert addr is not None
            why = self._relay_refused(req, addr)
        if why is None:
            assert addr is not None
            why = self.store.decline(req.mac, int.from_bytes(addr), self.clock())
        ip = socket.inet_ntoa(addr) if addr is not None else "?"
        if why is not None:
            self._ignore(req, f"DECLINE of {ip} refused: {why}")
            return []
        self.emit(LeaseEnded(mac=req.mac, ip=ip, reason="declined"))
        self.emit(Log(level_name="warning", mac=req.mac, ip=ip,
                      message=f"{req.mac} declined {ip}: in use by another host; quarantined"))
        return []

    def _release(self, req: Request) -> list[Reply]:
        pkt = req.pkt
        ip = pkt.ip("ciaddr")
        why = self._not_for_us(req)
        if why is None and pkt.ciaddr == ZERO_IP:
            why = "no ciaddr"
        if why is None and pkt.giaddr == ZERO_IP and req.src[0] != ip:
            # RFC 2131 4.4.6: the client unicasts RELEASE from the address it gives back
            why = f"sent from {req.src[0]}, not from the released address"
        if why is None and pkt.giaddr != ZERO_IP:
            why = self._relay_refused(req, pkt.ciaddr)
        if why is None:
            why = self.store.release(req.mac, int.from_bytes(pkt.ciaddr))
        if why is not None:
            self._ignore(req, f"RELEASE of {ip} refused: {why}")
            return []
        self.emit(LeaseEnded(mac=req.mac, ip=ip, reason="released"))
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

    # -- proxyDHCP (PXE 2.1; docs/FIELD-NOTES.md) ------------------------------------------
    def _proxy(self, req: Request) -> list[Reply]:
        if self.keep_leases and req.msg == o.REQUEST:
            return self._confirm(req)
        if self.keep_leases and req.msg in (o.RELEASE, o.DECLINE):
            return self._full[req.msg](self, req)  # the holder of one of our leases gives it up
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

    def _confirm(self, req: Request) -> list[Reply]:
        """Switched to proxy (another server appeared): a holder of one of our running leases
        still gets its address confirmed, for the time the lease has left and no longer, so it
        moves to the other server when the lease runs out (docs/SECURITY.md)."""
        pkt, now = req.pkt, self.clock()
        sid = o.ip_opt(pkt, o.SERVER_ID)
        if sid is not None and sid != self.sid:
            self._ignore(req, f"client chose server {socket.inet_ntoa(sid)}")
            return []
        addr = req.requested if req.requested is not None else pkt.ciaddr
        lease = self.store.lease_of(req.mac)
        if (lease is not None and addr == lease.ip.to_bytes(4) and lease.state == "bound"
                and lease.expires - now >= 1):
            pool = self.store.pool_for(lease.ip) or self._pool(req)
            choice = self._decide(req, now)
            return [self._reply(req, o.ACK, addr, choice, pool, lease=False,
                                lease_secs=int(lease.expires - now))]
        why = f"DHCP server {self.foreign or 'another server'} hands out addresses here now"
        if sid == self.sid:  # it answers an offer of ours: tell it to start over, at once
            return self._nak(req, f"we stopped handing out addresses: {why}")
        self._ignore(req, f"proxy mode: {why}; not a running lease of ours")
        return []

    def _pxe_request(self, req: Request) -> list[Reply]:
        """Port 4011: the client has its address and asks us for the boot file; answer to
        the sender's own source port (OVMF uses 4011, iPXE 68; docs/FIELD-NOTES.md)."""
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
            said = (choice.kind, choice.boot_file or "", choice.reason)
            last = self._told.get(req.mac)
            if last is None or last[0] != said or now - last[1] > DECISION_REPEAT:
                # A per-packet event too: in a storm of new clients (a decision each) it
                # shares events.packet_rate with DhcpPacket; refused, it counts as told.
                if self.admit("BootDecision", None):
                    self.emit(BootDecision(mac=req.mac, arch=req.arch, firmware=choice.kind,
                                           boot_file=said[1], reason=choice.reason))
                self._told[req.mac] = (said, now)
                self._told.move_to_end(req.mac)
                if len(self._told) > DECISIONS_KEPT:
                    self._told.popitem(last=False)
        return choice

    def _reply(self, req: Request, msg: int, yiaddr: bytes, choice: BootChoice, pool: Pool | None,
               lease: bool, dest: Address | None = None, lease_secs: int | None = None) -> Reply:
        pkt = req.pkt
        opts: dict[int, bytes] = {o.MSG_TYPE: bytes((msg,)), o.SERVER_ID: self.sid}
        if lease_secs is not None:  # a lease time of its own (what is left of a lease)
            opts[o.LEASE_TIME] = o.u32(lease_secs)
            opts[o.RENEWAL_T1] = o.u32(lease_secs // 2)
            opts[o.REBINDING_T2] = o.u32(lease_secs * 7 // 8)
        tail = self._tails[(pool.name if pool is not None else None, lease)]
        out = Packet(op=BOOTREPLY, htype=pkt.htype, hlen=pkt.hlen, xid=pkt.xid, flags=pkt.flags,
                     ciaddr=pkt.ciaddr, yiaddr=yiaddr, giaddr=pkt.giaddr, chaddr=pkt.chaddr,
                     options=opts)
        boot_file = choice.boot_file if not choice.local else None
        if choice.vendor_class and req.boot_client:
            # docs/FIELD-NOTES.md: a proxy offer and the port-4011 answer must say PXEClient, and UEFI
            # HTTP boot drops a reply without HTTPClient. A full-mode PXE offer must not say
            # PXEClient: a PXE 2.1 ROM would take it as a boot-server offer without discovery
            # control and go looking for a boot server instead of using `file`.
            if self.mode == "proxy" or dest is not None or choice.vendor_class == archtypes.HTTP_CLIENT:
                opts[o.VENDOR_CLASS] = choice.vendor_class.encode()
            if o.CLIENT_UUID in pkt.options:
                opts[o.CLIENT_UUID] = pkt.options[o.CLIENT_UUID]  # RFC 4578 2.3: echo 97
            if self.mode == "proxy" or dest is not None:
                out.sname = self.server_ip.encode()
            self._pxe_vendor_options(req, opts, msg, dest is not None)
        if req.ipxe:
            # docs/FIELD-NOTES.md: 175.176 = 1 tells iPXE not to wait ~2 s for proxyDHCP offers.
            opts[o.IPXE_ENCAP] = bytes((o.IPXE_NO_PXEDHCP, 1, 1))
        if boot_file:
            # docs/FIELD-NOTES.md: shim reads only the BOOTP `file` field, some firmware only option 67.
            raw = boot_file.encode()
            if len(raw) <= 127:
                out.file = raw
            opts[o.BOOTFILE] = raw
            if choice.vendor_class == archtypes.HTTP_CLIENT:
                opts[o.BOOTFILE] = o.http_boot_url(raw)
            out.siaddr = self.sid  # next-server
            prl = pkt.options.get(o.PARAM_REQUEST, b"")
            if o.TFTP_SERVER in prl:
                opts[o.TFTP_SERVER] = self.server_ip.encode()
        if self.answer_url is not None and self.mode == "full" and choice.kind == "none":
            self._answer_option(req, opts, yiaddr if yiaddr != ZERO_IP else pkt.ciaddr)
        if o.RELAY_AGENT in pkt.options:
            opts[o.RELAY_AGENT] = pkt.options[o.RELAY_AGENT]  # RFC 3046 2.2: echo, last
        if dest is None:
            if pkt.giaddr != ZERO_IP:
                dest = (pkt.ip("giaddr"), SERVER_PORT)
            elif pkt.ciaddr != ZERO_IP:
                dest = (pkt.ip("ciaddr"), CLIENT_PORT)  # RFC 2131 4.1: renew/INFORM unicast
            else:
                # RFC 2131 4.1 lets a server unicast to yiaddr, but that needs ARP injection;
                # broadcast works for every client in docs/FIELD-NOTES.md.
                dest = (BROADCAST, CLIENT_PORT)
        self._packet_out(req, out, dest, boot_file)
        return build(out, tail), dest

    def _answer_option(self, req: Request, opts: dict[int, bytes], addr: bytes) -> None:
        """Option 250 for Proxmox's installer (docs/FIELD-NOTES.md, "Proxmox's answer URL"): only
        in full mode, where the reply is ours (under proxyDHCP the address server's ACK is what
        the installer's DHCP client reads, and we cannot add to it), and only to a client that is
        not network booting, at the address this reply gives it (the token is bound to it)."""
        assert self.answer_url is not None
        if addr == ZERO_IP:
            return
        url = self.answer_url(req.mac, socket.inet_ntoa(addr))
        if url is None:
            return
        try:
            opts[o.PROXMOX_ANSWER_URL] = o.text_option(url)
        except ValueError as exc:
            self.emit(Log(level_name="error", mac=req.mac,
                          message=f"Proxmox answer URL for {req.mac} not sent: {exc} ({url[:80]})"))

    def _pxe_vendor_options(self, req: Request, opts: dict[int, bytes], msg: int,
                            port4011: bool) -> None:
        """Option 43 for BIOS PXE ROMs (PXE 2.1 2.2.5); UEFI and iPXE do without it."""
        if req.arch not in (0, None) or req.ipxe or archtypes.is_http_client(req.vendor_class):
            return
        if port4011:
            item = o.pxe_boot_item(req.pkt)
            if item is not None:  # docs/FIELD-NOTES.md: echo 43/71 (boot item type and layer)
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

    # -- another server on the segment (docs/SECURITY.md) ----------------------------------
    def saw_reply(self, data: bytes, src: Address) -> bool:
        """A datagram heard on the client port (68): another server's OFFER or ACK that hands
        out an address makes full mode step back to proxyDHCP. True when it did."""
        if self.mode != "full" or src[0] == self.server_ip:
            return False  # Linux loops our own broadcast replies back to us: not a server
        try:
            pkt = parse(data)
        except DhcpParseError:
            return False
        if pkt.op != BOOTREPLY or o.msg_type(pkt) not in (o.OFFER, o.ACK) or pkt.yiaddr == ZERO_IP:
            return False  # a proxyDHCP offer (no address) takes nothing from us
        sid = o.ip_opt(pkt, o.SERVER_ID)
        server = socket.inet_ntoa(sid) if sid is not None else src[0]
        if sid == self.sid:
            return False  # ours, relayed back to us
        self.switch_to_proxy(server, src[0], pkt.ip("yiaddr"), o.msg_name(o.msg_type(pkt)))
        return True

    def switch_to_proxy(self, server: str, sender: str, offered: str, what: str) -> None:
        """Stop handing out addresses: answer as proxyDHCP from now on, drop our outstanding
        offers, keep (and confirm) the leases already granted until they expire."""
        self.mode, self.keep_leases, self.foreign = "proxy", True, server
        self.policy.set_proxy(True)
        dropped = self.store.drop_offers()
        iface = self.cfg.interface
        reason = (f"DHCP server {server} appeared on {iface} ({what} of {offered}): stopped handing out "
                  f"addresses, proxyDHCP only; our leases are kept until they expire")
        self.emit(ForeignDhcpServer(server_ip=server, ip=sender, offered=offered))
        self.emit(DhcpModeDecided(mode="proxy", reason=reason, other_server=server))
        self.emit(Alert(key=f"foreign-dhcp:{server}", severity="error", message=reason))
        self.emit(Log(level_name="warning", message=f"{reason} ({dropped} outstanding offers dropped)"))

    # -- events ---------------------------------------------------------------------------
    def _packet_in(self, req: Request) -> None:
        name = o.msg_name(req.msg)
        if not self.admit("DhcpPacket", packet_tally("in", name)):
            return
        pkt = req.pkt
        self.emit(DhcpPacket(
            direction="in", msg_type=name, xid=pkt.xid, mac=req.mac,
            ip=req.src[0], arch=req.arch, vendor_class=req.vendor_class,
            user_class=req.user_class, uuid=o.client_uuid(pkt) if o.CLIENT_UUID in pkt.options else None,
            hostname=req.hostname, ipxe=req.ipxe, port=req.port,
            # in proxy mode this is how the client's address (from another server) is known
            requested_ip=socket.inet_ntoa(req.requested) if req.requested else None))

    def _packet_out(self, req: Request, out: Packet, dest: Address, boot_file: str | None) -> None:
        name = o.msg_name(out.options[o.MSG_TYPE][0])
        if not self.admit("DhcpPacket", packet_tally("out", name)):
            return
        yi = out.yiaddr
        self.emit(DhcpPacket(
            direction="out", msg_type=name, xid=out.xid,
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
