"""The socket-free transfer state machines: windows, loss, duplicates, rollover, timers."""

from __future__ import annotations

import errno
import hashlib
import math
import os

import pytest

from pxetui.tftp.options import Negotiated
from pxetui.tftp.packets import (
    Ack,
    Data,
    Error,
    OAck,
    encode_ack,
    encode_data,
    encode_error,
    parse,
)
from pxetui.tftp.session import (
    DONE,
    FAILED,
    GIVEUP_SECONDS,
    NEGOTIATING,
    RTO_MIN,
    TRANSFERRING,
    BytesReader,
    FdReader,
    Receiver,
    Sender,
)


class Wire:
    """Collects what a session sends; `send` can be told to fail."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.fail: type[OSError] | None = None

    def send(self, pkt: bytes | memoryview) -> None:
        if self.fail is not None:
            raise self.fail()
        self.out.append(bytes(pkt))

    def take(self) -> list[Data | Ack | Error | OAck]:
        pkts = [parse(p) for p in self.out]
        self.out.clear()
        return pkts  # type: ignore[return-value]


def blocks(pkts: list) -> list[int]:
    return [p.block for p in pkts if isinstance(p, Data)]


def sender(data: bytes, blksize: int = 512, window: int = 1, oack: dict | None = None,
           timeout: int | None = None) -> tuple[Sender, Wire]:
    wire = Wire()
    neg = Negotiated(blksize=blksize, windowsize=window, timeout=timeout, oack=oack or {})
    s = Sender(BytesReader(data), len(data), neg, wire.send, 0.0)
    s.start(0.0)
    return s, wire


def run_to_end(s: Sender, wire: Wire, now: float = 1.0) -> bytes:
    """A well-behaved RFC 7440 client: ACK the last block of each window."""
    got: dict[int, bytes] = {}
    for _ in range(200000):
        pkts = wire.take()
        if not pkts:
            break
        last = None
        for p in pkts:
            if isinstance(p, Data):
                got[len(got) + 1] = p.payload
                last = p.block
        assert last is not None
        now += 0.001
        s.on_packet(encode_ack(last), now)
    assert s.state == DONE
    return b"".join(got[i] for i in sorted(got))


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 5000, 1024])
def test_lock_step_sends_every_byte_and_a_short_last_block(size):
    data = os.urandom(size)
    s, wire = sender(data)
    assert s.state == TRANSFERRING  # no options: DATA 1 at once (RFC 1350)
    assert run_to_end(s, wire) == data
    assert s.bytes_done == size and s.retransmits == 0


def test_oack_then_ack0_starts_data():
    s, wire = sender(b"x" * 2000, blksize=1000, oack={"blksize": 1000, "tsize": 2000})
    assert s.state == NEGOTIATING
    (oack,) = wire.take()
    assert isinstance(oack, OAck) and oack.options == {"blksize": "1000", "tsize": "2000"}
    s.on_packet(encode_ack(0), 0.01)
    assert blocks(wire.take()) == [1]


def test_ovmf_size_probe_ends_without_data():
    # EDK2 asks for tsize, reads the OACK, answers ERROR 8 and asks again (docs/FIELD-NOTES.md).
    s, wire = sender(b"x" * 5000, oack={"tsize": 5000})
    wire.take()
    s.on_packet(encode_error(8, "tsize probe"), 0.01)
    assert s.state == FAILED and s.peer_error and s.ended_in_negotiation and s.error_code == 8
    assert wire.take() == []


def test_window_sends_windowsize_blocks_then_waits():
    s, wire = sender(os.urandom(512 * 10 + 5), window=4, oack={"windowsize": 4})
    wire.take()
    s.on_packet(encode_ack(0), 0.01)
    assert blocks(wire.take()) == [1, 2, 3, 4]
    s.on_packet(encode_ack(4), 0.02)
    assert blocks(wire.take()) == [5, 6, 7, 8]


def test_ack_of_an_earlier_block_resends_from_the_gap_at_once():
    s, wire = sender(os.urandom(512 * 20), window=4)
    assert blocks(wire.take()) == [1, 2, 3, 4]
    s.on_packet(encode_ack(2), 0.01)  # the client got 1, 2 and saw a gap
    assert blocks(wire.take()) == [3, 4, 5, 6]
    assert s.retransmits == 2


def test_duplicate_ack_echo_is_not_answered_sorcerers_apprentice():
    s, wire = sender(os.urandom(512 * 20))
    wire.take()
    s.on_packet(encode_ack(1), 0.100)
    assert blocks(wire.take()) == [2]
    s.on_packet(encode_ack(1), 0.1001)  # the same ACK, delivered twice
    assert wire.take() == []
    assert s.retransmits == 0


def test_duplicate_ack_from_a_stuck_client_resends():
    s, wire = sender(os.urandom(512 * 20))
    wire.take()
    s.on_packet(encode_ack(1), 0.100)
    wire.take()
    s.on_packet(encode_ack(1), 0.600)  # the client timed out waiting for block 2
    assert blocks(wire.take()) == [2]
    assert s.retransmits == 1


def test_stale_and_future_acks_are_ignored():
    s, wire = sender(os.urandom(512 * 20), window=4)
    wire.take()
    s.on_packet(encode_ack(4), 0.01)
    wire.take()
    s.on_packet(encode_ack(3), 0.02)  # older than what is acknowledged
    s.on_packet(encode_ack(60), 0.02)  # never sent
    assert wire.take() == [] and s.acked == 4


def test_timeout_resends_window_from_first_unacked_with_backoff():
    s, wire = sender(os.urandom(512 * 20), window=4)
    wire.take()
    s.on_packet(encode_ack(2), 0.01)
    wire.take()
    first = s.deadline
    s.on_timer(first - 0.001)  # early: nothing
    assert wire.take() == []
    s.on_timer(first)
    assert blocks(wire.take()) == [3, 4, 5, 6]
    assert s.deadline - first > first - 0.01  # the wait doubled
    assert s.retransmits == 2 + 4  # 3, 4 after the gap; 3..6 after the timeout


def test_gives_up_after_silence_and_tells_the_client():
    s, wire = sender(os.urandom(512 * 4))
    now = 0.0
    for _ in range(200):
        now = s.deadline
        s.on_timer(now)
        if s.state == FAILED:
            break
    # At the give-up moment itself, not at the next backed-off resend after it.
    assert s.state == FAILED and now == pytest.approx(GIVEUP_SECONDS) and s.timed_out
    assert "timed out" in s.reason
    err = wire.take()[-1]
    assert isinstance(err, Error) and err.code == 0


def silent_until_failed(s: Sender | Receiver) -> tuple[float, list[float]]:
    """Fire every timer of a client that never answers; (when it failed, the resend gaps)."""
    now, gaps = 0.0, []
    for _ in range(1000):
        before, now = now, s.deadline
        s.on_timer(now)
        gaps.append(now - before)
        if s.state == FAILED:
            return now, gaps
    raise AssertionError("never gave up")


def test_timeout_255_is_accepted_but_a_silent_client_is_dropped_within_idle_max():
    # RFC 2349 allows 1..255 s; echoed in the OACK, but the slot is freed within idle_max.
    wire = Wire()
    s = Sender(BytesReader(b"x" * 2048), 2048, Negotiated(timeout=255, oack={"timeout": 255}),
               wire.send, 0.0, idle_max=30.0, oack_giveup=5.0)
    s.start(0.0)
    oack = wire.take()[0]
    assert isinstance(oack, OAck) and oack.options == {"timeout": "255"}
    s.on_packet(encode_ack(0), 0.0)  # OACK acknowledged: the data phase
    assert s.state == TRANSFERRING and s.rto_cap <= 10.0
    failed, gaps = silent_until_failed(s)
    assert failed == pytest.approx(30.0) and max(gaps) <= 10.0 + 1e-9 and len(gaps) >= 4
    assert s.timed_out and "ACK of block 1" in s.reason


def test_a_client_that_never_acknowledges_the_oack_is_dropped_after_oack_giveup():
    s = Sender(BytesReader(b"x" * 2048), 2048, Negotiated(timeout=255, oack={"timeout": 255}),
               Wire().send, 0.0, idle_max=30.0, oack_giveup=5.0)
    s.start(0.0)
    failed, _ = silent_until_failed(s)
    assert failed == pytest.approx(5.0) and s.ended_in_negotiation
    assert s.timed_out and "ACK of the OACK" in s.reason


def test_block_one_never_acknowledged_is_dropped_after_oack_giveup():
    # No options, no OACK: block 1 goes out at once. Until an ACK comes from the client's TID
    # the source may be forged (docs/SECURITY.md): oack_giveup, not idle_max, bounds it.
    wire = Wire()
    s = Sender(BytesReader(b"x" * 2048), 2048, Negotiated(), wire.send, 0.0, idle_max=30.0, oack_giveup=5.0)
    s.start(0.0)
    failed, _ = silent_until_failed(s)
    assert failed == pytest.approx(5.0) and s.timed_out and not s.heard
    assert "ACK of block 1" in s.reason and not s.ended_in_negotiation
    assert blocks(wire.take()) == [1, 1, 1]  # sent at 0, 1 and 3 s


@pytest.mark.parametrize("fast_path", [False, True])
def test_once_heard_from_a_silent_client_gets_the_idle_limit(fast_path):
    wire = Wire()
    s = Sender(BytesReader(b"x" * 2048), 2048, Negotiated(), wire.send, 0.0, idle_max=30.0, oack_giveup=5.0)
    s.start(0.0)
    if not (fast_path and s.lockstep_ack(encode_ack(1), 0.5)):
        assert not fast_path, "the fast path took no ACK"
        s.on_packet(encode_ack(1), 0.5)
    assert s.heard and s.acked == 1
    failed, _ = silent_until_failed(s)
    assert failed == pytest.approx(0.5 + GIVEUP_SECONDS) and "ACK of block 2" in s.reason


def test_an_upload_from_a_silent_client_is_dropped_within_idle_max():
    r = Receiver(lambda pos, data: None, Negotiated(timeout=200, oack={"timeout": 200}),
                 Wire().send, 0.0, 1 << 20, idle_max=12.0)
    r.start(0.0)
    failed, gaps = silent_until_failed(r)
    assert failed == pytest.approx(12.0) and max(gaps) <= 4.0 + 1e-9


def test_an_upload_never_started_is_dropped_after_oack_giveup():
    # A WRQ from a forged source: no block 1 ever comes from the client's TID (docs/SECURITY.md).
    wire = Wire()
    r = Receiver(lambda pos, data: None, Negotiated(), wire.send, 0.0, 1 << 20, idle_max=30.0, oack_giveup=5.0)
    r.start(0.0)
    failed, _ = silent_until_failed(r)
    assert failed == pytest.approx(5.0) and r.timed_out and not r.heard
    assert "DATA block 1" in r.reason


def test_an_upload_once_started_gets_the_idle_limit():
    r = Receiver(lambda pos, data: None, Negotiated(), Wire().send, 0.0, 1 << 20, idle_max=30.0, oack_giveup=5.0)
    r.start(0.0)
    r.on_packet(encode_data(1, b"x" * 512), 0.5)
    assert r.heard and r.received == 512
    failed, _ = silent_until_failed(r)
    assert failed == pytest.approx(0.5 + r.giveup) and r.giveup > 5.0 and "DATA block 2" in r.reason


def test_begin_data_sends_block_one_after_the_oack_was_taken_elsewhere():
    wire = Wire()
    s = Sender(BytesReader(b"y" * 1000), 1000, Negotiated(blksize=512, oack={"blksize": 512}), wire.send, 0.0)
    s.start(0.0)
    assert s.take_oack_ack(encode_ack(0), 0.1) and s.state == TRANSFERRING
    wire.take()
    s.begin_data(0.1)
    assert blocks(wire.take()) == [1]


def test_rto_adapts_to_round_trips():
    s, wire = sender(os.urandom(512 * 4000))
    now = 0.0
    for _ in range(50):
        wire.take()
        now += 0.3
        s.on_packet(encode_ack(s.acked + 1), now)
    slow = s.rto
    assert slow >= 0.3
    for _ in range(3000):  # RTT is sampled at most every 10 ms
        wire.take()
        now += 0.0005
        s.on_packet(encode_ack(s.acked + 1), now)
    assert s.rto < slow and s.rto >= RTO_MIN


def test_client_timeout_option_caps_the_wait():
    s, wire = sender(os.urandom(512 * 4), timeout=1)
    for _ in range(5):
        before = s.deadline
        s.on_timer(before)
        assert s.deadline - before <= 1.0 + 1e-9


def test_block_numbers_roll_over():
    data = os.urandom(8 * 70000 + 3)  # 70001 blocks of 8 bytes
    s, wire = sender(data, blksize=8, window=16)
    assert hashlib.sha256(run_to_end(s, wire)).digest() == hashlib.sha256(data).digest()
    assert s.acked == 70001


def test_full_socket_buffer_pauses_and_resumes():
    s, wire = sender(os.urandom(512 * 20), window=8)
    assert len(wire.take()) == 8
    wire.fail = BlockingIOError
    s.on_packet(encode_ack(8), 0.01)
    assert s.blocked and wire.take() == []
    wire.fail = None
    assert s.pump()
    assert blocks(wire.take()) == list(range(9, 17))


def test_unreachable_client_fails_without_error_packet():
    s, wire = sender(os.urandom(512 * 20))
    wire.take()
    wire.fail = ConnectionRefusedError
    s.on_packet(encode_ack(1), 0.01)
    assert s.state == FAILED and "unreachable" in s.reason


def test_client_error_ends_transfer():
    s, wire = sender(os.urandom(512 * 20))
    s.on_packet(encode_error(3, "disk full"), 0.01)
    assert s.state == FAILED and s.peer_error and s.reason == "client sent ERROR 3: disk full"
    assert not s.ended_in_negotiation and math.isinf(s.deadline)


def test_fd_reader_serves_a_byte_range(tmp_path):
    blob = os.urandom(300000)
    (tmp_path / "iso").write_bytes(blob)
    fd = os.open(tmp_path / "iso", os.O_RDONLY)
    try:
        r = FdReader(fd, 1000, 200000)  # a "file" at offset 1000 inside the image
        assert bytes(r.view(0, 10)) == blob[1000:1010]
        assert bytes(r.view(199990, 10)) == blob[200990:201000]
        assert bytes(r.view(5, 10)) == blob[1005:1015]  # going back re-reads
        short = FdReader(fd, 0, 400000)  # claims more than the file holds
        with pytest.raises(OSError, match="shrank"):
            short.view(299000, 2000)
    finally:
        os.close(fd)


# -- uploads ---------------------------------------------------------------------------------
def receiver(blksize: int = 512, oack: dict | None = None, max_size: int = 1 << 20):
    wire, store = Wire(), bytearray()

    def write(pos: int, data: memoryview) -> None:
        store[pos:pos + len(data)] = data

    r = Receiver(write, Negotiated(blksize=blksize, oack=oack or {}), wire.send, 0.0, max_size)
    r.start(0.0)
    return r, wire, store


def test_receiver_acks_each_block_and_finishes_on_short_block():
    r, wire, store = receiver()
    assert wire.take() == [Ack(0)]
    data = os.urandom(1300)
    for i, off in enumerate(range(0, 1536, 512), start=1):
        r.on_packet(encode_data(i, data[off:off + 512]), 0.01 * i)
        assert wire.take() == [Ack(i)]
    assert r.state == DONE and bytes(store) == data and r.linger_until > 0


def test_receiver_reacks_a_retransmitted_block_only_when_stuck():
    r, wire, _ = receiver()
    wire.take()
    r.on_packet(encode_data(1, b"a" * 512), 0.01)
    wire.take()
    r.on_packet(encode_data(1, b"a" * 512), 0.0101)  # echo: ignored
    assert wire.take() == []
    r.on_packet(encode_data(1, b"a" * 512), 2.0)  # our ACK was lost
    assert wire.take() == [Ack(1)]
    assert r.received == 512


def test_receiver_refuses_oversize_upload():
    r, wire, _ = receiver(max_size=600)
    wire.take()
    r.on_packet(encode_data(1, b"a" * 512), 0.01)
    r.on_packet(encode_data(2, b"a" * 512), 0.02)
    assert r.state == FAILED and r.error_code == 3
    assert parse(wire.out[-1]).__class__ is Error


def test_upload_is_stored_before_the_final_ack():
    """The client must not see its last block acknowledged unless the file is in place."""
    wire, stored = Wire(), []
    r = Receiver(lambda pos, data: None, Negotiated(blksize=512), wire.send, 0.0, 1 << 20,
                 finish=lambda: stored.append(True))
    r.start(0.0)
    wire.take()
    r.on_packet(encode_data(1, b"a" * 512), 0.01)
    assert stored == [] and wire.take() == [Ack(1)]
    r.on_packet(encode_data(2, b"a" * 10), 0.02)
    assert stored == [True] and wire.take() == [Ack(2)] and r.state == DONE

    def exists() -> None:
        raise FileExistsError

    wire = Wire()
    r = Receiver(lambda pos, data: None, Negotiated(blksize=512), wire.send, 0.0, 1 << 20, finish=exists)
    r.start(0.0)
    wire.take()
    r.on_packet(encode_data(1, b"a" * 10), 0.01)
    assert r.state == FAILED and r.error_code == 6
    (err,) = [parse(p) for p in wire.out[-1:]]
    assert isinstance(err, Error) and Ack(1) not in wire.take()


def test_lost_final_ack_then_closed_port_counts_as_finished():
    s, wire = sender(os.urandom(512 * 3 + 10), window=4)
    assert blocks(wire.take()) == [1, 2, 3, 4]  # all of it; the client's ACK 4 is lost
    s.unreachable(ConnectionRefusedError())  # ICMP port unreachable on our resend
    assert s.state == DONE and s.final_ack_lost and s.bytes_done == 512 * 3 + 10


def test_closed_port_before_the_end_is_a_failure():
    s, wire = sender(os.urandom(512 * 10), window=4)
    wire.take()
    s.unreachable(ConnectionRefusedError())
    assert s.state == FAILED and "unreachable" in s.reason


def test_gso_batches_a_window_into_one_send_of_whole_segments():
    data = os.urandom(512 * 6 + 100)
    raw: list[bytes] = []
    s = Sender(BytesReader(data), len(data), Negotiated(blksize=512, windowsize=8), raw.append, 0.0, batch=4)
    s.start(0.0)
    assert [len(b) for b in raw] == [4 * 516, 2 * 516 + 104]  # the short last block ends a buffer
    segs = [b[i:i + 516] for b in raw for i in range(0, len(b), 516)]
    assert [parse(x) for x in segs] == [Data(i + 1, data[i * 512:(i + 1) * 512]) for i in range(7)]


def test_gso_refused_by_the_device_falls_back_to_one_datagram_per_send():
    data = os.urandom(512 * 6)
    raw: list[bytes] = []

    def send(b: bytes | memoryview) -> None:
        if len(b) > 516:
            raise OSError(errno.EIO, "no checksum offload")
        raw.append(bytes(b))

    s = Sender(BytesReader(data), len(data), Negotiated(blksize=512, windowsize=4), send, 0.0, batch=4)
    s.start(0.0)
    assert s.batch == 1 and [parse(b).block for b in raw] == [1, 2, 3, 4]


def _lockstep_client(s: Sender, wire: Wire, fast: bool, drop_every: int = 0) -> tuple[bytes, list[int]]:
    """Lock-step client; with `fast`, ACKs go through lockstep_ack first, as the server does.
    Every `drop_every`-th new block is lost once (the timer resends it)."""
    got, sent, now, expect, dropped = bytearray(), [], 1.0, 1, set()
    for _ in range(100_000):
        pkts = wire.take()
        if s.state != TRANSFERRING:
            break
        if not pkts:
            now += 5.0
            s.on_timer(now)
            continue
        (p,) = pkts
        assert isinstance(p, Data)
        sent.append(p.block)
        if drop_every and p.block % drop_every == 0 and p.block not in dropped:
            dropped.add(p.block)
            continue
        if p.block == expect & 0xFFFF:
            got += p.payload
            expect += 1
        now += 0.0001
        ack = encode_ack(p.block)
        if not (fast and s.lockstep_ack(ack, now)):
            s.on_packet(ack, now)
    return bytes(got), sent


@pytest.mark.parametrize("drop_every", [0, 7])
@pytest.mark.parametrize("size", [0, 511, 512, 70_000])
def test_lockstep_fast_path_matches_the_general_path(size, drop_every):
    """The hot path (lockstep_ack) sends exactly what on_packet would, loss included."""
    data = os.urandom(size)
    runs = []
    for fast in (False, True):
        s, wire = sender(data)
        got, sent = _lockstep_client(s, wire, fast, drop_every)
        assert s.state == DONE and got == data
        runs.append((sent, s.retransmits, s.bytes_done))
    assert runs[0] == runs[1]
    assert runs[1][1] == (len(data) // 512 + 1) // drop_every if drop_every else runs[1][1] == 0


def test_lockstep_fast_path_leaves_the_rest_to_on_packet():
    s, wire = sender(b"x" * 2000)
    wire.take()
    assert not s.lockstep_ack(encode_ack(0), 1.0)  # a duplicate of nothing new
    assert not s.lockstep_ack(encode_error(0, "bye"), 1.0)
    assert s.lockstep_ack(encode_ack(1), 1.0) and blocks(wire.take()) == [2]
    assert s.lockstep_ack(encode_ack(2), 1.0) and blocks(wire.take()) == [3]
    assert s.lockstep_ack(encode_ack(3), 1.0) and blocks(wire.take()) == [4]  # the short last block
    assert not s.lockstep_ack(encode_ack(4), 1.0)  # the end: on_packet finishes it
    s.on_packet(encode_ack(4), 1.0)
    assert s.state == DONE


def test_lockstep_fast_path_rolls_over():
    data = os.urandom(8 * 65536 + 80)  # 65,547 blocks of 8 bytes
    s, wire = sender(data, blksize=8)
    got, sent = _lockstep_client(s, wire, fast=True)
    assert got == data and sent[65534:65536] == [65535, 0]
