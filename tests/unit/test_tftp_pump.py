"""The C lock-step pump (_pump.c) against a scripted client over loopback UDP.

Each test runs serve() in a thread, as pump.py does, and plays the client here: loss, echoes,
errors, a vanished client, a file that shrinks, block numbers past 65535.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from netns import require

from pxetui.tftp import pump

require(pump._pump is not None,
        "pxetui.tftp._pump is not built (setup.py's extension; needs gcc and python3-dev)")
_pump = pump._pump

ACK = struct.Struct("!HH")


class Run:
    """serve() in a thread over a connected pair of loopback sockets; the test is the client."""

    def __init__(self, path: Path, blksize: int, offset: int = 0, size: int | None = None,
                 rto: float = 0.05, rto_cap: float = 0.5, giveup: float = 5.0,
                 first_giveup: float | None = None) -> None:
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.srv.bind(("127.0.0.1", 0))
        self.cli.bind(("127.0.0.1", 0))
        self.srv.connect(self.cli.getsockname())
        self.cli.connect(self.srv.getsockname())
        self.srv.setblocking(False)  # as the event loop leaves it; serve() must cope
        self.cli.settimeout(5)
        self.fd = os.open(path, os.O_RDONLY)
        self.stats = array("q", [0, 0, 0, 0])
        size = os.fstat(self.fd).st_size - offset if size is None else size
        self.args = (self.srv.fileno(), self.fd, offset, size, blksize, self.stats, rto, rto_cap, giveup,
                     giveup if first_giveup is None else first_giveup)
        self.result: tuple | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.result = _pump.serve(*self.args)

    def recv(self) -> tuple[int, bytes]:
        pkt = self.cli.recv(70000)
        assert pkt[:2] == b"\0\3", f"expected DATA, got {pkt[:4]!r}"
        return (pkt[2] << 8) | pkt[3], pkt[4:]

    def ack(self, block: int) -> None:
        self.cli.send(ACK.pack(4, block & 0xFFFF))

    def outcome(self, timeout: float = 10) -> pump.Outcome:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "serve() did not return"
        assert self.result is not None
        code, acked, retrans, peer, msg, lost = self.result
        return pump.Outcome(code, acked, retrans, peer, msg.decode(), lost)

    def close(self) -> None:
        if self.thread.is_alive():
            self.stats[2] = 1
            self.srv.shutdown(socket.SHUT_RD)
            self.thread.join(5)
        for s in (self.srv, self.cli):
            s.close()
        os.close(self.fd)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    made: list[Run] = []
    yield made
    for r in made:
        r.close()


@pytest.fixture
def serve(tmp_path: Path, runs: list[Run]) -> Callable[..., Run]:
    """serve(content, blksize, **timers): the file written, serve() running, cleanup arranged."""

    def start(content: bytes, blksize: int, **kw: float) -> Run:
        (tmp_path / "f").write_bytes(content)
        r = Run(tmp_path / "f", blksize, **kw)  # type: ignore[arg-type]
        runs.append(r)
        return r

    return start


def incoming(run: Run, quiet: float, limit: int = 1000) -> Iterator[tuple[int, bytes]]:
    """DATA packets as they come, until none for `quiet` seconds (at most `limit`)."""
    run.cli.settimeout(quiet)
    for _ in range(limit):
        try:
            yield run.recv()
        except TimeoutError:
            return


def fetch(run: Run, blksize: int, limit: int = 200_000) -> bytes:
    """A well-behaved lock-step client: ACK each new block, stop after the short one."""
    out, expect = bytearray(), 1
    for _ in range(limit):
        block, data = run.recv()
        if block == expect & 0xFFFF:
            out += data
            run.ack(block)
            expect += 1
            if len(data) < blksize:
                return bytes(out)
    raise AssertionError("client loop bound reached")


def test_serves_a_file_byte_exact(serve):
    data = os.urandom(300_000)
    r = serve(data, 1428)
    assert fetch(r, 1428) == data
    out = r.outcome()
    assert (out.code, out.acked, out.retransmits, out.final_ack_lost) == (pump.DONE, 300_000 // 1428 + 1, 0, False)
    assert r.stats[0] == out.acked and r.stats[3] > 0  # progress and a round-trip estimate were published


def test_exact_multiple_ends_with_an_empty_block(serve):
    r = serve(b"x" * 1024, 512)
    blocks = [r.recv() for _ in range(1)]
    r.ack(1)
    blocks.append(r.recv())
    r.ack(2)
    blocks.append(r.recv())
    r.ack(3)
    assert [(b, len(d)) for b, d in blocks] == [(1, 512), (2, 512), (3, 0)]
    assert r.outcome().code == pump.DONE


def test_block_numbers_roll_over(serve):
    data = os.urandom(8 * 65536 + 800)  # 65,637 blocks of 8 bytes: block 65536 goes out as 0
    r = serve(data, 8)
    assert hashlib.sha256(fetch(r, 8)).digest() == hashlib.sha256(data).digest()
    out = r.outcome()
    assert out.code == pump.DONE and out.acked == 65_637


def test_a_range_inside_a_bigger_file(tmp_path, runs):
    data = os.urandom(200_000)
    (tmp_path / "iso").write_bytes(data)
    r = Run(tmp_path / "iso", 1000, offset=12_345, size=100_000)
    runs.append(r)
    assert fetch(r, 1000) == data[12_345:112_345]


def test_lost_block_is_resent_after_the_timeout(serve):
    data = os.urandom(20_000)
    r = serve(data, 1000, rto=0.05)
    out, expect, dropped = bytearray(), 1, 0
    for _ in range(200):
        block, payload = r.recv()
        if block == expect and expect % 5 == 0 and dropped < expect // 5:
            dropped += 1  # pretend block 5, 10, 15... got lost once: no ACK
            continue
        if block == expect:
            out += payload
            r.ack(block)
            expect += 1
            if len(payload) < 1000:
                break
    assert bytes(out) == data
    res = r.outcome()
    assert res.code == pump.DONE and res.retransmits == dropped == 4


def test_echoed_acks_do_not_double_the_traffic(serve):
    """Sorcerer's Apprentice (RFC 1123 4.2.3.1): a duplicate ACK right after our send is an
    echo, not a loss; answering it would send every block twice from then on."""
    data = os.urandom(50_000)
    r = serve(data, 1000)
    got: list[int] = []
    expect = 1
    for block, payload in incoming(r, 5.0):
        got.append(block)
        if block == expect:
            r.ack(block)
            r.ack(block)  # every ACK arrives twice
            expect += 1
            if len(payload) < 1000:
                break
    assert r.outcome().code == pump.DONE
    assert got == list(range(1, 51 + 1)), "a block was sent twice"


def test_duplicate_ack_after_a_while_resends_before_the_timer(serve):
    """A client that re-ACKs the previous block well after our send lost the block: resend
    then, not at the timer. With a 0.5 s round trip the timer waits 1.5 s (srtt + 4 rttvar)
    and a duplicate counts as an echo for 2 srtt = 1 s."""
    r = serve(os.urandom(5000), 1000, rto=1.0, rto_cap=3.0)
    assert r.recv()[0] == 1
    time.sleep(0.5)
    r.ack(1)
    assert r.recv()[0] == 2
    sent = time.monotonic()
    time.sleep(1.05)
    r.ack(1)
    assert r.recv()[0] == 2
    assert time.monotonic() - sent < 1.45, "resent by the timer, not for the duplicate ACK"
    expect = 2
    for _ in range(50):
        r.ack(expect)
        if expect == 6:
            break
        block, _ = r.recv()
        expect = block if block == expect + 1 else expect
    out = r.outcome()
    assert out.code == pump.DONE and out.retransmits >= 1


def test_client_error_ends_it(serve):
    r = serve(os.urandom(5000), 1000)
    r.recv()
    r.cli.send(b"\0\5\0\3disk full\0")
    out = r.outcome()
    assert (out.code, out.peer_code, out.message) == (pump.PEER_ERROR, 3, "disk full")


def test_undecodable_error_text_is_kept_as_bytes(serve):
    r = serve(os.urandom(5000), 1000)
    r.recv()
    r.cli.send(b"\0\5\0\0\xff\xfe\0")
    r.thread.join(5)
    assert r.result is not None
    code, _acked, _retransmits, peer, msg, _lost = r.result
    assert (code, peer, msg) == (pump.PEER_ERROR, 0, b"\xff\xfe")


def test_vanished_client_mid_transfer_is_unreachable(serve):
    r = serve(os.urandom(50_000), 1000, rto=0.05)
    r.recv()
    r.ack(1)
    r.recv()
    r.cli.close()  # port closed: the resend draws ICMP port unreachable
    out = r.outcome()
    assert out.code == pump.UNREACHABLE and out.acked == 1


def test_final_ack_lost_counts_as_done(serve):
    """RFC 1350 section 6: the last ACK is never confirmed; a client that has the short block
    may leave before its ACK arrives."""
    r = serve(os.urandom(2500), 1000, rto=0.05)
    for b in (1, 2):
        r.recv()
        r.ack(b)
    assert len(r.recv()[1]) == 500
    r.cli.close()
    out = r.outcome()
    assert out.code == pump.DONE and out.final_ack_lost and out.acked == 3


def test_silent_client_times_out(serve):
    r = serve(os.urandom(5000), 1000, rto=0.05, rto_cap=0.1, giveup=0.5)
    t0 = time.monotonic()
    out = r.outcome()
    assert out.code == pump.TIMEOUT and "ACK of block 1" in out.message
    assert out.retransmits >= 3 and time.monotonic() - t0 < 5


def test_a_client_never_heard_from_gets_first_giveup(serve):
    # Before its first ACK the client may be a forged source address (docs/SECURITY.md): the
    # short limit ends it (within the join's bound here, not after the 60 s give-up).
    r = serve(os.urandom(5000), 1000, rto=0.05, rto_cap=0.1, giveup=60, first_giveup=0.4)
    out = r.outcome()
    assert out.code == pump.TIMEOUT and out.acked == 0 and "ACK of block 1" in out.message


def test_after_the_first_ack_silence_is_held_to_giveup_only(serve):
    r = serve(os.urandom(3500), 1000, rto=0.05, rto_cap=0.1, giveup=30, first_giveup=0.3)
    assert r.recv()[0] == 1
    r.ack(1)
    time.sleep(1.0)  # silent for longer than first_giveup: a client once heard keeps its slot
    assert fetch_from(r, 2, 1000) == 3  # blocks 2.. (resends of 2 included), to the short one
    out = r.outcome()
    assert out.code == pump.DONE and out.acked == 4


def fetch_from(r: Run, expect: int, blksize: int) -> int:
    """ACK each new block from `expect` on until the short one; the blocks taken."""
    taken = 0
    for _ in range(10_000):
        block, data = r.recv()
        if block == expect:
            taken += 1
            r.ack(block)
            expect += 1
            if len(data) < blksize:
                return taken
    raise AssertionError("client loop bound reached")


def test_file_shrinking_underneath_fails_it(tmp_path, runs):
    f = tmp_path / "f"
    f.write_bytes(os.urandom(400_000))
    r = Run(f, 1000)
    runs.append(r)
    r.recv()
    os.truncate(f, 1000)
    _drain(r)
    out = r.outcome()
    assert out.code == pump.READ_ERROR and "shrank" in out.message


def _drain(r: Run) -> None:
    """ACK whatever comes until the pump stops sending."""
    for block, _ in incoming(r, 0.5):
        r.ack(block)


def test_cancel_wakes_it_at_once(serve):
    r = serve(os.urandom(5000), 1000, rto=3.0, rto_cap=3.0, giveup=60)
    r.recv()
    t0 = time.monotonic()
    r.stats[2] = 1
    r.srv.shutdown(socket.SHUT_RD)
    out = r.outcome()
    assert out.code == pump.CANCELLED and time.monotonic() - t0 < 1.0


def test_bad_arguments_are_refused(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fd = os.open(tmp_path / "f", os.O_RDONLY)
        try:
            with pytest.raises(ValueError, match="blksize"):
                _pump.serve(s.fileno(), fd, 0, 1, 4, array("q", [0] * 4), 0.1, 1.0, 5.0)
            with pytest.raises(ValueError, match="int64"):
                _pump.serve(s.fileno(), fd, 0, 1, 512, bytearray(8), 0.1, 1.0, 5.0)
        finally:
            os.close(fd)
