"""Turn captured frames into pxetui events: DHCP seen on the wire, other servers, leases,
and TFTP/HTTP transfers followed from the few packets the filter keeps (filters.py).

A `Decoder` is fed (frame bytes, timestamp) in capture order and returns events stamped with
the packet's time, so a live capture and a pcap replay give the same result. `tick(now)`
closes transfers that went quiet and reports PXE clients no server answered.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from pxetui.capture.dhcp6wire import Dhcp6Wire
from pxetui.capture.filters import DHCP6_PORTS, DHCP_PORTS
from pxetui.capture.packets import LINKTYPE_ETHERNET, Dhcp, Segment, parse_dhcp, parse_frame
from pxetui.clientlogs.decode import decode as decode_log
from pxetui.clientlogs.decode import source_for
from pxetui.config import LogsConfig
from pxetui.diagnosis import SIZE_PROBE
from pxetui.digits import ascii_int
from pxetui.events import (
    Alert,
    DhcpPacket,
    Event,
    ForeignDhcpServer,
    LeaseGranted,
    TransferClosed,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)

SERVICE = "capture"
TFTP_ERRORS = {0: "not defined", 1: "file not found", 2: "access violation", 3: "disk full",
               4: "illegal operation", 5: "unknown transfer id", 6: "file exists",
               7: "no such user", 8: "option negotiation refused"}
# OVMF asks for the size first and ends that request with ERROR 8 after the OACK (docs/FIELD-NOTES.md):
# a probe, not a failure: its reason starts with SIZE_PROBE, which the diagnosis rules and the
# tracker recognise.
UNANSWERED_AFTER = 10.0  # seconds a PXE client's DISCOVERs may go unanswered before an alert
TFTP_IDLE = 10.0  # a TFTP transfer with no packet for this long has stopped
HTTP_FORGET = 3600.0
FORGET_AFTER = 600.0
PROGRESS_EVERY = 0.25  # at most 4 progress events a second per transfer, as our TFTP server
BROADCAST = "255.255.255.255"
MAX_CLIENTS = 65536  # IP -> MAC entries kept (oldest dropped first)
# Every table below is keyed by what any host on the segment can forge (a reply's option 54, a
# source address and port, a chaddr): each has a cap, the oldest entry going first, so a flood
# costs bounded memory and O(1) per packet (docs/SECURITY.md, "Bounded disk and memory").
MAX_SERVERS = 1024  # DHCP servers remembered (each announced once while what it offers holds)
MAX_ASKING = 4096  # PXE clients followed at once for the unanswered alert, as dhcp6wire.py
MAX_TFTP = 8192  # TFTP transfers followed at once (a forged RRQ needs no answer to be one)
MAX_TFTP_PER_CLIENT = 16  # of one client address: a boot loader fetches one file at a time
MAX_HTTP = 4096  # HTTP connections followed (a forged "GET " segment needs no handshake)
MAX_PENDING = 8  # requests pipelined on one connection and not yet answered
FORGOTTEN = "not followed further: the capture's table was full or the connection went quiet"

_HTTP_REQ = re.compile(rb"^(GET|HEAD) (\S+) HTTP/1\.[01]\r?\n")
_HTTP_RESP = re.compile(rb"^HTTP/1\.[01] (\d{3})(?: ([^\r\n]*))?\r?\n")
# At most 18 digits: int() refuses over 4,300, and a forged response may carry any number.
_CLEN = re.compile(rb"\r\ncontent-length:\s*(\d{1,18})\b", re.I)
_CRANGE = re.compile(rb"\r\ncontent-range:\s*bytes\s+\d+-\d+/(\d{1,18})\b", re.I)
_HOST = re.compile(rb"\r\nhost:\s*([^\r\n]+)", re.I)


def _options(fields: list[bytes]) -> dict[str, str]:
    """TFTP option name/value fields (RFC 2347), names lower case; a name without a value is
    dropped. Latin-1: a capture takes any bytes a client sends."""
    return {fields[i].decode("latin-1").lower(): fields[i + 1].decode("latin-1")
            for i in range(0, len(fields) - 1, 2)}


def _error(p: bytes) -> tuple[int, str]:
    """A TFTP ERROR packet's code, and its message as ': message' (empty if it has none)."""
    msg = p[4:].split(b"\0", 1)[0].decode("latin-1")
    return struct.unpack_from("!H", p, 2)[0], f": {msg}" if msg else ""


@dataclass

class _Tftp:
    tid: str
    client: tuple[str, int]
    server_ip: str
    path: str
    started: float
    last: float
    mac: str | None
    ours: bool
    blksize: int = 512
    size: int | None = None
    server_port: int | None = None
    answered: bool = False
    requests: int = 1
    wraps: int = 0
    last_block: int = 0
    bytes_done: int = 0
    reported: float = 0.0  # when progress was last emitted


@dataclass
class _Http:
    tid: str
    path: str
    method: str
    started: float
    status: int | None = None
    reason: str = ""
    size: int | None = None
    resp_seq: int | None = None  # TCP sequence number of the first response byte
    header_len: int = 0


@dataclass
class _Conn:
    client: tuple[str, int]
    server: tuple[str, int]
    mac: str | None
    ours: bool
    last: float
    pending: list[_Http] = field(default_factory=list)  # requests in order (HTTP/1.1 pipelining)


class Decoder:
    def __init__(self, our_ips: Iterable[str] = (), http_ports: Iterable[int] = (80,),
                 linktype: int = LINKTYPE_ETHERNET, progress_for_ours: bool = True,
                 our_macs: Iterable[str] = (), serves_ipv6: bool = True,
                 log_ports: tuple[int, int] | None = None,
                 max_log_bytes: int = LogsConfig.max_line_bytes) -> None:
        self.our_ips = set(our_ips)
        # Our own servers report exact progress of their transfers; the wire's sampled
        # estimate of them only doubles the event stream.
        self.progress_for_ours = progress_for_ours
        self.http_ports = set(http_ports)
        self.linktype = linktype
        self.ip_mac: dict[str, str] = {}
        self.clients: set[str] = set()  # MACs seen asking for DHCP
        self.servers: dict[str, tuple[str | None, str | None, str | None]] = {}
        self.unanswered: dict[str, tuple[float, float, int, str]] = {}  # mac -> first, last, count, vendor class
        self.alerted: set[str] = set()
        self.tftp: dict[tuple[str, int], _Tftp] = {}  # oldest first
        # client IP -> its transfers' keys in `tftp`: a new request looks at its own client's
        # transfers, never the whole table (a forged RRQ flood made each request O(n)).
        self.tftp_of: dict[str, dict[tuple[str, int], None]] = {}
        self.sizes: dict[tuple[str, str, str], int] = {}  # (client, server, path) -> tsize
        self.http: dict[tuple[str, int, str, int], _Conn] = {}  # least recently active first
        self._ids = itertools.count(1)
        self.packets = 0
        self.undecoded = 0
        # Set while our DHCP service listens on this interface: it reports every request it
        # hears and every reply it sends, so the wire's copies of those are not emitted (they
        # doubled the engine's events in a storm, and a flood's cost with them).
        self.dhcp_served = False
        self.served_copies = 0
        # DHCPv6 and router advertisements (dhcp6wire.py): our DHCPv6 answers come from the
        # interface's link-local address, known here by our MAC.
        self.v6 = Dhcp6Wire(self.our_ips, {m.lower() for m in our_macs}, self._learn, serves_ipv6)
        # (syslog port, netconsole port) whose datagrams are read as client log lines
        # (docs/CLIENT-LOGS.md), for analyze and watch; None where the logs service reads them.
        self.log_ports = log_ports
        self.max_log_bytes = max_log_bytes

    # -- entry points -----------------------------------------------------------------
    def feed(self, data: bytes, ts: float, linktype: int | None = None) -> list[Event]:
        self.packets += 1
        seg = parse_frame(data, self.linktype if linktype is None else linktype)
        if seg is None:
            self.undecoded += 1
            return []
        if seg.proto == "udp":
            if seg.v6 and seg.sport in DHCP6_PORTS and seg.dport in DHCP6_PORTS:
                bad = self.v6.malformed
                evs = self.v6.dhcp(seg, ts)
                self.undecoded += self.v6.malformed - bad  # logged once per source by dhcp6wire
                return evs
            if not seg.v6 and seg.sport in DHCP_PORTS and seg.dport in DHCP_PORTS:
                return self._dhcp(seg, ts)
            # A TFTP packet starts with its opcode's zero byte (RFC 1350), a log line never
            # does: a transfer on an ephemeral port that happens to be a log port stays TFTP.
            if self.log_ports and seg.dport in self.log_ports and seg.payload[:1] != b"\0":
                return self._client_log(seg, ts)
            return self._fetching(self._tftp(seg, ts))
        if seg.proto == "icmp6":
            return self.v6.icmp6(seg, ts)
        if seg.dport in self.http_ports or seg.sport in self.http_ports:
            return self._fetching(self._http(seg, ts))
        return []

    def _fetching(self, events: list[Event]) -> list[Event]:
        """Tell the IPv6 watcher which clients started a download (then no RA rule applies)."""
        if self.v6.no_ra:
            for ev in events:
                if isinstance(ev, TransferStarted) and ev.mac:
                    self.v6.fetching(ev.mac)
        return events

    def tick(self, now: float) -> list[Event]:
        out: list[Event] = self.v6.tick(now)
        for mac, (first, last, count, vendor_class) in list(self.unanswered.items()):
            if now - last > FORGET_AFTER:  # gone quiet long ago: keep memory bounded in a storm
                out += self._forget_asking(mac, now, f"no DISCOVER for {FORGET_AFTER:.0f} s")
                continue
            if now - first >= UNANSWERED_AFTER and mac not in self.alerted:
                self.alerted.add(mac)
                out.append(Alert(ts=now, service=SERVICE, mac=mac, key=f"unanswered:{mac}",
                                 severity="warning",
                                 message=f"PXE client {mac} ({vendor_class}) "
                                 f"sent {count} DISCOVER(s) over {last - first:.0f} s and no DHCP server "
                                 "answered it on this wire"))
        for t in list(self.tftp.values()):
            if now - t.last < TFTP_IDLE:
                continue
            self._drop_tftp(t)
            when = t.last + TFTP_IDLE  # when it was last seen alive, plus the grace
            if self._near_end(t):
                out.append(self._finished(t, t.last, t.size if t.size is not None else t.bytes_done))
            elif not t.answered:
                out.append(self._failed(t, when, f"no answer from TFTP server {t.server_ip} "
                                        f"after {t.requests} request(s) (timeout)"))
            else:
                out.append(self._failed(t, when, f"transfer stopped after {t.bytes_done} bytes: "
                                        f"no packet for {TFTP_IDLE:.0f} s"))
        for key, c in list(self.http.items()):
            if now - c.last <= HTTP_FORGET:
                break  # least recently active first: the rest are newer
            del self.http[key]
            out += [self._http_closed(c, r, now) for r in c.pending]
        return out

    def _forget_asking(self, mac: str, ts: float, why: str) -> list[Event]:
        """Stop following an unanswered PXE client; its alert, if raised, is cleared: every
        fold keeps an alert until told, and one per forged MAC would stay for good."""
        del self.unanswered[mac]
        if mac not in self.alerted:
            return []
        self.alerted.discard(mac)
        return [Alert(ts=ts, service=SERVICE, mac=mac, key=f"unanswered:{mac}", severity="warning",
                      cleared=True, message=f"PXE client {mac} no longer followed ({why})")]

    def _mac_of(self, seg: Segment) -> str | None:
        """The client's MAC for a packet it sent: from DHCP (IP -> MAC), else the frame's source
        MAC if that MAC is a DHCP client we saw. Under proxyDHCP the router's unicast ACK may
        never reach this capture; a router's MAC (clients behind a relay) is never a DHCP client."""
        mac = self.ip_mac.get(seg.src)
        if mac is None and seg.src_mac in self.clients:
            mac = seg.src_mac
            self._learn(seg.src, mac)
        return mac

    def _learn(self, ip: str, mac: str) -> None:
        self.ip_mac.pop(ip, None)  # re-insert: most recent last
        self.ip_mac[ip] = mac
        while len(self.ip_mac) > MAX_CLIENTS:
            del self.ip_mac[next(iter(self.ip_mac))]

    # -- client log lines: syslog and netconsole ------------------------------------------
    def _client_log(self, seg: Segment, ts: float) -> list[Event]:
        """The lines of one datagram, decoded as the logs service decodes them, under the
        sender's MAC: its DHCP lease's, else the frame's (the sender on this link)."""
        assert self.log_ports is not None
        source = source_for(seg.dport, *self.log_ports)
        if source is None:
            return []
        try:
            lines = decode_log(source, seg.payload, self.max_log_bytes)
        except ValueError:  # not syslog: counted, as any packet that does not decode
            self.undecoded += 1
            return []
        mac = self.ip_mac.get(seg.src) or seg.src_mac
        return [ln.event(SERVICE, mac, seg.src, ts) for ln in lines]

    # -- DHCP ---------------------------------------------------------------------------
    def _dhcp(self, seg: Segment, ts: float) -> list[Event]:
        d = parse_dhcp(seg.payload)
        if d is None:
            self.undecoded += 1
            return []
        reply = d.op == 2
        server_ip = (d.addr(54) or seg.src) if reply else d.addr(54)
        ours = bool(server_ip and server_ip in self.our_ips)
        # Requests our service hears: broadcast, or sent to us (a relay's unicast, a renewal).
        served = self.dhcp_served and (ours if reply else (seg.dst == BROADCAST or seg.dst in self.our_ips))
        self.served_copies += served
        # A served copy is never emitted: in a storm it is most of what capture sees, so only
        # the bookkeeping below reads it, not a whole DhcpPacket (docs/ARCHITECTURE.md).
        pkt = None if served else self._dhcp_packet(d, seg, ts, reply, server_ip, ours)
        out: list[Event] = [] if pkt is None else [pkt]
        msg_type = d.msg_type
        if not reply:
            if len(self.clients) < MAX_CLIENTS:
                self.clients.add(d.chaddr)
            if d.ciaddr != "0.0.0.0":  # a client that has its address (renewal, port 4011 request)
                self._learn(d.ciaddr, d.chaddr)
            if msg_type == "DISCOVER":
                vendor_class = d.text(60) or ""
                if vendor_class.startswith("PXEClient"):
                    first, _, count, _ = self.unanswered.get(d.chaddr, (ts, ts, 0, ""))
                    self.unanswered[d.chaddr] = (first, ts, count + 1, vendor_class)
                    while len(self.unanswered) > MAX_ASKING:  # made-up clients: keep the newest
                        out += self._forget_asking(next(iter(self.unanswered)), ts,
                                                   f"more than {MAX_ASKING} clients unanswered")
            return out
        if d.chaddr in self.unanswered:  # answered at last: an alert raised for it is over
            out += self._forget_asking(d.chaddr, ts, f"DHCP server {server_ip or seg.src} answered it")
        yiaddr = d.yiaddr if d.yiaddr != "0.0.0.0" else None
        if server_ip and not ours and msg_type in ("OFFER", "ACK", "BOOTP"):
            boot_file = d.boot_file
            seen = (seg.src_mac, yiaddr and "address", boot_file)
            if self.servers.get(server_ip) != seen:
                self.servers.pop(server_ip, None)  # re-inserted: the most recently changed last
                self.servers[server_ip] = seen
                while len(self.servers) > MAX_SERVERS:  # forged option 54s: keep the newest
                    del self.servers[next(iter(self.servers))]
                out.append(ForeignDhcpServer(ts=ts, service=SERVICE, mac=d.chaddr, server_ip=server_ip,
                                             server_mac=seg.src_mac, offered=yiaddr,
                                             boot_file=boot_file))
                if self.our_ips:  # we serve here: another server is a problem to see at once
                    what = "addresses" if yiaddr else "boot information only (proxyDHCP)"
                    out.append(Alert(ts=ts, service=SERVICE, key=f"foreign-dhcp:{server_ip}",
                                     severity="warning",
                                     message=f"Another DHCP server answers on this segment: {server_ip} "
                                     f"({seg.src_mac or 'MAC unknown'}) offers {what}, boot file "
                                     f"{boot_file or 'none'}"))
        # A proxyDHCP answer on port 4011 echoes the client's address: it grants nothing.
        if msg_type in ("ACK", "BOOTP") and yiaddr and seg.sport != 4011:
            self._learn(yiaddr, d.chaddr)
            if served:  # our service announced the lease
                return out
            lt = d.lease_time
            out.append(LeaseGranted(ts=ts, service=SERVICE, mac=d.chaddr, ip=yiaddr,
                                    expires=ts + lt if lt is not None and lt != 0xFFFFFFFF else 0.0,
                                    hostname=d.text(12), server_ip=server_ip, ours=ours, state="bound"))
        return out

    @staticmethod
    def _dhcp_packet(d: Dhcp, seg: Segment, ts: float, reply: bool, server_ip: str | None,
                     ours: bool) -> DhcpPacket:
        uc = d.user_class
        addr = d.yiaddr if reply else d.ciaddr  # the client's address, when it has one
        return DhcpPacket(
            ts=ts, service=SERVICE, mac=d.chaddr, direction="wire", msg_type=d.msg_type, xid=d.xid,
            ip=addr if addr != "0.0.0.0" else None,
            server_ip=server_ip, server_mac=seg.src_mac if reply else None,
            yiaddr=d.yiaddr if d.yiaddr != "0.0.0.0" else None,
            siaddr=d.siaddr if d.siaddr != "0.0.0.0" else None,
            arch=d.arch, vendor_class=d.text(60), user_class=uc, uuid=d.uuid, hostname=d.text(12),
            boot_file=d.boot_file, next_server=d.text(66) or (d.siaddr if d.siaddr != "0.0.0.0" else None),
            ipxe=(uc == "iPXE") or 175 in d.options, port=seg.sport if reply else seg.dport, ours=ours,
            # RFC 2131 4.3.2: option 50 in a broadcast REQUEST names the address the client
            # takes; under proxyDHCP the address server's ACK may be unicast and unseen here.
            requested_ip=None if reply else d.addr(50),
        )

    # -- TFTP (RFC 1350, options RFC 2347/2348/2349/7440) -----------------------------------
    def _tftp(self, seg: Segment, ts: float) -> list[Event]:
        p = seg.payload
        if len(p) < 4:
            return []
        op = struct.unpack_from("!H", p)[0]
        if op == 1 and seg.dport == 69:
            return self._rrq(seg, ts)
        if op in (5, 6, 3):  # from the server's transfer port; ERROR may also come from the client
            t = self.tftp.get((seg.dst, seg.dport))
            if t is not None and seg.src == t.server_ip:
                return self._from_server(t, op, p, seg, ts)
            t = self.tftp.get((seg.src, seg.sport))
            if t is not None and op == 5 and seg.dst == t.server_ip:
                return self._client_error(t, p, ts)
            return []
        if op == 4:
            t = self.tftp.get((seg.src, seg.sport))
            if t is not None and seg.dst == t.server_ip:
                return self._ack(t, struct.unpack_from("!H", p, 2)[0], ts)
        return []

    def _rrq(self, seg: Segment, ts: float) -> list[Event]:
        parts = seg.payload[2:].split(b"\0")
        if len(parts) < 3:
            return []
        path = parts[0].decode("latin-1")
        opts = _options(parts[2:-1])  # the mode, and the empty field after the last NUL, left out
        key = (seg.src, seg.sport)
        t = self.tftp.get(key)
        if t is not None and t.path == path and not t.answered:  # the client asked again
            t.requests += 1
            t.last = ts
            return [TransferProgress(ts=ts, service=SERVICE, mac=t.mac, ip=seg.src, transfer_id=t.tid,
                                     bytes_done=0, retransmits=t.requests - 1)]
        out: list[Event] = []
        if t is not None:  # same source port reused: the previous transfer is over
            self._drop_tftp(t)
            out += self._close_on_reuse(t, ts)
        # Boot clients fetch one file after another: a new request means an open transfer of
        # the same client whose sampled ACKs reached its last stretch has ended.
        for k in list(self.tftp_of.get(seg.src, ())):
            old = self.tftp[k]
            if self._near_end(old):
                self._drop_tftp(old)
                out.append(self._finished(old, ts, old.size if old.size is not None else old.bytes_done))
        mac = self._mac_of(seg)
        t = _Tftp(tid=f"wire-tftp-{next(self._ids)}", client=key, server_ip=seg.dst, path=path,
                  started=ts, last=ts, mac=mac, ours=seg.dst in self.our_ips,
                  size=self.sizes.get((seg.src, seg.dst, path)))
        self.tftp[key] = t
        mine = self.tftp_of.setdefault(seg.src, {})
        mine[key] = None
        # Forged requests (any source, any port, never answered): the oldest go, of this client
        # first, so the per-request work and the table stay bounded.
        while len(mine) > MAX_TFTP_PER_CLIENT:
            out.append(self._forget_tftp(self.tftp[next(iter(mine))], ts))
        while len(self.tftp) > MAX_TFTP:
            out.append(self._forget_tftp(next(iter(self.tftp.values())), ts))
        options: dict[str, object] = {**opts, "server": seg.dst}
        out.append(TransferStarted(ts=ts, service=SERVICE, mac=mac, ip=seg.src, transfer_id=t.tid,
                                   protocol="tftp", path=path, options=options, ours=t.ours))
        return out

    def _drop_tftp(self, t: _Tftp) -> None:
        """Remove a transfer from `tftp` and from its client's index."""
        del self.tftp[t.client]
        mine = self.tftp_of.get(t.client[0])
        if mine is not None:
            mine.pop(t.client, None)
            if not mine:
                del self.tftp_of[t.client[0]]

    def _forget_tftp(self, t: _Tftp, ts: float) -> Event:
        """A transfer dropped by a cap: ended as it stands (the fold closes what is running)."""
        self._drop_tftp(t)
        if self._near_end(t):
            return self._finished(t, ts, t.size if t.size is not None else t.bytes_done)
        return TransferClosed(ts=ts, service=SERVICE, mac=t.mac, ip=t.client[0], transfer_id=t.tid,
                              protocol="tftp", reason=FORGOTTEN)

    def _near_end(self, t: _Tftp) -> bool:
        """Answered, no error, and the sampled ACKs reached the last unsampled stretch.

        The filter drops the last DATA block when it is 512 bytes or longer, and samples one
        ACK in 64: a file shorter than 64 blocks shows no ACK at all. Without a size (the
        client did not ask for tsize) that is all the capture can know."""
        if not t.answered:
            return False
        if t.size is not None:
            return t.bytes_done >= t.size - 64 * t.blksize
        return t.bytes_done == 0

    def _close_on_reuse(self, t: _Tftp, ts: float) -> list[Event]:
        if self._near_end(t):
            return [self._finished(t, ts, t.size if t.size is not None else t.bytes_done)]
        return [self._failed(t, ts, "abandoned: the client asked for another file")]

    def _from_server(self, t: _Tftp, op: int, p: bytes, seg: Segment, ts: float) -> list[Event]:
        t.answered, t.last, t.server_port = True, ts, seg.sport
        if op == 6:  # OACK
            opts = _options(p[2:].split(b"\0"))
            blksize, tsize = ascii_int(opts.get("blksize", ""), 18), ascii_int(opts.get("tsize", ""), 18)
            if blksize is not None:
                t.blksize = blksize
            if tsize is not None:
                t.size = tsize
                # OVMF learns the size in a probe and asks again without tsize (docs/FIELD-NOTES.md).
                self.sizes[(t.client[0], t.server_ip, t.path)] = t.size
                while len(self.sizes) > 4096:
                    del self.sizes[next(iter(self.sizes))]
            return [TransferProgress(ts=ts, service=SERVICE, mac=t.mac, ip=t.client[0], transfer_id=t.tid,
                                     bytes_done=0, size=t.size)]
        if op == 5:
            code, msg = _error(p)
            self._drop_tftp(t)
            return [self._failed(t, ts, f"TFTP error {code} ({TFTP_ERRORS.get(code, 'unknown')}){msg}",
                                 status=code)]
        # op 3: only short DATA passes the filter; a block shorter than blksize is the last.
        data_len = len(p) - 4
        if data_len >= t.blksize:
            return []
        block = struct.unpack_from("!H", p, 2)[0]
        self._advance(t, block)
        done = (t.wraps + block - 1) * t.blksize + data_len
        self._drop_tftp(t)
        return [self._finished(t, ts, done)]

    def _client_error(self, t: _Tftp, p: bytes, ts: float) -> list[Event]:
        code, msg = _error(p)
        self._drop_tftp(t)
        if t.bytes_done == 0 and t.answered:
            reason = f"{SIZE_PROBE}: the client stopped after learning the size ({t.size} bytes)"
        else:
            reason = f"client aborted with TFTP error {code}{msg}"
        return [self._failed(t, ts, reason, status=code)]

    def _advance(self, t: _Tftp, block: int) -> None:
        # Block numbers roll over past 65535 (docs/FIELD-NOTES.md, TFTP): count the wraps.
        if block < t.last_block and t.last_block - block > 32768:
            t.wraps += 65536
        t.last_block = block

    def _ack(self, t: _Tftp, block: int, ts: float) -> list[Event]:
        self._advance(t, block)
        done = (t.wraps + block) * t.blksize
        if t.size is not None:
            done = min(done, t.size)
        rate = done / (ts - t.started) if ts > t.started else 0.0
        t.bytes_done, t.last = done, ts
        if (t.ours and not self.progress_for_ours) or ts - t.reported < PROGRESS_EVERY:
            return []
        t.reported = ts
        return [TransferProgress(ts=ts, service=SERVICE, mac=t.mac, ip=t.client[0], transfer_id=t.tid,
                                 bytes_done=done, size=t.size, rate=rate, retransmits=t.requests - 1)]

    def _finished(self, t: _Tftp, ts: float, done: int) -> TransferFinished:
        secs = max(ts - t.started, 0.0)
        return TransferFinished(ts=ts, service=SERVICE, mac=t.mac, ip=t.client[0], transfer_id=t.tid,
                                protocol="tftp", path=t.path, bytes_done=done, seconds=secs,
                                rate=done / secs if secs > 0 else 0.0, retransmits=t.requests - 1)

    def _failed(self, t: _Tftp, ts: float, reason: str, status: int | None = None) -> TransferFailed:
        return TransferFailed(ts=ts, service=SERVICE, mac=t.mac, ip=t.client[0], transfer_id=t.tid,
                              protocol="tftp", path=t.path, reason=reason, bytes_done=t.bytes_done,
                              status=status)

    # -- HTTP: request lines, status lines, connection ends ---------------------------
    def _http(self, seg: Segment, ts: float) -> list[Event]:
        to_server = seg.dport in self.http_ports
        client = (seg.src, seg.sport) if to_server else (seg.dst, seg.dport)
        server = (seg.dst, seg.dport) if to_server else (seg.src, seg.sport)
        key = (*client, *server)
        conn = self.http.get(key)
        out: list[Event] = []
        if conn is not None:  # re-inserted: the least recently active connection stays first
            del self.http[key]
            self.http[key] = conn
        if to_server and (m := _HTTP_REQ.match(seg.payload)):
            if conn is None:
                conn = _Conn(client, server, self._mac_of(seg), server[0] in self.our_ips, ts)
                self.http[key] = conn
                while len(self.http) > MAX_HTTP:  # forged GETs from made-up sources: keep the newest
                    old = self.http.pop(next(iter(self.http)))
                    out += [self._http_closed(old, r, ts) for r in old.pending]
            conn.last = ts
            host = _HOST.search(seg.payload)
            req = _Http(tid=f"wire-http-{next(self._ids)}", path=m.group(2).decode("latin-1"),
                        method=m.group(1).decode(), started=ts)
            conn.pending.append(req)
            if len(conn.pending) > MAX_PENDING:  # more requests than any client pipelines
                out.append(self._http_closed(conn, conn.pending.pop(0), ts))
            options: dict[str, object] = {"method": req.method, "server": f"{server[0]}:{server[1]}"}
            if host:
                options["host"] = host.group(1).decode("latin-1")
            out.append(TransferStarted(ts=ts, service=SERVICE, mac=conn.mac, ip=client[0],
                                       transfer_id=req.tid, protocol="http", path=req.path,
                                       options=options, ours=conn.ours))
            return out
        if conn is None:
            return out
        conn.last = ts
        if not to_server and (m := _HTTP_RESP.match(seg.payload)):
            # A new response ends the previous one on a keep-alive connection.
            done = [r for r in conn.pending if r.resp_seq is not None]
            for r in done:  # the new response starts where the previous one ended
                out.append(self._http_end(conn, r, ts, seg.seq))
                conn.pending.remove(r)
            req = next((r for r in conn.pending if r.status is None), None)
            if req is None:
                return out
            req.status, req.reason = int(m.group(1)), (m.group(2) or b"").decode("latin-1")
            req.resp_seq = seg.seq
            end = seg.payload.find(b"\r\n\r\n")
            req.header_len = end + 4 if end >= 0 else len(seg.payload)
            size = _CRANGE.search(seg.payload) or _CLEN.search(seg.payload)
            req.size = int(size.group(1)) if size else None
            if req.status >= 400:
                conn.pending.remove(req)
                out.append(TransferFailed(ts=ts, service=SERVICE, mac=conn.mac, ip=client[0],
                                          transfer_id=req.tid, protocol="http", path=req.path,
                                          reason=f"HTTP {req.status} {req.reason}".strip(),
                                          status=req.status))
            elif req.method == "HEAD":
                conn.pending.remove(req)
                out.append(self._http_end(conn, req, ts, None))
            else:
                out.append(TransferProgress(ts=ts, service=SERVICE, mac=conn.mac, ip=client[0],
                                            transfer_id=req.tid, protocol="http", bytes_done=0,
                                            size=req.size))
            return out
        if seg.flags & 0x05:  # FIN or RST: the connection ends every open response on it
            # The server's sequence number, or the client's acknowledgement, says how far it got.
            pos = (seg.seq + seg.length) if not to_server else seg.ack
            for r in list(conn.pending):
                out.append(self._http_end(conn, r, ts, pos, reset=bool(seg.flags & 0x04)))
            conn.pending.clear()
            del self.http[key]
        return out

    @staticmethod
    def _http_closed(conn: _Conn, r: _Http, ts: float) -> Event:
        """A request no longer followed (a cap, or its connection went quiet): the fold
        closes its row rather than keep it running for ever."""
        return TransferClosed(ts=ts, service=SERVICE, mac=conn.mac, ip=conn.client[0],
                              transfer_id=r.tid, protocol="http", reason=FORGOTTEN)

    def _http_end(self, conn: _Conn, r: _Http, ts: float, end_seq: int | None,
                  reset: bool = False) -> Event:
        secs = max(ts - r.started, 0.0)
        common = dict(ts=ts, service=SERVICE, mac=conn.mac, ip=conn.client[0], transfer_id=r.tid,
                      protocol="http", path=r.path)
        if r.status is None:
            return TransferFailed(**common, reason="connection closed before any response",  # type: ignore[arg-type]
                                  bytes_done=0)
        done = r.size or 0
        if r.method != "HEAD" and end_seq is not None and r.resp_seq is not None:
            done = max(0, ((end_seq - r.resp_seq) & 0xFFFFFFFF) - r.header_len)
            if r.size is not None:
                done = min(done, r.size)
        if r.method != "HEAD" and r.size is not None and done < r.size:
            how = "reset" if reset else "closed"
            return TransferFailed(**common, reason=f"connection {how} after {done} of {r.size} bytes",  # type: ignore[arg-type]
                                  bytes_done=done, status=r.status)
        return TransferFinished(**common, bytes_done=done, seconds=secs,  # type: ignore[arg-type]
                                rate=done / secs if secs > 0 else 0.0, status=r.status)
