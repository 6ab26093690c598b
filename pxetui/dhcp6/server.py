"""DHCPv6 protocol handling (RFC 8415 section 18.3; boot options RFC 5970): bytes in, replies
(bytes, address) out.

No sockets here (see service.py), no boot policy (pxetui.dhcp.policy decides, boot.py makes
the URL): `Dhcp6Server.handle()` is a function of the message, the lease store and the clock,
plus the events it emits. As for IPv4 (docs/SECURITY.md, "DHCP on a network that is not ours"):
every source and the rate of new clients are limited before a message costs more than its
parse; messages for another server are ignored (RFC 8415 section 16); Release and Decline
count only for the client's own binding; and we are silent about addresses that are not ours.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pxetui import archtypes
from pxetui.config import Config, parse_range6
from pxetui.dhcp.limits import Bucket, KeyedBuckets
from pxetui.dhcp.policy import BootChoice, BootPolicy, ClientFacts
from pxetui.dhcp6 import codec as c
from pxetui.dhcp6.boot import boot_url, vendor_class_echo
from pxetui.dhcp6.leases import Key, Lease6, LeaseStore6
from pxetui.events import (
    BootDecision,
    DhcpIgnored,
    DhcpPacket,
    Event,
    LeaseEnded,
    LeaseGranted,
    LimitReporter,
    Log,
    PoolExhausted,
    admit_all,
    packet_tally,
)

SERVER_PORT, CLIENT_PORT = c.SERVER_PORT, c.CLIENT_PORT
Address = tuple[Any, ...]  # (host, port, flowinfo, scope_id) as recvfrom gives it for AF_INET6
Reply = tuple[bytes, Address]
EXHAUSTED_EVERY = 10.0  # seconds between PoolExhausted events
DECISION_REPEAT = 30.0  # seconds: the same boot decision for a client is told again after this
DECISIONS_KEPT = 4096
# IA_NAs served per message. PXE/UEFI firmware and iPXE send one (OVMF a new IAID per exchange,
# one IA_NA each; docs/FIELD-NOTES.md); the rest get NoAddrsAvail inside the IA (RFC 8415
# 18.3.1, 18.3.2). Without a cap one 4 kB Solicit with Rapid Commit and 254 IA_NAs bound 254
# addresses and drew an 11 kB Reply to its (forgeable) source (docs/SECURITY.md).
MAX_IAS_PER_MESSAGE = 2
# IA_NAs a message may list at all: no client has more interfaces than this asking in one
# message, and each IA we must answer (with a status) makes the Reply larger than the request.
MAX_IAS_LISTED = 16
# Messages that can give a client we do not know an address: each costs a new-client token.
NEW_CLIENT_TYPES = frozenset((c.SOLICIT, c.REQUEST, c.RENEW, c.REBIND))


def eui64_mac(address: str) -> str | None:
    """The MAC inside a modified EUI-64 interface identifier (RFC 4291 appendix A: ff:fe in
    the middle, the universal/local bit flipped), as firmware link-local addresses carry."""
    try:
        raw = ipaddress.IPv6Address(address.split("%", 1)[0]).packed
    except ValueError:
        return None
    iid = raw[8:]
    if iid[3:5] != b"\xff\xfe":
        return None
    return bytes((iid[0] ^ 0x02, iid[1], iid[2], iid[5], iid[6], iid[7])).hex(":")


class Request6:
    """One parsed client message and the facts every handler needs, decoded once."""

    __slots__ = ("msg", "src", "duid", "duid_hex", "mac", "vendor_class", "user_class", "ipxe",
                 "arch", "facts", "boot_client", "ias", "uuid")

    def __init__(self, msg: c.Dhcp6Message, src: Address) -> None:
        self.msg, self.src = msg, src
        self.duid = msg.client_id
        self.duid_hex = self.duid.hex() if self.duid else ""
        self.mac = c.duid_mac(self.duid) or eui64_mac(src[0])
        self.vendor_class = msg.vendor_class_text or None
        classes = msg.user_class
        self.user_class = ",".join(x.decode("ascii", "replace") for x in classes) or None
        self.ipxe = b"iPXE" in classes  # docs/FIELD-NOTES.md: iPXE's user class
        arches = msg.client_arch
        self.arch = arches[0] if arches else None
        self.facts = ClientFacts(self.mac or "", self.arch, self.vendor_class, self.ipxe)
        # RFC 5970: a client that asks for option 59, or says its architecture or PXE/HTTP
        # vendor class, is network booting; an OS's DHCPv6 client is not.
        self.boot_client = (c.OPT_BOOTFILE_URL in msg.oro or self.arch is not None or self.ipxe
                            or archtypes.is_boot_client(self.vendor_class))
        self.ias = msg.ia_na
        # DUID-UUID (RFC 6355): firmware uses the SMBIOS UUID, the same as DHCPv4 option 97
        self.uuid = (str(uuid.UUID(bytes=self.duid[2:])) if self.duid and len(self.duid) == 18
                     and self.duid[:2] == b"\x00\x04" else None)

    def key(self, ia: c.IaNa) -> Key:
        return (self.duid_hex, ia.iaid)


class Dhcp6Server:
    def __init__(self, cfg: Config, store: LeaseStore6 | None, policy: BootPolicy, server_duid: bytes,
                 emit: Callable[[Event], None], boot_once_used: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time, mode: str | None = None,
                 admit: Callable[[str, str | None], bool] | None = None) -> None:
        mode = mode or cfg.ipv6.mode  # the service may step back to proxy (probe.py)
        # Whether to make a packet's event (events.packet_rate, as DhcpServer): None, always.
        self.admit = admit or admit_all
        if mode not in ("full", "proxy") or (mode == "full" and store is None):
            raise ValueError(f"DHCPv6 server mode {mode!r} needs full (with a lease store) or proxy")
        self.cfg, self.store, self.policy, self.mode = cfg, store, policy, mode
        self.emit, self.clock = emit, clock
        self.boot_once_used = boot_once_used or (lambda mac: None)
        self.duid = server_duid
        self.server_ip = cfg.server_ip6
        self.prefix = ipaddress.IPv6Network(cfg.prefix6) if cfg.prefix6 else None
        self.preferred = cfg.ipv6.lease_time
        self.valid = cfg.ipv6.lease_time * 2
        lim = cfg.dhcp.limits  # the IPv4 server's budgets, per source address here
        self.src_limit = KeyedBuckets(lim.mac_rate, lim.mac_burst, lim.mac_table)
        self.new_limit = Bucket(lim.new_offers_per_second, lim.new_offers_burst, clock())
        self.limits = LimitReporter(emit)
        self._exhausted = 0.0
        self._told: OrderedDict[str, tuple[tuple[str, str, str], float]] = OrderedDict()
        self.params = c.encode_items([p.encode() for p in cfg.ipv6.boot_file_params])
        if store is not None:
            store.on_evict = self._evicted

    # -- entry point ----------------------------------------------------------------------
    def handle(self, data: bytes, src: Address) -> list[Reply]:
        """Handle one datagram from `src`; never raises on bad input."""
        now = self.clock()
        if not self.src_limit.take(src[0], now):
            lim = self.cfg.dhcp.limits
            self.limits.hit("dhcp.limits.mac_rate", src[0],
                            f"{src[0]} sent more than {lim.mac_rate:g} DHCPv6 messages/s "
                            f"(burst {lim.mac_burst}): dropped", now)
            return []
        try:
            msg = c.parse(data)
        except c.Dhcp6Error as exc:
            self.emit(DhcpIgnored(reason=f"malformed DHCPv6: {exc}", ip=src[0], mac=eui64_mac(src[0])))
            return []
        if msg.is_relay:
            self.emit(DhcpIgnored(reason=f"{msg.name}: relayed DHCPv6 is not served (pxetui answers "
                                         "on its own link only)", msg_type=msg.name, ip=src[0]))
            return []
        if msg.msg_type not in c.CLIENT_TYPES:
            self.emit(DhcpIgnored(reason=f"{msg.name} is not a client message", msg_type=msg.name,
                                  ip=src[0], mac=eui64_mac(src[0])))
            return []
        req = Request6(msg, src)
        if msg.msg_type in NEW_CLIENT_TYPES and not self._new_client_ok(req, now):
            return []
        self._packet_in(req)
        why = self._invalid(req)
        if why is None:
            why = self.policy.admitted(req.mac or "")
        if why:
            self._ignore(req, why)
            return []
        return self._handlers[msg.msg_type](self, req, now)

    def _new_client_ok(self, req: Request6, now: float) -> bool:
        """The rate of Solicits, Requests, Renews and Rebinds from clients (DUIDs) with no binding
        or offer of ours (docs/SECURITY.md). A Request carrying our server DUID, or a Renew or
        Rebind naming free addresses of our pool, binds without any Solicit: it pays as one."""
        store = self.store
        if store is not None and store.knows(req.duid_hex):
            return True
        if self.new_limit.take(now):
            return True
        self.limits.hit("dhcp.limits.new_offers_per_second", None,
                        f"more than {self.cfg.dhcp.limits.new_offers_per_second:g} new DHCPv6 clients/s: "
                        f"{req.msg.name} dropped (latest {req.src[0]})", now)
        return False

    def _evicted(self, lease: Lease6) -> None:
        """The store took an IA from its client to make room for a newer IAID (leases.py,
        MAX_IAS_PER_CLIENT)."""
        now = self.clock()
        if lease.state in ("bound", "expired"):
            self.emit(LeaseEnded(mac=lease.mac, ip=lease.address, reason="replaced"))
        self.limits.hit("dhcp6.ias_per_client", None,
                        f"client {lease.duid} asked for more than {self.store.per_client if self.store else 0} "
                        f"IA_NAs: its least recently used one ({lease.address}) was taken back", now)

    def _invalid(self, req: Request6) -> str | None:
        """RFC 8415 section 16: what each message must and must not carry, and whose it is."""
        msg, t = req.msg, req.msg.msg_type
        sid = msg.server_id
        if t != c.INFORMATION_REQUEST and not req.duid:
            return "no client identifier (RFC 8415 section 16)"
        if len(req.ias) > MAX_IAS_LISTED:
            return (f"{len(req.ias)} IA_NAs in one message (no client sends more than "
                    f"{MAX_IAS_LISTED}): dropped, the Reply would be larger than the request")
        if t in (c.REQUEST, c.RENEW, c.RELEASE, c.DECLINE):
            if sid is None:
                return "no server identifier (RFC 8415 section 16)"
            if sid != self.duid:
                return f"for another server (server identifier {sid.hex()})"
        elif t in (c.SOLICIT, c.CONFIRM, c.REBIND) and sid is not None:
            return f"{msg.name} must not carry a server identifier (RFC 8415 section 16)"
        elif t == c.INFORMATION_REQUEST:
            if sid is not None and sid != self.duid:
                return f"for another server (server identifier {sid.hex()})"
            if req.ias:
                return "Information-request with an IA_NA (RFC 8415 section 16.12)"
        return None

    # -- handlers (RFC 8415 section 18.3) ---------------------------------------------------
    def _solicit(self, req: Request6, now: float) -> list[Reply]:
        """18.3.1: Advertise, or Reply at once for Rapid Commit (section 21.14)."""
        if self.mode == "proxy" and not req.boot_client:
            self._ignore(req, "not a network-boot client (ipv6.mode is proxy)")
            return []
        rapid = req.msg.rapid_commit and self.cfg.ipv6.rapid_commit and self.mode == "full"
        return self._answer(req, c.REPLY if rapid else c.ADVERTISE, now,
                            self._assign_some(req, now, bind=rapid), rapid=rapid)

    def _request(self, req: Request6, now: float) -> list[Reply]:
        """18.3.2: bind the addresses (the advertised ones, or others when they are gone)."""
        if self.mode == "proxy" and not req.boot_client:
            self._ignore(req, "not a network-boot client (ipv6.mode is proxy)")
            return []
        return self._answer(req, c.REPLY, now, self._assign_some(req, now, bind=True))

    def _assign_some(self, req: Request6, now: float, bind: bool) -> list[c.IaNa]:
        """The first MAX_IAS_PER_MESSAGE IA_NAs served, the rest NoAddrsAvail in the IA (RFC 8415
        18.3.2: an IA the server assigns nothing to is answered with that status). No status
        text for those: each would make the Reply to a forgeable source larger."""
        return [self._assign(req, ia, now, bind) if n < MAX_IAS_PER_MESSAGE else
                self._ia_status(ia, c.STATUS_NO_ADDRS_AVAIL, "") for n, ia in enumerate(req.ias)]

    def _renew(self, req: Request6, now: float) -> list[Reply]:
        """18.3.4: extend the client's bindings; NoBinding for an IA we do not know."""
        if self.mode == "proxy":
            self._ignore(req, "ipv6.mode is proxy: Renew is for the address server")
            return []
        ias = []
        for n, ia in enumerate(req.ias):
            out = self._extend(req, ia, now, take=n < MAX_IAS_PER_MESSAGE)
            ias.append(out if out is not None else self._ia_status(ia, c.STATUS_NO_BINDING, "no binding"))
        return self._answer(req, c.REPLY, now, ias)

    def _rebind(self, req: Request6, now: float) -> list[Reply]:
        """18.3.5: any server may extend a binding. Off-link addresses get lifetimes 0; an
        address on our link but outside our bindings and pool is another server's: silent."""
        if self.mode == "proxy":
            self._ignore(req, "ipv6.mode is proxy: Rebind is for the address server")
            return []
        ias = []
        for n, ia in enumerate(req.ias):
            out = self._extend(req, ia, now, take=n < MAX_IAS_PER_MESSAGE)
            if out is None:
                off = [a for a in ia.addresses if not self._on_link(a.address)]
                if not off:
                    continue
                out = c.IaNa(ia.iaid, 0, 0, [c.IaAddress(a.address, 0, 0) for a in off])
            ias.append(out)
        if not ias:
            self._ignore(req, "Rebind of addresses that are not ours: silent (RFC 8415 section 18.3.5)")
            return []
        return self._answer(req, c.REPLY, now, ias)

    def _release(self, req: Request6, now: float) -> list[Reply]:
        """18.3.7: only the client's own bindings; NoBinding for the rest; Success overall."""
        return self._give_back(req, now, "released")

    def _decline(self, req: Request6, now: float) -> list[Reply]:
        """18.3.8: the address is in use by another node: quarantined, if it was this client's."""
        return self._give_back(req, now, "declined")

    def _give_back(self, req: Request6, now: float, what: str) -> list[Reply]:
        if self.mode == "proxy" or self.store is None:
            self._ignore(req, f"ipv6.mode is proxy: nothing of ours to be {what}")
            return []
        ias = []
        for ia in req.ias:
            refused = None
            for a in ia.addresses:
                ip = int(ipaddress.IPv6Address(a.address))
                key = req.key(ia)
                why = (self.store.release(key, ip) if what == "released"
                       else self.store.decline(key, ip, now))
                if why is None:
                    self.emit(LeaseEnded(mac=req.mac, ip=a.address, reason=what))
                    if what == "declined":
                        self.emit(Log(level_name="warning", mac=req.mac, ip=a.address, message=(
                            f"{req.mac or req.duid_hex} declined {a.address}: in use by another "
                            "host; quarantined")))
                else:
                    refused = why
                    self._ignore(req, f"{req.msg.name} of {a.address} refused: {why}")
            if refused or not ia.addresses:
                ias.append(self._ia_status(ia, c.STATUS_NO_BINDING, refused or "no addresses"))
        return self._answer(req, c.REPLY, now, ias, status=c.Status(c.STATUS_SUCCESS, what))

    def _confirm(self, req: Request6, now: float) -> list[Reply]:
        """18.3.3: are the client's addresses on this link? No addresses: no reply."""
        if self.mode == "proxy":
            self._ignore(req, "ipv6.mode is proxy: Confirm is for the address server")
            return []
        addrs = [a.address for ia in req.ias for a in ia.addresses]
        if not addrs:
            self._ignore(req, "Confirm without addresses: no reply (RFC 8415 section 18.3.3)")
            return []
        if all(self._on_link(a) for a in addrs):
            status = c.Status(c.STATUS_SUCCESS, "all addresses on link")
        else:
            status = c.Status(c.STATUS_NOT_ON_LINK, f"not on {self.prefix}")
        return self._answer(req, c.REPLY, now, [], status=status, boot=False)

    def _information(self, req: Request6, now: float) -> list[Reply]:
        """18.3.6: configuration only (the boot options), no addresses."""
        if self.mode == "proxy" and not req.boot_client:
            self._ignore(req, "not a network-boot client (ipv6.mode is proxy)")
            return []
        return self._answer(req, c.REPLY, now, [])

    _handlers: dict[int, Callable[[Dhcp6Server, Request6, float], list[Reply]]] = {
        c.SOLICIT: _solicit, c.REQUEST: _request, c.RENEW: _renew, c.REBIND: _rebind,
        c.RELEASE: _release, c.DECLINE: _decline, c.CONFIRM: _confirm,
        c.INFORMATION_REQUEST: _information,
    }

    # -- addresses -------------------------------------------------------------------------
    def _on_link(self, address: str) -> bool:
        return self.prefix is not None and ipaddress.IPv6Address(address) in self.prefix

    def _times(self) -> tuple[int, int]:
        # RFC 8415 section 21.4: T1 0.5 and T2 0.8 times the shortest preferred lifetime
        return self.preferred // 2, self.preferred * 4 // 5

    def _ia_status(self, ia: c.IaNa, code: int, text: str) -> c.IaNa:
        return c.IaNa(ia.iaid, 0, 0, [], c.Status(code, text))

    def _assign(self, req: Request6, ia: c.IaNa, now: float, bind: bool) -> c.IaNa:
        """An IA_NA with an address for the client (offered or bound), or with NoAddrsAvail
        inside it (RFC 8415 section 18.3.1: the IA, not the message, carries the status)."""
        store = self.store
        if self.mode == "proxy" or store is None:
            return self._ia_status(ia, c.STATUS_NO_ADDRS_AVAIL, "boot information only (proxy)")
        key = req.key(ia)
        hint = None
        for a in ia.addresses:
            try:
                hint = int(ipaddress.IPv6Address(a.address))
                break
            except ValueError:
                continue
        ip = store.offer(key, req.mac, hint, now)
        if ip is None:
            self._exhaust(req, now)
            return self._ia_status(ia, c.STATUS_NO_ADDRS_AVAIL, "pool exhausted")
        if bind:
            lease = store.bind(key, req.mac, ip, self.valid, now)
            if lease is None:  # offer() chose it for this key: it is usable; never None here
                return self._ia_status(ia, c.STATUS_NO_ADDRS_AVAIL, "address taken")
            self.emit(LeaseGranted(mac=req.mac, ip=lease.address, expires=lease.expires,
                                   server_ip=self.server_ip))
        t1, t2 = self._times()
        return c.IaNa(ia.iaid, t1, t2, [c.IaAddress(str(ipaddress.IPv6Address(ip)), self.preferred,
                                                    self.valid)])

    def _extend(self, req: Request6, ia: c.IaNa, now: float, take: bool) -> c.IaNa | None:
        """The IA with its binding extended; addresses it lists that are not its binding get
        lifetimes 0 (RFC 8415 section 18.3.4). None: no binding of ours for this IA. `take`:
        an IA with no binding may take back a free address of ours it names (only the first
        MAX_IAS_PER_MESSAGE of a message: a binding extended creates nothing, this does)."""
        store = self.store
        if store is None:
            return None
        key = req.key(ia)
        lease = store.binding(key)
        ip: int | None = lease.ip if lease is not None else None
        if ip is None and take:
            # restarted with a lost database, or the binding was forgotten: an address of
            # our pool that nobody else holds is taken back for this client
            for a in ia.addresses:
                cand = int(ipaddress.IPv6Address(a.address))
                if store.usable_by(cand, key, now):
                    ip = cand
                    break
        if ip is None:
            return None
        bound = store.bind(key, req.mac, ip, self.valid, now)
        if bound is None:
            return None
        self.emit(LeaseGranted(mac=req.mac, ip=bound.address, expires=bound.expires,
                               server_ip=self.server_ip))
        t1, t2 = self._times()
        addrs = [c.IaAddress(bound.address, self.preferred, self.valid)]
        addrs += [c.IaAddress(a.address, 0, 0) for a in ia.addresses
                  if int(ipaddress.IPv6Address(a.address)) != ip]
        return c.IaNa(ia.iaid, t1, t2, addrs)

    # -- building replies -----------------------------------------------------------------
    def _decide(self, req: Request6, now: float) -> BootChoice | None:
        if not req.boot_client:
            return None
        choice, consumed = self.policy.decide(req.facts, now)
        if consumed and req.mac:
            self.boot_once_used(req.mac)
        if choice.kind == "none":
            return None
        url = boot_url(self.cfg, choice) or ""
        said = (choice.kind, url, choice.reason)
        who = req.mac or req.duid_hex
        last = self._told.get(who)
        if last is None or last[0] != said or now - last[1] > DECISION_REPEAT:
            # a per-packet event too (events.packet_rate), as in pxetui.dhcp.server
            if self.admit("BootDecision", None):
                self.emit(BootDecision(mac=req.mac, ip=req.src[0], arch=req.arch, firmware=choice.kind,
                                       boot_file=url, reason=choice.reason))
            self._told[who] = (said, now)
            self._told.move_to_end(who)
            if len(self._told) > DECISIONS_KEPT:
                self._told.popitem(last=False)
        return choice

    def _answer(self, req: Request6, msg_type: int, now: float, ias: list[c.IaNa],
                rapid: bool = False, status: c.Status | None = None, boot: bool = True) -> list[Reply]:
        out = c.Dhcp6Message(msg_type, req.msg.transaction_id)
        out.add(c.OPT_SERVERID, self.duid)
        if req.duid:
            out.add(c.OPT_CLIENTID, req.duid)
        for ia in ias:
            out.add(c.OPT_IA_NA, c.encode_ia_na(ia))
        if rapid:
            out.add(c.OPT_RAPID_COMMIT, b"")
        if status is not None:
            out.add(c.OPT_STATUS_CODE, c.encode_status(status))
        url = None
        vc = None
        choice = self._decide(req, now) if boot else None
        if choice is not None:
            url = boot_url(self.cfg, choice)
            if url:
                out.add(c.OPT_BOOTFILE_URL, url.encode())
                if self.params:
                    out.add(c.OPT_BOOTFILE_PARAM, self.params)
                vc = vendor_class_echo(choice)
                if vc is not None:
                    out.add(c.OPT_VENDOR_CLASS, c.encode_vendor_class(vc))
        if self.mode == "proxy" and not url:
            self._ignore(req, f"ipv6.mode is proxy: no boot file ({choice.reason if choice else 'none'})")
            return []
        dest = req.src  # RFC 8415 section 18.3.10: to the client's link-local source and port
        first = next((a.address for ia in ias for a in ia.addresses if a.valid), None)
        if self.admit("DhcpPacket", packet_tally("out", c.MSG_NAMES[msg_type])):
            self.emit(DhcpPacket(
                direction="out", msg_type=c.MSG_NAMES[msg_type], xid=out.transaction_id, mac=req.mac,
                ip=dest[0], server_ip=self.server_ip, yiaddr=first, arch=req.arch,
                vendor_class=vc.data[0].decode() if vc else None, boot_file=url, ipxe=req.ipxe,
                port=SERVER_PORT))
        return [(c.encode(out), dest)]

    # -- events ---------------------------------------------------------------------------
    def _packet_in(self, req: Request6) -> None:
        if not self.admit("DhcpPacket", packet_tally("in", req.msg.name)):
            return
        requested = next((a.address for ia in req.ias for a in ia.addresses), None)
        self.emit(DhcpPacket(
            direction="in", msg_type=req.msg.name, xid=req.msg.transaction_id, mac=req.mac,
            ip=req.src[0], arch=req.arch, vendor_class=req.vendor_class, user_class=req.user_class,
            uuid=req.uuid, ipxe=req.ipxe, port=SERVER_PORT, requested_ip=requested))

    def _ignore(self, req: Request6, reason: str) -> None:
        self.emit(DhcpIgnored(reason=reason, msg_type=req.msg.name, mac=req.mac, ip=req.src[0]))

    def _exhaust(self, req: Request6, now: float) -> None:
        self._ignore(req, f"IPv6 pool {self.cfg.ipv6.range} exhausted")
        if now - self._exhausted >= EXHAUSTED_EVERY:
            self._exhausted = now
            self.emit(PoolExhausted(pool=f"ipv6 {self.cfg.ipv6.range}", mac=req.mac))
            self.emit(Log(level_name="warning", message=(
                f"IPv6 pool {self.cfg.ipv6.range} is exhausted; {req.mac or req.duid_hex} got no address")))


def pool_bounds(cfg: Config) -> tuple[int, int]:
    start, end = parse_range6(cfg.ipv6.range)
    return int(start), int(end)
