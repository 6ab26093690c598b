"""Per-transfer state machines, independent of sockets so they can be unit-tested.

`Sender` serves a read request (RRQ), `Receiver` takes an upload (WRQ). Both are driven by
three calls from the server: `start(now)`, `on_packet(pkt, now)` for every datagram from the
client's TID, and `on_timer(now)` once `now >= deadline`. They transmit through the `send`
callable given to them, which may raise BlockingIOError (socket buffer full: `Sender.pump()`
continues when the socket is writable again) or another OSError (the client is gone).

Retransmission (RFC 1350 section 2, RFC 7440 section 4): go-back-N from the first
unacknowledged block, with a timeout estimated from round trips as in RFC 6298 (Karn's rule:
no samples from resent windows), doubled on each consecutive expiry and never longer than the
timeout the client agreed (RFC 2349). The client's timeout (up to 255 s) is honoured only as far
as `idle_max` allows: a silent client is dropped after idle_max seconds whatever it asked for,
and one never heard from (no ACK of our OACK, or of block 1 when there was no OACK) after
`oack_giveup`: a request from a forged source address is never answered, and must neither hold
a slot for long nor make us send block 1 to its victim for long (docs/SECURITY.md). An ACK for an
earlier block than the window's last (the client saw a gap) resends from there at once. A
duplicate ACK resends only if it arrives well after our last transmission, i.e. the client is
stuck, not echoing: answering every duplicate is the Sorcerer's Apprentice bug (RFC 1123
section 4.2.3.1), which doubles traffic.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Callable
from typing import Protocol

from pxetui.tftp.options import Negotiated
from pxetui.tftp.packets import (
    ACK,
    DATA,
    ERROR,
    HEADER,
    ErrorCode,
    encode_ack,
    encode_error,
    encode_oack,
)

RTO_MIN = 0.05  # seconds; LAN round trips are far below, but a loaded client is not
RTO_INITIAL = 1.0  # before the first round-trip sample (RFC 6298 says 1 s)
RTO_CAP = 3.0  # longest wait between resends when the client set no timeout option
SAMPLE_EVERY = 0.01  # seconds between RTT samples: lock-step ACKs come 50k/s on a LAN
DUP_GAP_MIN = 0.01  # a duplicate ACK within this (or 2 RTT) of our last send is an echo
GIVEUP_SECONDS = 20.0  # no progress for this long: the client is gone
DALLY_SECONDS = 1.0  # after an upload's last block, keep answering its retransmissions

_NO_GSO = (errno.EIO, errno.EINVAL, errno.EMSGSIZE, errno.EOPNOTSUPP, errno.ENOPROTOOPT)

Send = Callable[[bytes | memoryview], object]

NEGOTIATING, TRANSFERRING, DONE, FAILED = "negotiating", "transferring", "done", "failed"


CHUNK = 128 * 1024  # read-ahead per transfer: one pread serves ~90 blocks of 1428 bytes


class BlockReader(Protocol):
    def view(self, pos: int, n: int) -> memoryview | bytes:
        """`n` bytes of content at `pos` (the caller never asks past the end)."""
        ...


class FdReader:
    """A file, or a byte range of one (a file inside an .iso), read ahead in chunks with pread.

    pread keeps no seek state (a go-back-N resend just reads again) and, unlike mmap, a file
    truncated under us fails this transfer instead of killing the process with SIGBUS.
    """

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.fd, self.offset, self.size = fd, offset, size
        self.start = self.end = 0
        self.chunk = memoryview(b"")

    def view(self, pos: int, n: int) -> memoryview:
        if pos < self.start or pos + n > self.end:
            length = min(max(CHUNK, n), self.size - pos)
            data = os.pread(self.fd, length, self.offset + pos)
            if len(data) != length:
                raise OSError(f"file shrank while being served (read {len(data)} of {length} bytes at {pos})")
            self.start, self.end, self.chunk = pos, pos + length, memoryview(data)
        i = pos - self.start
        return self.chunk[i : i + n]


class BytesReader:
    """Virtual content (generated menus, per-MAC configs)."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.size = len(data)

    def view(self, pos: int, n: int) -> memoryview:
        return self.data[pos : pos + n]


class _Base:
    def __init__(self, neg: Negotiated, send: Send, now: float, idle_max: float = math.inf,
                 oack_giveup: float = math.inf) -> None:
        self.neg = neg
        self.send = send
        self.blksize = neg.blksize
        self.state = NEGOTIATING if neg.oack else TRANSFERRING
        self.retransmits = 0
        self.timeouts = 0  # consecutive expiries without progress
        self.giveup = min(max(GIVEUP_SECONDS, 5.0 * (neg.timeout or 0)), idle_max)
        # At least three resends fit in the idle limit, whatever timeout the client asked for.
        self.rto_cap = max(RTO_MIN, min(float(neg.timeout) if neg.timeout else RTO_CAP, self.giveup / 3))
        self.rto = min(RTO_INITIAL, self.rto_cap)
        self.oack_giveup = oack_giveup
        self.heard = False  # an ACK came from the client's TID: a real client, not a forged source
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.sampled_at = -math.inf
        self.started = now
        self.last_send = now
        self.last_progress = now
        self.deadline = math.inf
        self.timed_out = False  # ended by giveup (or oack_giveup): the client went silent
        self.error_code: int | None = None  # set when FAILED
        self.reason = ""
        self.peer_error = False  # the client ended it with an ERROR packet
        self.ended_in_negotiation = False
        self.linger_until = 0.0  # after DONE, keep the socket open until then (upload dally)
        self.blocked = False  # send buffer full: call pump() when the socket is writable

    @property
    def active(self) -> bool:
        return self.state in (NEGOTIATING, TRANSFERRING)

    def _backoff_rto(self) -> float:
        if not self.timeouts:
            return self.rto  # kept within RTO_MIN..rto_cap by _sample
        return max(RTO_MIN, min(self.rto * (1 << min(self.timeouts, 16)), self.rto_cap))

    def _sample(self, r: float, now: float) -> None:
        """RFC 6298 section 2."""
        self.sampled_at = now
        if self.srtt is None:
            self.srtt, self.rttvar = r, r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        self.rto = max(RTO_MIN, min(self.srtt + 4 * self.rttvar, self.rto_cap))

    def _dup_gap(self) -> float:
        return max(DUP_GAP_MIN, 2 * self.srtt) if self.srtt is not None else self.rto

    def _xmit(self, pkt: bytes) -> bool:
        try:
            self.send(pkt)
        except BlockingIOError:
            return True  # dropped locally: the timer resends it
        except OSError as exc:
            self.unreachable(exc)
            return False
        return True

    def unreachable(self, exc: OSError) -> None:
        """The client's port is closed (ICMP port unreachable): it is gone."""
        self._fail(ErrorCode.NOT_DEFINED, f"client unreachable: {exc.strerror or exc}", notify=False)

    def _fail(self, code: int, reason: str, notify: bool = True) -> None:
        self.state = FAILED
        self.error_code = int(code)
        self.reason = reason
        self.deadline = math.inf
        if notify:
            try:
                self.send(encode_error(code, reason))
            except OSError:
                pass

    def _on_error(self, pkt: bytes) -> None:
        self.peer_failed((pkt[2] << 8) | pkt[3], pkt[4:].split(b"\0", 1)[0].decode("utf-8", "replace"))

    def peer_failed(self, code: int, msg: str) -> None:
        """The client ended the transfer with ERROR `code`."""
        self.ended_in_negotiation = self.state == NEGOTIATING
        self.state = FAILED
        self.error_code = code
        self.peer_error = True
        self.reason = f"client sent ERROR {code}" + (f": {msg}" if msg else "")
        self.deadline = math.inf

    def silence_limit(self) -> float:
        """Seconds of silence allowed now: oack_giveup until the client is first heard from."""
        return self.giveup if self.heard else min(self.giveup, self.oack_giveup)

    def _check_giveup(self, now: float, waiting_for: str, giveup: float | None = None) -> bool:
        if now - self.last_progress >= (self.silence_limit() if giveup is None else giveup):
            self._fail(ErrorCode.NOT_DEFINED,
                       f"timed out waiting for {waiting_for} ({self.timeouts} retransmissions)")
            self.timed_out = True
            return True
        return False

    def _resend_at(self, now: float, giveup: float | None = None) -> float:
        """The next timer after a resend: backed off, but never past the give-up moment."""
        return min(now + self._backoff_rto(), self.last_progress + (self.silence_limit() if giveup is None else giveup))


class Sender(_Base):
    """Serves one RRQ: OACK (if options were asked for), then windows of DATA blocks."""

    def __init__(self, reader: BlockReader, size: int, neg: Negotiated, send: Send, now: float,
                 batch: int = 1, idle_max: float = math.inf, oack_giveup: float = math.inf) -> None:
        super().__init__(neg, send, now, idle_max, oack_giveup)
        # Blocks per send: >1 when the socket segments a buffer into datagrams of 4 + blksize
        # bytes (UDP GSO, Linux UDP_SEGMENT), so a whole window costs one system call.
        self.batch = batch
        self.reader = reader
        self.size = size
        self.window = neg.windowsize
        self.nblocks = size // neg.blksize + 1  # the last block is short, maybe empty
        self.acked = 0  # highest block acknowledged (absolute: no 16-bit wrap)
        self.next = 1  # next block to transmit
        self.win_end = 0  # last block of the current window
        self.sent_max = 0  # highest block ever transmitted (to count retransmissions)
        self.window_at = now
        self.window_clean = True  # no block of this window was sent before (Karn)
        self.final_ack_lost = False
        self.ahead: bytes = b""  # lock-step: DATA packet `ahead_no`, built while the client works
        self.ahead_no = 0

    @property
    def bytes_done(self) -> int:
        return min(self.acked * self.blksize, self.size)

    def unreachable(self, exc: OSError) -> None:
        if self.state == TRANSFERRING and self.sent_max >= self.nblocks:
            # Every block went out and the client closed its port: it got the last one and its
            # final ACK was lost (RFC 1350 section 6: the last ACK is never confirmed).
            self.acked = self.nblocks
            self.state = DONE
            self.final_ack_lost = True
            self.deadline = math.inf
        else:
            super().unreachable(exc)

    def start(self, now: float) -> None:
        if self.state == NEGOTIATING:
            self._xmit(encode_oack(self.neg.oack))
            self.last_send = now
            self.deadline = self._resend_at(now, self.oack_giveup)
        else:
            self._window(1, now)

    def _window(self, first: int, now: float) -> None:
        self.next = first
        end = first + self.window - 1
        self.win_end = end if end < self.nblocks else self.nblocks
        self.window_at = self.last_send = now
        self.window_clean = first > self.sent_max
        self.deadline = self._resend_at(now) if self.timeouts else now + self.rto
        self.pump()

    def pump(self) -> bool:
        """Transmit the rest of the current window; False if the socket buffer filled up."""
        first = n = self.next
        end, send = self.win_end, self.send
        try:
            while n <= end:
                if self.batch > 1 and n < end:
                    k = end - n + 1 if end - n < self.batch else self.batch
                    parts: list[bytes | memoryview] = []
                    for b in range(n, n + k):
                        parts += self._parts(b)
                    try:
                        send(b"".join(parts))  # only the file's last block is short: it ends the buffer
                    except OSError as exc:
                        if exc.errno not in _NO_GSO:
                            raise
                        self.batch = 1  # the device cannot segment: one datagram per send
                        continue
                    n += k
                    continue
                send(self._block(n))
                n += 1
        except BlockingIOError:
            self.blocked = True
            return False
        except OSError as exc:
            if isinstance(exc, ConnectionError):
                self.unreachable(exc)
            else:
                self._fail(ErrorCode.NOT_DEFINED, f"read error: {exc.strerror or exc}")
            return True
        finally:
            self.next = n
            sent_max = self.sent_max
            if first <= sent_max:  # blocks first..min(n - 1, sent_max) went out before
                self.retransmits += (n - 1 if n - 1 < sent_max else sent_max) - first + 1
            if n - 1 > sent_max:
                self.sent_max = n - 1
        self.blocked = False
        return True

    def lockstep_ack(self, pkt: bytes, now: float) -> bool:
        """The hot path of a lock-step (windowsize 1) transfer; False leaves `pkt` to on_packet.

        Handles only the ACK of the one block in flight when the next block is new: answered
        with a packet built while the client was busy, so the round trip (which bounds
        lock-step throughput) holds one compare and one send. Everything else (duplicates,
        errors, the last block, resends) takes the general path.
        """
        n = self.next  # block n - 1 is in flight, n is the one to send now
        if (self.acked + 2 != n or n != self.sent_max + 1 or n > self.nblocks or self.blocked
                or self.state is not TRANSFERRING or pkt != encode_ack(n - 1)):
            return False
        data = self.ahead if self.ahead_no == n else None
        try:
            if data is None:
                data = self._block(n)
            self.send(data)
        except OSError:
            return False  # the general path resends and reports the error
        if self.window_clean and now - self.sampled_at >= SAMPLE_EVERY:
            self._sample(now - self.window_at, now)
        self.heard = True
        self.acked = n - 1
        self.timeouts = 0
        self.last_progress = self.window_at = self.last_send = now
        self.win_end = self.sent_max = n
        self.next = n + 1
        self.window_clean = True
        self.deadline = now + self.rto
        if n < self.nblocks:
            try:
                self.ahead, self.ahead_no = self._block(n + 1), n + 1
            except OSError:
                self.ahead_no = 0  # read again (and fail properly) on the general path
        return True

    def _parts(self, n: int) -> tuple[bytes, memoryview | bytes]:
        """DATA block `n` as header and payload (the last block is short, maybe empty)."""
        pos = (n - 1) * self.blksize
        rest = self.size - pos
        return HEADER.pack(DATA, n & 0xFFFF), self.reader.view(pos, self.blksize if rest > self.blksize else rest)

    def _block(self, n: int) -> bytes:
        header, payload = self._parts(n)
        return header + payload

    def on_packet(self, pkt: bytes, now: float) -> None:
        if len(pkt) < 4 or pkt[0]:
            return
        op = pkt[1]
        if op == ACK:
            self.heard = True  # from the TID we chose at random: a forged source cannot see it
            self._on_ack((pkt[2] << 8) | pkt[3], now)
        elif op == ERROR:
            if self.active:
                self._on_error(pkt)
        # Anything else from the client's TID is ignored: a stray packet must not end a boot.

    def _on_ack(self, block: int, now: float) -> None:
        if self.state == TRANSFERRING:
            delta = (block - self.acked) & 0xFFFF  # 16-bit block numbers roll over
            if delta == 0:
                # Duplicate: the client is stuck (resend) or the network echoed (ignore).
                if now - self.last_send >= self._dup_gap():
                    self._window(self.acked + 1, now)
                return
            if delta > self.next - 1 - self.acked:
                return  # older than what is acknowledged, or beyond what was sent
            self.acked += delta
            if self.acked == self.win_end and self.window_clean and now - self.sampled_at >= SAMPLE_EVERY:
                self._sample(now - self.window_at, now)
            self.timeouts = 0
            self.last_progress = now
            if self.acked >= self.nblocks:
                self.state = DONE
                self.deadline = math.inf
                return
            # Window complete, or the client saw a gap after `acked`: go on from there at once.
            self._window(self.acked + 1, now)
        elif self.state == NEGOTIATING and block == 0:
            self._negotiated(now)
            self._window(1, now)

    def begin_data(self, now: float) -> None:
        """After take_oack_ack, when the data phase stays here after all: send block 1."""
        self._window(1, now)

    def take_oack_ack(self, pkt: bytes, now: float) -> bool:
        """If `pkt` is the ACK of our OACK, go to TRANSFERRING without sending block 1: the
        data phase runs elsewhere (pump.py)."""
        if self.state is NEGOTIATING and pkt == encode_ack(0):
            self.heard = True
            self._negotiated(now)
            self.deadline = math.inf
            return True
        return False

    def _negotiated(self, now: float) -> None:
        if self.timeouts == 0:
            self._sample(now - self.last_send, now)
        self.state = TRANSFERRING
        self.timeouts = 0
        self.last_progress = now

    def on_timer(self, now: float) -> None:
        if not self.active or now < self.deadline:
            return
        if self.state == NEGOTIATING:
            if self._check_giveup(now, "ACK of the OACK", self.oack_giveup):
                self.ended_in_negotiation = True
                return
        elif self._check_giveup(now, f"ACK of block {self.acked + 1}"):
            return
        self.timeouts += 1
        if self.state == NEGOTIATING:
            self.retransmits += 1
            if self._xmit(encode_oack(self.neg.oack)):
                self.last_send = now
                self.deadline = self._resend_at(now, self.oack_giveup)
        else:
            self._window(self.acked + 1, now)


Write = Callable[[int, memoryview], None]


class Receiver(_Base):
    """Takes one WRQ, lock-step (RFC 1350): ACK each block, re-ACK a retransmitted one."""

    def __init__(self, write: Write, neg: Negotiated, send: Send, now: float, max_size: int,
                 finish: Callable[[], None] | None = None, idle_max: float = math.inf,
                 oack_giveup: float = math.inf) -> None:
        super().__init__(neg, send, now, idle_max, oack_giveup)
        self.write = write
        # Stores the complete upload. Called before the final ACK, so a client that sees its
        # last block acknowledged knows the file is in place (and gets ERROR 6 if it is not).
        self.finish = finish
        self.max_size = max_size
        self.expected = 1
        self.received = 0
        self.last_reply = encode_oack(neg.oack) if neg.oack else encode_ack(0)

    @property
    def bytes_done(self) -> int:
        return self.received

    def start(self, now: float) -> None:
        # The OACK (or ACK 0) invites block 1 (RFC 2347); it counts as negotiated from here.
        self.state = TRANSFERRING
        self._reply(self.last_reply, now)

    def _reply(self, pkt: bytes, now: float) -> None:
        self.last_reply = pkt
        if self._xmit(pkt):
            self.last_send = now
            self.deadline = self._resend_at(now)

    def on_packet(self, pkt: bytes, now: float) -> None:
        if len(pkt) < 4 or pkt[0]:
            return
        op = pkt[1]
        if op == ERROR:
            if self.active:
                self._on_error(pkt)
            return
        if op != DATA:
            return
        # From the TID we chose at random: a forged source cannot see it. Until then a silent
        # "client" is dropped after oack_giveup (a forged WRQ held its slot for idle_max).
        self.heard = True
        block = (pkt[2] << 8) | pkt[3]
        if self.state == DONE:
            if block == (self.expected - 1) & 0xFFFF:
                self._xmit(self.last_reply)  # our final ACK was lost
            return
        if self.state != TRANSFERRING:
            return
        if block == self.expected & 0xFFFF:
            payload = memoryview(pkt)[4:]
            if len(payload) > self.blksize:
                self._fail(ErrorCode.ILLEGAL_OPERATION, f"block of {len(payload)} bytes exceeds blksize {self.blksize}")
                return
            if self.received + len(payload) > self.max_size:
                self._fail(ErrorCode.DISK_FULL, f"upload larger than {self.max_size} bytes")
                return
            try:
                self.write(self.received, payload)
            except OSError as exc:
                self._fail(ErrorCode.DISK_FULL, f"cannot write upload: {exc.strerror or exc}")
                return
            if self.expected == 1 and self.timeouts == 0:
                self._sample(now - self.last_send, now)
            self.received += len(payload)
            self.timeouts = 0
            self.last_progress = now
            self.expected += 1
            if len(payload) < self.blksize and self.finish is not None:
                try:
                    self.finish()
                except FileExistsError:
                    self._fail(ErrorCode.FILE_EXISTS, "file already exists")
                    return
                except OSError as exc:
                    self._fail(ErrorCode.DISK_FULL, f"cannot store upload: {exc.strerror or exc}")
                    return
            self._reply(encode_ack(block), now)
            if len(payload) < self.blksize:
                self.state = DONE
                self.deadline = math.inf
                self.linger_until = now + DALLY_SECONDS
        elif block == (self.expected - 1) & 0xFFFF and now - self.last_send >= self._dup_gap():
            self._xmit(self.last_reply)  # our ACK was lost; not re-sent for an echo (SAS)

    def on_timer(self, now: float) -> None:
        if not self.active or now < self.deadline:
            return
        if self._check_giveup(now, f"DATA block {self.expected}"):
            return
        self.timeouts += 1
        self.retransmits += 1
        self._reply(self.last_reply, now)
