"""The asyncio TFTP server: a listener on the TFTP port and one socket per transfer.

RFC 1350 section 4: each transfer gets its own server TID (a fresh UDP port). The socket is
connected to the client's address, so the kernel drops datagrams from any other TID and
every send skips an address lookup. Sockets are driven with `add_reader` (no transport
objects): per packet, one recv and one send (a pread per 128 KiB; with UDP GSO one send per
window).
Timers are lazy: one per transfer, re-armed only when it fires early or the deadline moves
earlier, never per packet.

Limits (docs/SECURITY.md): transfers at once per client address and in all (counted across the
worker processes: slots.py), a silent client's slot freed within tftp.idle_timeout and an
unacknowledged OACK's or block 1's within tftp.oack_timeout (session.py), the C pump on a bounded pool
(pump.py). Every socket is bound to the configured interface (SO_BINDTODEVICE), as DHCP's.

With ipv6.enabled a second listener takes requests on [server_ip6]:69 (docs/IPV6.md "TFTP and
HTTP"); a transfer's socket is of its client's family, and everything after the socket (the
sessions, the C pump on its connected socket, the caps, the events) is the same for both.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import socket
import time
from collections import deque
from collections.abc import Callable

from pxetui.config import Config
from pxetui.events import (
    Event,
    LimitReporter,
    Log,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from pxetui.files import Client, FileLookupError, Forbidden, NotFound, Resolver
from pxetui.tftp import pump as tftp_pump
from pxetui.tftp.options import Limits, OptionRefused, negotiate
from pxetui.tftp.packets import RRQ, WRQ, ErrorCode, PacketError, Request, encode_error, parse
from pxetui.tftp.pump import PumpPool
from pxetui.tftp.session import (
    DONE,
    NEGOTIATING,
    TRANSFERRING,
    BytesReader,
    FdReader,
    Receiver,
    Sender,
)
from pxetui.tftp.slots import Slots, slot_of
from pxetui.tftp.uploads import MAX_UPLOAD, Upload, Uploads

PROGRESS_INTERVAL = 0.25  # at most 4 TransferProgress events per second per transfer
LISTEN_RCVBUF = 1 << 20  # a boot storm sends hundreds of RRQs at once
DRAIN_MAX = 64  # datagrams handled per readiness callback before yielding to others
# Seconds after a transfer began in which the same request again, from the same port, is that
# request resent (clients resend theirs every 1-4 s until an answer comes), never a new one.
RESENT_WITHIN = 5.0
# A transfer never acknowledged this long may be ended for a new request when every slot is
# taken (TftpServer._make_room): a real client answers within a round trip. The wait is
# UNCONFIRMED_MARGIN times the slowest of the last FIRST_ACKS_KEPT first acknowledgements real
# clients sent (every TFTP process's, via the shared slot table), within UNCONFIRMED_FLOOR..
# UNCONFIRMED_AGE; UNCONFIRMED_AGE until one is seen. A forged-source flood must send
# max_transfers / that wait requests a second to keep the table full: ~20,000/s on a LAN
# where clients answer within 12 ms (2,048/s at a fixed 0.5 s; ~200/s at tftp.oack_timeout).
UNCONFIRMED_AGE = 0.5
UNCONFIRMED_FLOOR = 0.05
UNCONFIRMED_MARGIN = 4.0
FIRST_ACKS_KEPT = 32
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # Linux >= 4.18 UDP GSO
GSO_BYTES, GSO_SEGMENTS = 65000, 64  # per send: under the 64 KiB datagram limit and UDP_MAX_SEGMENTS

Emit = Callable[[Event], None]


class TftpServer:
    def __init__(self, cfg: Config, resolver: Resolver, emit: Emit, reuse_port: bool = False,
                 slots: Slots | None = None) -> None:
        if not cfg.server_ip:
            raise ValueError("tftp: server_ip is not set; resolve the config against an interface first")
        self.cfg = cfg
        self.resolver = resolver
        self.emit = emit
        self.limits = Limits.from_config(cfg)
        self.host = cfg.server_ip
        self.host6 = cfg.server_ip6 if cfg.ipv6.enabled else ""  # resolve() sets it (config.py)
        self.port = cfg.tftp.port
        self.reuse_port = reuse_port  # several worker processes share the port (workers.py)
        self.uploads = Uploads(cfg.tftp.uploads_dir) if cfg.tftp.uploads_dir else None
        self.slots = slots if slots is not None else Slots.private()
        self.pool = PumpPool(cfg.tftp.pump_threads if tftp_pump.available() else 0)
        self.limit_hits = LimitReporter(emit)
        self.device = cfg.interface  # empty (benchmarks on loopback): bound by address only
        self.device_per_transfer = True  # False once the kernel refused it (see _bind_device)
        self.transfers: dict[tuple[str, int], Transfer] = {}
        # Transfers that may not have been acknowledged yet, oldest first (_make_room).
        self.unacknowledged: dict[Transfer, None] = {}
        self._first_acks: deque[float] = deque(maxlen=FIRST_ACKS_KEPT)  # seconds, see UNCONFIRMED_AGE
        self.socks: list[socket.socket] = []  # the listeners: IPv4, then IPv6 when enabled
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}{int(time.time()) & 0xFFFFFF:06x}"

    def start(self) -> int:
        """Bind the listeners; returns the port (useful when configured as 0 in benchmarks:
        the IPv6 listener then takes the port the IPv4 one got)."""
        self.loop = asyncio.get_running_loop()
        try:
            v4 = self._listen(socket.AF_INET, self.host, self.port)
            port = int(v4.getsockname()[1])
            if self.host6:
                self._listen(socket.AF_INET6, self.host6, port)
        except OSError:
            self._close_listeners()
            raise
        return port

    def _listen(self, family: socket.AddressFamily, host: str, port: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LISTEN_RCVBUF)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if self.device:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.device.encode())
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            raise OSError(exc.errno, f"tftp: cannot listen on {where}: {exc.strerror or exc}") from exc
        sock.setblocking(False)
        assert self.loop is not None
        self.socks.append(sock)
        self.loop.add_reader(sock.fileno(), self._on_listen, sock)
        return sock

    def _close_listeners(self) -> None:
        for sock in self.socks:
            if self.loop is not None:
                self.loop.remove_reader(sock.fileno())
            sock.close()
        self.socks = []

    def close(self) -> None:
        for t in list(self.transfers.values()):
            t.abort("server stopping")
        self.pool.close(0.5)  # pumps woken by abort(); their descriptors stay open until then
        self._close_listeners()

    # -- requests on the well-known port ----------------------------------------------------
    def _on_listen(self, sock: socket.socket) -> None:
        recvfrom = sock.recvfrom
        for _ in range(DRAIN_MAX):
            try:
                pkt, full = recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. a stale ICMP error queued on the listener
            # (ip, port) for both families: an IPv6 peer's flowinfo and scope are 0 on a
            # global/ULA address, and the 2-tuple keys transfers the same way as IPv4's.
            addr = (full[0], full[1])
            try:
                self._request(pkt, addr)
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
                self.emit(Log(level_name="error", ip=addr[0], message=f"tftp: request from {addr[0]} failed: {exc!r}"))

    def _request(self, pkt: bytes, addr: tuple[str, int]) -> None:
        ip, port = addr
        if port == 0:
            return
        old = self.transfers.get(addr)
        tid = f"{self._prefix}-{next(self._ids)}"
        try:
            req = parse(pkt)
        except PacketError as exc:
            if old is None:
                # The source may be forged: the ERROR says no more than this (the detail quotes up
                # to 40 bytes as repr, 4x each: a 53-byte request drew a 213-byte reply). The
                # detail goes to the event.
                self._reject(addr, tid, "", ErrorCode.ILLEGAL_OPERATION, f"malformed request: {exc}",
                             wire="malformed request")
            return
        if not isinstance(req, Request):
            if old is None:  # mid-transfer strays (an ACK sent to port 69) must not end it
                self._reject(addr, tid, "", ErrorCode.ILLEGAL_OPERATION, "expected a read or write request")
            return
        if old is not None:
            if pkt == old.request and (not old.heard or time.monotonic() - old.session.started < RESENT_WITHIN):
                # The client resent its request before our reply reached it; under load we may
                # read that resend only after the client answered the reply. Taken as new, it
                # ended a transfer in progress and began another from a new port, which the
                # client, on block 3 of the first, never followed (a 1,000-client storm: 91).
                return
            # Same client port, new request: the client has moved on (a UEFI size probe ends
            # with ERROR 8 and asks again at once, maybe before we read that ERROR).
            old.replace()
        if req.mode not in ("octet", "netascii"):
            self._reject(addr, tid, req.filename, ErrorCode.ILLEGAL_OPERATION,
                         f"transfer mode {req.mode!r} not supported", wire="transfer mode not supported")
            return
        if not self._admit(req, addr, tid):
            return
        if req.opcode == WRQ:
            self._write_request(req, addr, tid)
        elif req.opcode == RRQ:
            self._read_request(req, addr, tid)

    def _read_request(self, req: Request, addr: tuple[str, int], tid: str) -> None:
        try:
            src = self.resolver.resolve(req.filename, Client(ip=addr[0]))
        except NotFound:
            # Answered at once: pxelinux probes ~14 missing names before `default` (docs/FIELD-NOTES.md).
            self._reject(addr, tid, req.filename, ErrorCode.FILE_NOT_FOUND, "file not found")
            return
        except FileLookupError as exc:
            for ev in exc.events:  # a changed ISO's Alert, the first time (library/provider.py)
                self.emit(ev)
            self._reject(addr, tid, req.filename, ErrorCode.ACCESS_VIOLATION, exc.reason)
            return
        try:
            neg = negotiate(req.options, src.size, self.limits)
        except OptionRefused as exc:
            src.close()
            self._reject(addr, tid, src.name, ErrorCode.OPTION_REFUSED, str(exc))
            return
        fd: int | None = None
        try:
            if src.data is not None:
                reader: BytesReader | FdReader = BytesReader(src.data)
            else:
                # The fd the lookup opened (docs/SECURITY.md: never opened again by path);
                # Transfer._close closes it when the transfer ends.
                fd = src.take_fd()
                reader = FdReader(fd, src.offset, src.size)
            sock = self._transfer_socket(addr)
        except OSError as exc:
            if fd is not None:
                os.close(fd)
            self._reject(addr, tid, src.name, ErrorCode.ACCESS_VIOLATION, f"cannot open: {exc.strerror or exc}")
            return
        now = time.monotonic()
        session = Sender(reader, src.size, neg, sock.send, now, batch=self._gso(sock, neg.blksize, neg.windowsize),
                         idle_max=self.cfg.tftp.idle_timeout, oack_giveup=self.cfg.tftp.oack_timeout)
        options = {"blksize": neg.blksize, "windowsize": neg.windowsize, **neg.oack, "mode": req.mode}
        # Lock-step transfers of real files run their data phase in the C pump (pump.py), while
        # its pool has a free thread when the data phase starts.
        pump_at = src.offset if (fd is not None and neg.windowsize == 1 and src.size >= tftp_pump.MIN_SIZE
                                 and self.pool.size) else None
        Transfer(self, addr, sock, session, tid, src.name, src.size, options, fd, None, pump_at).start(now, req)

    def _write_request(self, req: Request, addr: tuple[str, int], tid: str) -> None:
        if self.uploads is None:
            self._reject(addr, tid, req.filename, ErrorCode.ACCESS_VIOLATION, "uploads are disabled (read-only server)")
            return
        try:
            neg = negotiate(req.options, None, self.limits, upload=True)
        except OptionRefused as exc:
            self._reject(addr, tid, req.filename, ErrorCode.OPTION_REFUSED, str(exc))
            return
        if neg.tsize is not None and neg.tsize > MAX_UPLOAD:
            self._reject(addr, tid, req.filename, ErrorCode.DISK_FULL, f"upload larger than {MAX_UPLOAD} bytes")
            return
        try:
            upload = self.uploads.open(req.filename, tid)
        except FileExistsError:
            self._reject(addr, tid, req.filename, ErrorCode.FILE_EXISTS, "file already exists")
            return
        except (NotFound, Forbidden) as exc:
            self._reject(addr, tid, req.filename, ErrorCode.ACCESS_VIOLATION, exc.reason)
            return
        except OSError as exc:
            self._reject(addr, tid, req.filename, ErrorCode.ACCESS_VIOLATION, f"cannot create: {exc.strerror or exc}")
            return
        try:
            sock = self._transfer_socket(addr)
        except OSError as exc:
            upload.discard()
            self._reject(addr, tid, req.filename, ErrorCode.NOT_DEFINED, f"no socket: {exc.strerror or exc}")
            return
        now = time.monotonic()
        session = Receiver(upload.write, neg, sock.send, now, MAX_UPLOAD, finish=upload.commit,
                           idle_max=self.cfg.tftp.idle_timeout, oack_giveup=self.cfg.tftp.oack_timeout)
        options = {"blksize": neg.blksize, **neg.oack, "mode": req.mode, "upload": True}
        Transfer(self, addr, sock, session, tid, upload.name, neg.tsize, options, None, upload).start(now, req)

    def _gso(self, sock: socket.socket, blksize: int, window: int) -> int:
        """Let the kernel cut one send into a window's datagrams (UDP GSO); blocks per send."""
        batch = min(window, GSO_SEGMENTS, GSO_BYTES // (4 + blksize))
        if batch < 2:
            return 1
        try:
            sock.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, 4 + blksize)
        except OSError:
            return 1
        return batch

    def _admit(self, req: Request, addr: tuple[str, int], tid: str) -> bool:
        """The caps: per client address, then in all (docs/SECURITY.md). Each refusal is counted
        in a LimitHit, not one TransferFailed per request. Over the per-client cap the host gets
        an ERROR. A full table with nothing to drop answers nothing: a client resends its
        request (RFC 1350) and gets in once a slot is free, where an ERROR ends its boot (PXE
        ROMs, iPXE and GRUB give up on one), and a flood from forged sources gets no packets
        aimed at the addresses it names and costs no reply socket per request."""
        ip = addr[0]
        tftp = self.cfg.tftp
        slots = self.slots
        held = slots.count(slot_of(ip))
        if held >= tftp.max_per_client:
            self._reject(addr, tid, req.filename, ErrorCode.NOT_DEFINED, "too many transfers from your address",
                         report=False)
            self.limit_hits.hit("tftp.max_per_client", ip, f"{ip} has {held} transfers open "
                                f"(tftp.max_per_client={tftp.max_per_client}); refused {req.filename!r}")
            return False
        if slots.total() >= tftp.max_transfers and not self._make_room(ip, req.filename):
            self.limit_hits.hit("tftp.max_transfers", None, f"{tftp.max_transfers} transfers open "
                                f"(tftp.max_transfers); left {req.filename!r} from {ip} unanswered "
                                "(a client resends)")
            return False
        return True

    def heard_first(self, delay: float) -> None:
        """A client answered its transfer's first packet `delay` seconds after the request
        (read on the transfer's socket: an OACK's ACK, or block 1's in lock-step; a transfer
        the C pump took at once is counted acknowledged by the pump, without a sample)."""
        self._first_acks.append(delay)
        self.slots.set_first_ack(max(self._first_acks))

    def unconfirmed_age(self) -> float:
        """How long a transfer nobody acknowledged keeps its slot against a new request when
        the table is full (see UNCONFIRMED_AGE)."""
        slowest = self.slots.first_ack()
        if slowest is None:
            return UNCONFIRMED_AGE
        return min(UNCONFIRMED_AGE, max(UNCONFIRMED_FLOOR, UNCONFIRMED_MARGIN * slowest))

    def _make_room(self, ip: str, filename: str) -> bool:
        """Every slot is taken: end this process's oldest transfer that was never acknowledged
        and is older than `unconfirmed_age()`, so a flood from forged sources cannot keep real
        clients out for tftp.oack_timeout (docs/SECURITY.md, "TFTP and HTTP limits"). The ones
        still younger are left alone: a real client acknowledges within a round trip. True
        when one was ended (its slot is the new request's, even if a pump frees it a moment
        later); False leaves the request unanswered (see _admit)."""
        now = time.monotonic()
        # Oldest first: transfers enter in the order they start and leave once they are found
        # acknowledged or ended, so a refusal costs a look at the head, never a scan of every
        # transfer (a flood against a table full of real transfers must not buy CPU).
        pending = self.unacknowledged
        wait = self.unconfirmed_age()
        oldest: Transfer | None = None
        while pending:
            t = next(iter(pending))
            if t.closed or not t.session.active or not t.unconfirmed():
                del pending[t]
                continue
            if now - t.session.started < wait:
                return False  # the oldest is still young: so are the rest
            del pending[t]
            oldest = t
            break
        if oldest is None:
            return False
        age = now - oldest.session.started
        victim = oldest.addr[0]
        # No ERROR to it: its source may be forged, and the ERROR would go to whoever it names.
        oldest.abort(f"never acknowledged after {age:.2f} s while the server was full "
                     "(tftp.max_transfers): dropped for a new request", notify=False)
        self.limit_hits.hit("tftp.max_transfers", None, f"{self.cfg.tftp.max_transfers} transfers open "
                            f"(tftp.max_transfers): dropped {oldest.path!r} to {victim}, never "
                            f"acknowledged after {age:.2f} s, for {filename!r} from {ip}")
        return True

    def _bind_device(self, sock: socket.socket) -> None:
        """A per-transfer or reply socket on the interface too. After the drop of root this needs
        Linux >= 5.7 (SO_BINDTODEVICE on a socket not yet bound to a device is unprivileged
        there; older kernels want CAP_NET_RAW). Refused, the sockets stay bound to the server's
        address and connected to a client whose request came in through the bound listener."""
        if not self.device or not self.device_per_transfer:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.device.encode())
        except PermissionError as exc:
            self.device_per_transfer = False
            self.emit(Log(level_name="warning", message=f"tftp: transfer sockets cannot be bound to "
                          f"{self.device} ({exc.strerror}; Linux < 5.7 needs CAP_NET_RAW): bound by address only"))

    def _local(self, addr: tuple[str, int]) -> tuple[socket.AddressFamily, str]:
        """Our family and address for a client: a request from an IPv6 peer came in on the
        IPv6 listener (it is IPV6_V6ONLY), so it is answered from [server_ip6]."""
        if ":" in addr[0]:
            return socket.AF_INET6, self.host6
        return socket.AF_INET, self.host

    def _transfer_socket(self, addr: tuple[str, int]) -> socket.socket:
        family, host = self._local(addr)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._bind_device(sock)
            sock.bind((host, 0))
            sock.connect(addr)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _reject(self, addr: tuple[str, int], tid: str, path: str, code: int, reason: str,
                report: bool = True, wire: str | None = None) -> None:
        """ERROR from a fresh TID, as RFC 1350 wants for any reply to a request. `wire`: the
        message the ERROR carries when it must not echo the request (`reason`, for the event)."""
        try:
            family, host = self._local(addr)
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                self._bind_device(s)
                s.bind((host, 0))
                s.setblocking(False)
                s.sendto(encode_error(code, reason if wire is None else wire), addr)
        except OSError:
            pass
        if report:
            self.emit(TransferFailed(ip=addr[0], transfer_id=tid, path=path, reason=reason, status=int(code)))


class Transfer:
    """Glue between one session and its socket, timer and events."""

    __slots__ = ("server", "loop", "addr", "sock", "fileno", "session", "tid", "path", "size",
                 "options", "fd", "upload", "announced", "reported", "closed", "timer", "timer_at",
                 "writing", "next_progress", "recv_size", "request", "heard", "recv", "replaced",
                 "lockstep", "pump_at", "pump", "slot")

    def __init__(self, server: TftpServer, addr: tuple[str, int], sock: socket.socket,
                 session: Sender | Receiver, tid: str, path: str, size: int | None,
                 options: dict[str, object], fd: int | None, upload: Upload | None,
                 pump_at: int | None = None) -> None:
        assert server.loop is not None
        self.server, self.loop, self.addr, self.sock = server, server.loop, addr, sock
        self.fileno = sock.fileno()
        self.recv = sock.recv
        self.session, self.tid, self.path, self.size = session, tid, path, size
        self.options, self.fd, self.upload = options, fd, upload
        self.announced = self.reported = self.closed = self.writing = False
        self.heard = False  # any packet from the client's TID yet
        self.replaced = False  # the client sent a new request from the same port
        self.request = b""
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.next_progress = 0.0
        # A sender only reads ACKs and ERRORs (a cut-off error message is fine; 512 bytes stay in
        # pymalloc); a receiver needs room for a whole block (+1 to see oversize).
        self.recv_size = 512 if isinstance(session, Sender) else session.blksize + 5
        self.pump_at = pump_at  # offset in `fd`: the data phase goes to the C pump after negotiation
        self.pump: tftp_pump.Pump | None = None
        self.lockstep = isinstance(session, Sender) and session.window == 1 and pump_at is None
        self.slot = slot_of(addr[0])

    def unconfirmed(self) -> bool:
        """Nothing has come from the client's end of the transfer yet, as with a forged source
        address: no packet on our socket, and none the C pump has counted."""
        if self.heard or self.session.heard:
            return False
        return self.pump is None or self.pump.acked == 0

    def start(self, now: float, req: Request) -> None:
        self.request = req.raw
        self.server.transfers[self.addr] = self
        self.server.unacknowledged[self] = None
        self.server.slots.take(self.slot)
        if self.pump_at is not None and self.session.state is TRANSFERRING and self._handoff(now):
            return  # no options asked for: no OACK, the data phase starts at once
        self.loop.add_reader(self.fileno, self._readable)
        self.session.start(now)
        self._after(now)

    def _readable(self) -> None:
        # One datagram per callback: readiness is level-triggered, so a queued second one
        # calls again, and lock-step transfers save the recv that would fail with EAGAIN.
        sess = self.session
        now = time.monotonic()
        try:
            pkt = self.recv(self.recv_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ICMP port unreachable: the client went away
            if sess.active:
                sess.unreachable(exc)
        else:
            if not self.heard:
                self.heard = True
                self.server.heard_first(now - sess.started)
            if self.lockstep and sess.lockstep_ack(pkt, now):  # type: ignore[union-attr]
                if now < self.next_progress:
                    return  # nothing else to do: no event due, the timer only moved later
            elif self.pump_at is not None and sess.take_oack_ack(pkt, now):  # type: ignore[union-attr]
                if self._handoff(now):
                    return
                sess.begin_data(now)  # type: ignore[union-attr]  # every pump thread is busy
            else:
                sess.on_packet(pkt, now)
        self._after(now)

    def _writable(self) -> None:
        sess = self.session
        if isinstance(sess, Sender) and sess.active and sess.pump():
            self.loop.remove_writer(self.fileno)
            self.writing = False
        self._after(time.monotonic())

    def _on_timer(self) -> None:
        self.timer = None
        now = time.monotonic()
        self.session.on_timer(now)
        self._after(now)

    def _after(self, now: float) -> None:
        """Bookkeeping after the session ran: events, writer, timer, the end."""
        if self.pump is not None and self.pump.running:
            return  # _pumped() comes back here once the data phase has ended
        sess = self.session
        state = sess.state
        if state is TRANSFERRING or state is NEGOTIATING:
            if not self.announced and state is TRANSFERRING:
                self._announce(now)
            elif now >= self.next_progress and self.announced:
                self.next_progress = now + PROGRESS_INTERVAL
                self._progress(now)
            if sess.blocked and not self.writing:
                self.writing = True
                self.loop.add_writer(self.fileno, self._writable)
            deadline = sess.deadline
            if self.timer is None or deadline < self.timer_at - 0.001:
                if self.timer is not None:
                    self.timer.cancel()
                self.timer_at = deadline
                self.timer = self.loop.call_later(max(0.0, deadline - now), self._on_timer)
            return
        if not self.reported:
            self.reported = True
            self._report(now)
        if now >= sess.linger_until:
            self._close()
        elif self.timer is None:
            self.timer_at = sess.linger_until
            self.timer = self.loop.call_later(sess.linger_until - now, self._on_timer)

    # -- the data phase in the C pump -------------------------------------------------------
    def _handoff(self, now: float) -> bool:
        """The data phase to the C pump; False (it stays here, lock-step in Python) when every
        thread of the pool is busy."""
        sess = self.session
        assert isinstance(sess, Sender) and self.fd is not None and self.pump_at is not None
        pump = tftp_pump.Pump(self.sock, self.fd, self.pump_at, sess.size, sess.blksize, sess.rto, sess.rto_cap,
                              sess.giveup, self._pumped, first_giveup=sess.silence_limit())
        pool = self.server.pool
        if not pump.start(pool):
            self.pump_at = None
            self.lockstep = True
            self.server.limit_hits.hit("tftp.pump_threads", None, f"all {pool.size} pump threads busy "
                                       "(tftp.pump_threads): lock-step transfers run in Python meanwhile")
            return False
        self.pump = pump
        self.loop.remove_reader(self.fileno)
        if self.timer is not None:
            self.timer.cancel()
        if not self.announced:
            self._announce(now)
        self.timer = self.loop.call_later(PROGRESS_INTERVAL, self._pump_progress)
        return True

    def _pump_progress(self) -> None:
        self.timer = None
        pump = self.pump
        if pump is None or not pump.running:
            return
        sess = self.session
        assert isinstance(sess, Sender)
        sess.acked, sess.retransmits = pump.acked, pump.retransmits
        self._progress(time.monotonic())
        self.timer = self.loop.call_later(PROGRESS_INTERVAL, self._pump_progress)

    def _pumped(self, out: tftp_pump.Outcome) -> None:
        sess = self.session
        assert isinstance(sess, Sender)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        sess.acked, sess.retransmits = max(sess.acked, out.acked), out.retransmits
        sess.heard = sess.heard or out.acked > 0
        if sess.active:  # else abort() or replace() ended it already
            if out.code == tftp_pump.DONE:
                sess.state, sess.deadline, sess.final_ack_lost = DONE, math.inf, out.final_ack_lost
            elif out.code == tftp_pump.PEER_ERROR:
                sess.peer_failed(out.peer_code, out.message)
            else:  # the client is gone (no ERROR to it), or timed out, or the file failed us
                sess._fail(ErrorCode.NOT_DEFINED, out.message, notify=out.code != tftp_pump.UNREACHABLE)
                sess.timed_out = out.code == tftp_pump.TIMEOUT
        self._after(time.monotonic())

    def replace(self) -> None:
        """End quietly: the client started over from the same port (it will not read us)."""
        sess = self.session
        self.replaced = True
        if sess.active:
            sess.ended_in_negotiation = sess.state is NEGOTIATING
            sess._fail(ErrorCode.NOT_DEFINED, "client sent a new request from the same port", notify=False)
        sess.linger_until = 0.0
        if self.pump is not None and self.pump.running:
            self.pump.cancel()
        self._after(time.monotonic())

    def abort(self, reason: str, notify: bool = True) -> None:
        if self.session.active:
            self.session._fail(ErrorCode.NOT_DEFINED, reason, notify=notify)
        self.session.linger_until = 0.0
        if self.pump is not None and self.pump.running:
            self.pump.cancel()
        self._after(time.monotonic())

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.loop.remove_reader(self.fileno)
        if self.writing:
            self.loop.remove_writer(self.fileno)
        self.sock.close()
        if self.fd is not None:
            os.close(self.fd)
        if self.upload is not None and not self.upload.closed:
            self.upload.discard()
        self.server.slots.give(self.slot)
        self.server.unacknowledged.pop(self, None)
        if self.server.transfers.get(self.addr) is self:
            del self.server.transfers[self.addr]

    # -- events ----------------------------------------------------------------------------
    def _announce(self, now: float) -> None:
        self.announced = True
        self.next_progress = now + PROGRESS_INTERVAL
        self.server.emit(TransferStarted(ip=self.addr[0], transfer_id=self.tid, path=self.path,
                                         size=self.size, options=self.options))

    def _progress(self, now: float) -> None:
        sess = self.session
        elapsed = now - sess.started
        done = sess.bytes_done
        self.server.emit(TransferProgress(ip=self.addr[0], transfer_id=self.tid, bytes_done=done,
                                          size=self.size, rate=done / elapsed if elapsed > 0 else 0.0,
                                          retransmits=sess.retransmits))

    def _report(self, now: float) -> None:
        sess = self.session
        ip, emit = self.addr[0], self.server.emit
        if sess.state is DONE:
            if not self.announced:
                self._announce(now)
            secs = now - sess.started
            emit(TransferFinished(ip=ip, transfer_id=self.tid, path=self.path, bytes_done=sess.bytes_done,
                                  seconds=round(secs, 6), rate=sess.bytes_done / secs if secs > 0 else 0.0,
                                  retransmits=sess.retransmits))
        elif sess.ended_in_negotiation and (self.replaced or sess.error_code == ErrorCode.OPTION_REFUSED):
            # UEFI PXE (EDK2) asks only for tsize, then ends with ERROR 8 after the OACK and asks
            # again for the real transfer (docs/FIELD-NOTES.md): a size probe, not a failure.
            emit(Log(level_name="debug", ip=ip, message=f"tftp: size probe for {self.path} ({self.size} bytes)"))
        else:
            emit(TransferFailed(ip=ip, transfer_id=self.tid, path=self.path, reason=sess.reason,
                                bytes_done=sess.bytes_done, status=sess.error_code))
            if sess.timed_out:
                self._timed_out(ip)

    def _timed_out(self, ip: str) -> None:
        """A LimitHit when our limit, not the client's own timeout, ended it (docs/SECURITY.md)."""
        sess, tftp = self.session, self.server.cfg.tftp
        if sess.ended_in_negotiation:
            self.server.limit_hits.hit("tftp.oack_timeout", ip, f"{ip} never acknowledged the OACK for "
                                       f"{self.path} (tftp.oack_timeout={tftp.oack_timeout:g} s)")
        elif not sess.heard:
            what = "acknowledged block 1 of" if isinstance(sess, Sender) else "sent block 1 of its upload"
            self.server.limit_hits.hit("tftp.oack_timeout", ip, f"{ip} never {what} "
                                       f"{self.path} (tftp.oack_timeout={tftp.oack_timeout:g} s): a forged "
                                       "source address, or a client that left")
        elif sess.neg.timeout and sess.giveup < 5.0 * sess.neg.timeout:
            self.server.limit_hits.hit("tftp.idle_timeout", ip, f"{ip} asked for timeout={sess.neg.timeout} "
                                       f"and went silent: {self.path} ended after "
                                       f"{sess.giveup:g} s (tftp.idle_timeout)")
