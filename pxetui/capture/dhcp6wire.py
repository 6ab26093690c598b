"""DHCPv6 and router advertisements seen on the wire, as pxetui events.

The DHCPv4 half lives in decode.py; this is the same job for RFC 8415 messages (parsed by the
project's codec, pxetui.dhcp6.codec) and RFC 4861 router advertisements, which decide whether
IPv6 boot firmware uses DHCPv6 addresses at all (docs/IPV6.md). `Decoder` owns one of these
and hands it the UDP 546/547 and ICMPv6 segments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pxetui import archtypes, diagnosis
from pxetui.capture.packets import Segment, parse_router_advert
from pxetui.dhcp6.codec import MSG_NAMES, Dhcp6Error, Dhcp6Message, duid_mac, parse
from pxetui.events import (
    Alert,
    DhcpPacket,
    Event,
    ForeignDhcpServer,
    LeaseGranted,
    Log,
    RouterAdvert,
)

SERVICE = "capture"
SERVER_PORT6 = 547  # RFC 8415 section 7.2
ALL_DHCP_AGENTS = "ff02::1:2"  # RFC 8415 section 7.1: where clients send
# Messages a client sends (RFC 8415 section 7.3); the rest come from servers or relays.
CLIENT_MESSAGES = frozenset({"SOLICIT", "REQUEST", "CONFIRM", "RENEW", "REBIND", "RELEASE", "DECLINE",
                             "INFORMATION-REQUEST"})
ANSWERS = frozenset({"ADVERTISE", "REPLY"})
# Seconds a boot client makes no progress, with no RA seen, before the alert: OVMF under TCG
# took 12.5 s from its Reply to its first TFTP request (tests/data/pcap/ovmf_pxe6_nora.pcap).
RA_WAIT = 30.0
UNANSWERED_AFTER = 10.0
FORGET_AFTER = 600.0
MAX_CLIENTS = 65536
MAX_MALFORMED_SOURCES = 256  # sources whose malformed DHCPv6 was logged (once each)
MAX_ASKING = 4096  # boot clients followed at once for the unanswered and RA alerts
MAX_SERVERS = 1024  # DHCPv6 servers remembered (each announced once while what it offers holds)


@dataclass
class _Asking:
    """A boot client's DHCPv6 exchange while it has not fetched anything yet."""

    first: float
    last: float
    count: int
    events: list[dict[str, Any]]  # its Solicits and Replies as diagnosis reads them (the last few)
    since: float = 0.0  # the first Solicit, or the last Reply: what the RA rule waits from


def _link_local(ip: str) -> bool:
    return ip.lower().startswith("fe80:")


class Dhcp6Wire:
    def __init__(self, our_ips: set[str], our_macs: set[str], learn: Callable[[str, str], None],
                 serves_ipv6: bool = True) -> None:
        self.our_ips = our_ips  # shared with the Decoder: the set it was given
        self.our_macs = our_macs
        self.learn = learn  # the Decoder's IP -> MAC map, for transfers from these addresses
        # Whether our engine answers DHCPv6 here; false while we serve IPv4 only (ipv6.enabled
        # off), when a boot client's Solicit is news at once.
        self.serves_ipv6 = serves_ipv6
        self.dhcp_served = False  # our DHCPv6 service listens (port 547 bound): its copies are left out
        self.served_copies = 0
        self.malformed = 0
        self._malformed_from: set[str] = set()
        self.duid_mac: dict[bytes, str] = {}  # client DUID -> MAC, from frames the client sent
        self.clients: set[str] = set()
        self.servers: dict[str, tuple[str | None, bool, str | None]] = {}
        self.routers: dict[str, RouterAdvert] = {}  # router address -> what it last said
        self.unanswered: dict[str, _Asking] = {}
        self.no_ra: dict[str, _Asking] = {}
        self.alerted: set[str] = set()  # alert keys raised and not cleared

    # -- DHCPv6 -------------------------------------------------------------------------------
    def dhcp(self, seg: Segment, ts: float) -> list[Event]:
        """Events for one DHCPv6 datagram. Malformed DHCPv6 is counted (`malformed`) and
        logged once per source: a fuzzing or broken client cannot flood the log."""
        try:
            msg = parse(seg.payload)
            while msg.is_relay:  # a relay's copy: what matters is the client's or server's message
                inner = msg.relay_message()
                if inner is None:
                    return []
                msg = inner
        except Dhcp6Error as exc:
            return self._malformed(seg, ts, str(exc))
        name = MSG_NAMES.get(msg.msg_type, f"type-{msg.msg_type}")
        if name in CLIENT_MESSAGES:
            return self._from_client(seg, ts, msg, name)
        if name in ANSWERS or name == "RECONFIGURE":
            return self._from_server(seg, ts, msg, name)
        return []

    def _malformed(self, seg: Segment, ts: float, why: str) -> list[Event]:
        self.malformed += 1
        if seg.src in self._malformed_from or len(self._malformed_from) >= MAX_MALFORMED_SOURCES:
            return []
        self._malformed_from.add(seg.src)
        return [Log(ts=ts, service=SERVICE, mac=seg.src_mac, ip=seg.src, level_name="warning",
                    message=f"malformed DHCPv6 from {seg.src} ({seg.src_mac or 'MAC unknown'}): {why}; "
                    "further ones from this address are counted, not logged")]

    def _client_mac(self, msg: Dhcp6Message, frame_mac: str | None) -> str | None:
        duid = msg.client_id
        if duid is not None and duid in self.duid_mac:
            return self.duid_mac[duid]
        return duid_mac(duid) or frame_mac

    def _packet(self, seg: Segment, ts: float, msg: Dhcp6Message, name: str, mac: str | None,
                reply: bool, ours: bool) -> DhcpPacket:
        # A client names addresses with lifetimes 0 (RFC 8415 18.2.2); a server's valid
        # lifetime 0 takes one back.
        addrs = [a.address for ia in msg.ia_na for a in ia.addresses if a.valid or not reply]
        arch = msg.client_arch
        uc = msg.user_class
        user_class = uc[0].decode("latin-1") if uc else None
        return DhcpPacket(
            ts=ts, service=SERVICE, mac=mac, direction="wire", msg_type=name, xid=msg.transaction_id,
            ip=addrs[0] if addrs else None, server_ip=seg.src if reply else None,
            server_mac=seg.src_mac if reply else None, yiaddr=addrs[0] if reply and addrs else None,
            arch=arch[0] if arch else None, vendor_class=msg.vendor_class_text or None,
            user_class=user_class, boot_file=msg.boot_file_url, ipxe=user_class == "iPXE",
            port=SERVER_PORT6, ours=ours,
            # The address a Request names (from the Advertise it chose), as option 50 in DHCPv4.
            requested_ip=addrs[0] if not reply and name == "REQUEST" and addrs else None,
        )

    def _from_client(self, seg: Segment, ts: float, msg: Dhcp6Message, name: str) -> list[Event]:
        mac = seg.src_mac or duid_mac(msg.client_id)
        if mac is not None and msg.client_id is not None and len(self.duid_mac) < MAX_CLIENTS:
            self.duid_mac[msg.client_id] = mac
        if mac is not None:
            if len(self.clients) < MAX_CLIENTS:
                self.clients.add(mac)
            self.learn(seg.src, mac)  # link-local or global: transfers from it are this client's
        pkt = self._packet(seg, ts, msg, name, mac, reply=False, ours=False)
        served = self.dhcp_served and (seg.dst == ALL_DHCP_AGENTS or seg.dst in self.our_ips)
        self.served_copies += served
        out: list[Event] = [] if served else [pkt]
        boot = pkt.arch is not None or archtypes.is_boot_client(pkt.vendor_class or "")
        if name == "SOLICIT" and boot and mac is not None:
            d = pkt.to_dict()
            for book in (self.unanswered, self.no_ra):
                a = book.get(mac)
                if a is None:
                    book[mac] = _Asking(ts, ts, 1, [d], since=ts)
                    while len(book) > MAX_ASKING:  # a flood of made-up clients: keep the newest
                        old = next(iter(book))
                        del book[old]
                        if book is self.unanswered:
                            out += self._cleared(old, ts, f"more than {MAX_ASKING} clients unanswered")
                else:
                    a.last, a.count = ts, a.count + 1
                    a.events = [*a.events[-7:], d]
            if self.our_ips and not self.serves_ipv6:
                out += self._not_served(mac, ts)
        return out

    def _cleared(self, mac: str, ts: float, why: str) -> list[Event]:
        """A client no longer followed: its unanswered alert, if raised, is cleared (every fold
        keeps an alert until told: one per forged DUID would stay for good, docs/SECURITY.md)."""
        key = f"unanswered6:{mac}"
        if key not in self.alerted:
            return []
        self.alerted.discard(key)
        return [Alert(ts=ts, service=SERVICE, mac=mac, key=key, severity="warning", cleared=True,
                      message=f"{mac} no longer followed ({why})")]

    def _not_served(self, mac: str, ts: float) -> list[Event]:
        """We serve this segment over IPv4 only and a boot client asks over IPv6: say so at once."""
        key = "ipv6-not-served"
        if key in self.alerted:
            return []
        self.alerted.add(key)
        a = self.unanswered[mac]
        return [Alert(ts=ts, service=SERVICE, mac=mac, key=key, severity="warning",
                      message=f"{mac}: " + diagnosis.ipv6_not_served(a.count, a.last - a.first))]

    def _from_server(self, seg: Segment, ts: float, msg: Dhcp6Message, name: str) -> list[Event]:
        # The client: its DUID learnt from its own frames, else the DUID's MAC, else the
        # frame's destination (Advertise and Reply go unicast to the client's link-local).
        mac = self._client_mac(msg, seg.dst_mac if seg.dst != ALL_DHCP_AGENTS else None)
        ours = seg.src in self.our_ips or (seg.src_mac is not None and seg.src_mac in self.our_macs)
        pkt = self._packet(seg, ts, msg, name, mac, reply=True, ours=ours)
        served = self.dhcp_served and ours
        self.served_copies += served
        out: list[Event] = [] if served else [pkt]
        if mac is not None:
            self.unanswered.pop(mac, None)
            self.alerted.discard(f"unanswered6:{mac}")
            waiting = self.no_ra.get(mac)
            if waiting is not None and name == "REPLY":
                waiting.since = ts
                waiting.events = [*waiting.events[-7:], pkt.to_dict()]
        # A server is described by what it offers: a Reply to a Release or an
        # Information-request (no address, no URL) says nothing new about it.
        if not ours and name in ANSWERS and (pkt.yiaddr or pkt.boot_file):
            seen = (seg.src_mac, pkt.yiaddr is not None, pkt.boot_file)
            if self.servers.get(seg.src) != seen:
                self.servers.pop(seg.src, None)
                self.servers[seg.src] = seen
                while len(self.servers) > MAX_SERVERS:
                    del self.servers[next(iter(self.servers))]
                out.append(ForeignDhcpServer(ts=ts, service=SERVICE, mac=mac, server_ip=seg.src,
                                             server_mac=seg.src_mac, offered=pkt.yiaddr,
                                             boot_file=pkt.boot_file))
                if self.our_ips:
                    what = "addresses" if pkt.yiaddr else "boot information only"
                    out.append(Alert(ts=ts, service=SERVICE, key=f"foreign-dhcp:{seg.src}",
                                     severity="warning",
                                     message=f"Another DHCPv6 server answers on this segment: {seg.src} "
                                     f"({seg.src_mac or 'MAC unknown'}) offers {what}, boot file URL "
                                     f"{pkt.boot_file or 'none'}"))
        if name == "REPLY" and mac is not None and not served:
            for ia in msg.ia_na:
                for a in ia.addresses:
                    self.learn(a.address, mac)
                    if not a.valid:  # valid lifetime 0: the server takes it back (RFC 8415 18.3.4)
                        continue
                    out.append(LeaseGranted(ts=ts, service=SERVICE, mac=mac, ip=a.address,
                                            expires=ts + a.valid if a.valid != 0xFFFFFFFF else 0.0,
                                            server_ip=seg.src, ours=ours, state="bound"))
        return out

    def fetching(self, mac: str) -> None:
        """The client started a download: whatever the routers say, it got this far."""
        self.no_ra.pop(mac, None)

    # -- router advertisements ------------------------------------------------------------
    def icmp6(self, seg: Segment, ts: float) -> list[Event]:
        ra = parse_router_advert(seg.payload)
        # RFC 4861 6.1.2: hosts discard an RA whose source is not link-local (dnsmasq sent one
        # from fd99::1 while its link-local address was tentative: tests/data/ovmf-pxe6.pcapng).
        if ra is None or not _link_local(seg.src):
            return []
        ev = RouterAdvert(ts=ts, service=SERVICE, ip=seg.src, router_mac=ra.source_mac or seg.src_mac,
                          managed=ra.managed, other=ra.other, lifetime=ra.lifetime, prefixes=list(ra.prefixes))
        old = self.routers.get(seg.src)
        self.routers[seg.src] = ev
        while len(self.routers) > 64:  # a flood of made-up routers: keep the newest
            del self.routers[next(iter(self.routers))]
        out: list[Event] = []
        if old is None or (old.managed, old.other, old.lifetime, old.prefixes, old.router_mac) != \
                (ev.managed, ev.other, ev.lifetime, ev.prefixes, ev.router_mac):
            out.append(ev)
        if "ipv6-no-ra" in self.alerted:
            self.alerted.discard("ipv6-no-ra")
            self.no_ra.clear()
            out.append(Alert(ts=ts, service=SERVICE, key="ipv6-no-ra", severity="warning", cleared=True,
                             message=f"router {seg.src} now advertises on this segment"))
        return out

    # -- once a second ----------------------------------------------------------------------
    def tick(self, now: float) -> list[Event]:
        out: list[Event] = []
        for mac, a in list(self.unanswered.items()):
            if now - a.last > FORGET_AFTER:
                del self.unanswered[mac]
                out += self._cleared(mac, now, f"no Solicit for {FORGET_AFTER:.0f} s")
                continue
            key = f"unanswered6:{mac}"
            if now - a.first >= UNANSWERED_AFTER and key not in self.alerted:
                f = diagnosis.dhcp6_unanswered([*a.events])
                if f is not None:
                    self.alerted.add(key)
                    out.append(Alert(ts=now, service=SERVICE, mac=mac, key=key, severity="warning",
                                     message=f"{mac}: {f.message}"))
        ras = [r.to_dict() for r in self.routers.values()]
        for mac, a in list(self.no_ra.items()):
            if now - a.last > FORGET_AFTER:
                del self.no_ra[mac]
                continue
            if now - a.since < RA_WAIT or "ipv6-no-ra" in self.alerted:
                continue
            f = diagnosis.router_advert_problem([*a.events, *ras])
            if f is not None:  # one alert for the segment: it is the router's doing, not the client's
                self.alerted.add("ipv6-no-ra")
                out.append(Alert(ts=now, service=SERVICE, mac=mac, key="ipv6-no-ra", severity="warning",
                                 message=f"{mac}: {f.message}"))
        return out
