"""The event pipe: a service never waits for its reader (pxetui/emitter.py), and the supervisor
reads in chunks, keeps the drop counts and cuts a UI that stopped reading.

Every test here uses a real pipe (or socket) whose reader stops reading. A blocking or spinning
writer would hang the test (the timeout marks are only a guard against that; nothing asserts a
duration): the assertions are counts, order and bounds.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import stat
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import uvloop

from pxetui.config import Config
from pxetui.control import socket_path
from pxetui.emitter import F_SETPIPE_SZ, FLUSH_AT, LineEmitter, LineReader, widen_pipe
from pxetui.events import (
    DhcpIgnored,
    DhcpPacket,
    Event,
    EventsDropped,
    LeaseGranted,
    Log,
    ServiceState,
    TransferProgress,
    TransferStarted,
    loads,
)
from pxetui.state import EngineState
from pxetui.supervisor import NICE, Supervisor, prioritize

pytestmark = pytest.mark.timeout(60)


def small_pipe() -> tuple[int, int]:
    """A pipe (shrunk by `shrink` once the emitter has widened it)."""
    r, w = os.pipe()
    return r, w


def shrink(fd: int) -> None:
    """Undo the emitter's widening: a small buffer fills after a few dozen events."""
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        fcntl.fcntl(fd, F_SETPIPE_SZ, 4096)
        return
    sock = socket.socket(fileno=os.dup(fd))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.close()


def channel(kind: str) -> tuple[int, int]:
    """(read end, write end): a pipe, or the socket pair uvloop gives a subprocess's stdout."""
    if kind == "pipe":
        return small_pipe()
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return a.detach(), b.detach()


def idle(em: LineEmitter) -> bool:
    return len(em) == 0 and em.backlog == 0 and not em._waiting and em._pending is None


async def read_until_idle(r: int, em: LineEmitter) -> list[dict[str, Any]]:
    """Resume reading on the loop (the emitter's writability callback does the rest) until the
    emitter has nothing left and the pipe is empty; bounded in rounds, not in time."""
    loop = asyncio.get_running_loop()
    os.set_blocking(r, False)
    data = bytearray()

    def readable() -> None:
        try:
            while chunk := os.read(r, 1 << 16):
                data.extend(chunk)
        except BlockingIOError:
            pass

    loop.add_reader(r, readable)
    try:
        for _ in range(20000):
            await asyncio.sleep(0.001)
            if idle(em) and not em._scheduled and not em.dropped:
                readable()
                break
        else:
            raise AssertionError("the emitter never drained")
    finally:
        loop.remove_reader(r)
    return [loads(line) for line in bytes(data).splitlines()]


def seq_events(n: int) -> list[Event]:
    """A mix of what a DHCP service emits, each stamped with its place (ts = index)."""
    out: list[Event] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            out.append(ServiceState(ts=i, state="running", pid=1))
        elif kind == 1:
            out.append(LeaseGranted(ts=i, mac="52:54:00:00:00:01", ip="10.0.0.5"))
        elif kind == 2:
            out.append(Log(ts=i, message=f"line {i}"))
        else:
            out.append(DhcpPacket(ts=i, msg_type="DISCOVER", xid=i))
    return out


@pytest.mark.parametrize("kind", ["pipe", "socketpair"])
async def test_a_stalled_reader_never_stalls_the_loop_and_every_drop_is_counted(kind):
    await stalled_reader(kind)


@pytest.mark.parametrize("kind", ["pipe", "socketpair"])
def test_the_same_on_uvloop_the_services_loop(kind):
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(stalled_reader(kind))
    finally:
        loop.close()


async def stalled_reader(kind: str) -> None:
    r, w = channel(kind)
    try:
        em = LineEmitter(w, "dhcp", queue_max=300)
        shrink(w)
        loop = asyncio.get_running_loop()
        ran = scheduled = 0

        def probe() -> None:
            nonlocal ran
            ran += 1

        events = seq_events(6000)
        for i, ev in enumerate(events):
            em(ev)
            if i % 50 == 0:  # the service's own work between packets: it must still get the loop
                loop.call_soon(probe)
                scheduled += 1
                await asyncio.sleep(0)
            assert len(em) <= 300 + 1 and em.backlog <= 2 * 300 + FLUSH_AT  # bounded, always
        await asyncio.sleep(0)
        assert ran == scheduled == 120  # every probe ran: the emitting loop stayed responsive
        assert em._waiting  # parked on add_writer, not spinning and not blocked in write()
        assert sum(em.dropped.values()) > 5000  # the pipe and the queue hold a few hundred

        out = await read_until_idle(r, em)
    finally:
        os.close(r)
        os.close(w)
    reports = [e for e in out if e["type"] == "EventsDropped"]
    delivered = [e for e in out if e["type"] != "EventsDropped"]
    assert len(reports) == 1 and reports[0]["service"] == "dhcp"
    # Exact: every event emitted was either delivered or counted as dropped, per type.
    emitted = Counter(type(e).__name__ for e in events)
    got = Counter(e["type"] for e in delivered)
    assert got + Counter(reports[0]["counts"]) == emitted
    assert reports[0]["total"] == sum(reports[0]["counts"].values()) == len(events) - len(delivered)
    # Order: what was delivered is the emitted sequence with holes, never reordered.
    stamps = [e["ts"] for e in delivered]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stamps[:10] == list(range(10))  # the first events went out before the pipe filled
    # Told ahead of the backlog (events still queued when it was due came after it), not once
    # the pressure eased: a UI sees the drops while the storm lasts.
    at = out.index(reports[0])
    assert any(e["type"] != "EventsDropped" for e in out[at + 1:])


async def test_progress_is_coalesced_to_the_latest_per_transfer_and_states_are_kept():
    r, w = small_pipe()
    try:
        em = LineEmitter(w, "tftp", queue_max=5000)
        shrink(w)
        seq = 0

        def stamp() -> int:
            nonlocal seq
            seq += 1
            return seq

        for i in range(200):  # fill the pipe: from here on the emitter is under pressure
            em(Log(ts=stamp(), message=f"filler {i}"))
        em.flush()
        assert em._waiting
        em(TransferStarted(ts=stamp(), transfer_id="t1", path="a"))
        em(TransferStarted(ts=stamp(), transfer_id="t2", path="b"))
        for i in range(1000):
            em(TransferProgress(ts=stamp(), transfer_id=f"t{1 + i % 2}", bytes_done=i))
            if i % 100 == 0:
                em(ServiceState(ts=stamp(), state="running"))  # never coalesced away
        assert em.coalesced == 998 and not em.dropped
        out = await read_until_idle(r, em)
    finally:
        os.close(r)
        os.close(w)
    progress = [e for e in out if e["type"] == "TransferProgress"]
    assert {e["transfer_id"]: e["bytes_done"] for e in progress} == {"t1": 998, "t2": 999}
    assert len(progress) == 2  # one per transfer: the latest
    assert len([e for e in out if e["type"] == "ServiceState"]) == 10
    assert len([e for e in out if e["type"] == "Log"]) == 200
    stamps = [e["ts"] for e in out]
    assert stamps == sorted(stamps)  # the latest progress moved back, nothing moved forward
    assert not [e for e in out if e["type"] == "EventsDropped"]  # coalescing loses nothing


async def test_no_pressure_no_coalescing():
    r, w = small_pipe()
    try:
        em = LineEmitter(w, "http", queue_max=1000)
        for i in range(5):  # a wide pipe that keeps up: every progress event goes through
            em(TransferProgress(ts=i, transfer_id="h1", bytes_done=i))
        out = await read_until_idle(r, em)
    finally:
        os.close(r)
        os.close(w)
    assert [e["bytes_done"] for e in out] == [0, 1, 2, 3, 4] and em.coalesced == 0


async def test_full_queue_drops_progress_of_a_new_transfer_and_a_state_counted():
    r, w = small_pipe()
    try:
        em = LineEmitter(w, "tftp", queue_max=100, report_every=3600.0)
        shrink(w)
        for i in range(2000):
            em(Log(ts=i, message="x" * 50))
        em(ServiceState(ts=2000, state="running"))
        em(TransferProgress(ts=2001, transfer_id="new", bytes_done=1))
        assert em.dropped["ServiceState"] == 1 and em.dropped["TransferProgress"] == 1
        first = await read_until_idle(r, em)
        # A second episode within the report interval: no second EventsDropped yet ...
        for i in range(2000):
            em(DhcpIgnored(ts=3000 + i, reason="x" * 50))
        em.flush()
        await asyncio.sleep(0)
        assert em.dropped["DhcpIgnored"] > 0
        # ... until the end of the process, when close() reports what is left.
        got = bytearray()
        reader = threading.Thread(target=lambda: got.extend(drain_fd(r)))
        reader.start()
        em.close(timeout=10)
        os.close(w)
        w = -1
        reader.join(10)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    second = [loads(line) for line in bytes(got).splitlines()]
    reports = [e for e in first + second if e["type"] == "EventsDropped"]
    assert [sorted(e["counts"]) for e in reports] == [["Log", "ServiceState", "TransferProgress"],
                                                      ["DhcpIgnored"]]
    delivered = Counter(e["type"] for e in first + second if e["type"] != "EventsDropped")
    dropped = sum((Counter(e["counts"]) for e in reports), Counter())
    assert delivered + dropped == Counter({"Log": 2000, "ServiceState": 1, "TransferProgress": 1,
                                           "DhcpIgnored": 2000})
    assert em.closed


def drain_fd(fd: int) -> bytes:
    os.set_blocking(fd, True)
    out = bytearray()
    while chunk := os.read(fd, 1 << 16):
        out.extend(chunk)
    return bytes(out)


async def test_a_reader_that_is_gone_ends_the_stream_quietly():
    r, w = small_pipe()
    em = LineEmitter(w, "dhcp")
    os.close(r)
    try:
        for i in range(FLUSH_AT + 1):  # the batch is written at once: EPIPE
            em(Log(ts=i, message="x"))
        assert em.closed and len(em) == 0
        em(Log(message="after"))  # ignored, nothing raised
        em.close()
    finally:
        os.close(w)


def test_the_channel_is_widened_whether_pipe_or_socket_pair():
    r, w = os.pipe()
    a, b = socket.socketpair()
    try:
        before = fcntl.fcntl(w, F_SETPIPE_SZ + 1)  # F_GETPIPE_SZ
        widen_pipe(w)
        assert fcntl.fcntl(w, F_SETPIPE_SZ + 1) > before
        before = b.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        widen_pipe(b.fileno())
        assert b.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) > before
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


async def test_reader_splits_chunks_into_lines_and_skips_an_overlong_one():
    stream = asyncio.StreamReader()
    for piece in (b'{"a":1}\n{"b"', b':2}\n' + b"x" * 300, b"x" * 300 + b"\n{\"c\":3}\n", b"tail"):
        stream.feed_data(piece)
    stream.feed_eof()
    reader = LineReader(stream, limit=200, chunk=64)
    lines = [line async for batch in reader.batches() for line in batch]
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b"tail"] and reader.skipped == 1


# -- the supervisor's end -------------------------------------------------------------------


def test_drops_fold_into_one_running_total_per_service_for_late_uis(tmp_path):
    cfg = Config.from_dict({"interface": "eth0", "state_dir": str(tmp_path / "st")})
    sup = Supervisor(cfg, names=[])
    live = EngineState()
    for e in (EventsDropped(service="dhcp", counts={"DhcpPacket": 70, "Log": 3}, total=73),
              EventsDropped(service="tftp", counts={"TransferProgress": 5}, total=5),
              EventsDropped(service="dhcp", counts={"DhcpPacket": 30}, total=30)):
        live.apply(e)
        sup.relay(e)
    replayed = [e for e in sup.replay() if isinstance(e, EventsDropped)]
    assert {e.service: (e.counts, e.total) for e in replayed} == {
        "dhcp": ({"DhcpPacket": 100, "Log": 3}, 103), "tftp": ({"TransferProgress": 5}, 5)}
    late = EngineState()
    for e in sup.replay():
        late.apply(e)
    assert live.dropped == late.dropped == Counter({"dhcp": 103, "tftp": 5})


async def test_a_ui_that_stops_reading_is_cut_and_its_losses_are_counted(tmp_path):
    cfg = Config.from_dict({"interface": "eth0", "state_dir": str(tmp_path / "st"),
                            "events": {"ui_queue_max": 200}})
    cfg.server_ip, cfg.netmask = "10.99.0.1", "255.255.255.0"
    sup = Supervisor(cfg, names=[])
    await sup.start()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stuck.connect(str(socket_path(cfg.state_dir)))
        for _ in range(1000):
            if sup.subscribers:
                break
            await asyncio.sleep(0.005)
        assert sup.subscribers
        cut_at = None
        for i in range(5000):  # a storm relayed with no await in between: the UI reads nothing
            sup.publish(DhcpIgnored(service="dhcp", reason=f"storm {i}"))
            if not sup.subscribers:
                cut_at = i
                break
        assert cut_at is not None  # cut, and the engine went on
        for i in range(100):
            sup.publish(DhcpIgnored(service="dhcp", reason=f"after {i}"))
        stuck.setblocking(False)
        got = bytearray()
        loop = asyncio.get_running_loop()
        for _ in range(2000):  # the UI wakes up: what it was sent, then the end of its stream
            try:
                chunk = await loop.sock_recv(stuck, 1 << 16)
            except ConnectionError:
                break
            if not chunk:
                break
            got.extend(chunk)
        received = [loads(line) for line in bytes(got).splitlines()]
    finally:
        stuck.close()
        await sup.stop()
    (lost,) = [e.to_dict() for e in sup.replay() if isinstance(e, EventsDropped)]
    assert lost["service"] == "ui"
    storm = [e for e in received if e["type"] == "DhcpIgnored"]
    assert all("storm" in e["reason"] for e in storm)  # nothing after the cut
    # Exact: each storm event up to the cut was either sent to the UI or counted as lost.
    assert len(storm) + lost["counts"]["DhcpIgnored"] == cut_at + 1
    assert lost["total"] == sum(lost["counts"].values())


def test_services_are_scheduled_before_observers():
    base = os.getpriority(os.PRIO_PROCESS, 0)
    # A service runs in a session of its own (the supervisor starts it so): its autogroup,
    # where the kernel has them, gets its nice too.
    procs = {name: subprocess.Popen(["sleep", "30"], start_new_session=True)
             for name in ("dhcp", "tftp", "capture")}
    try:
        for name, p in procs.items():
            prioritize(p.pid, name)
        nice = {name: os.getpriority(os.PRIO_PROCESS, p.pid) for name, p in procs.items()}
        assert nice["capture"] == base + NICE["capture"] > base
        # raising a priority needs root; unprivileged a service stays at ours
        if os.geteuid() == 0:
            assert nice["dhcp"] == base + NICE["dhcp"] < nice["tftp"] == base + NICE["tftp"] < base
        else:
            assert nice["dhcp"] == nice["tftp"] == base
        if Path("/proc/self/autogroup").exists():
            groups = {name: Path(f"/proc/{p.pid}/autogroup").read_text().split() for name, p in procs.items()}
            assert groups["capture"][-1] == str(nice["capture"])
            assert groups["dhcp"][-1] == str(nice["dhcp"]) and groups["dhcp"][0] != groups["tftp"][0]
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


async def test_a_sustained_storm_still_reports_its_drops_once_a_second():
    # The reader keeps reading, slower than the service emits: the queue never drains to half,
    # and the drop counters must still reach it (the dashboard shows them during the storm).
    r, w = small_pipe()
    now = [0.0]
    try:
        em = LineEmitter(w, "dhcp", queue_max=100, clock=lambda: now[0])
        shrink(w)
        os.set_blocking(r, False)
        got = bytearray()
        reports_queued_under_pressure = 0
        for second in range(3):
            now[0] = float(second) * 1.5
            for i in range(400):
                em(Log(ts=i, message="x" * 1000))  # a line a quarter of the pipe
            assert em.dropped and len(em) >= 100  # over the bound: dropping
            got.extend(os.read(r, 4096))  # a slow reader takes a little (a pipe page)
            for _ in range(200):  # the writability callback drains what fits (bounded rounds)
                await asyncio.sleep(0.001)
                if not em.dropped:
                    break
            if not em.dropped and len(em) > 50:
                reports_queued_under_pressure += 1
        assert reports_queued_under_pressure == 3  # one per second of storm, none held back
        for _ in range(20000):  # the reader catches up (bounded rounds)
            try:
                got.extend(os.read(r, 1 << 16))
            except BlockingIOError:
                if idle(em) and not em._scheduled and not em.dropped:
                    break
                await asyncio.sleep(0.001)
        else:
            raise AssertionError("the emitter never drained")
    finally:
        os.close(r)
        os.close(w)
    lines = [loads(line) for line in bytes(got).splitlines() if line]
    reports = [e for e in lines if e["type"] == "EventsDropped"]
    assert len(reports) >= 3
    delivered = sum(1 for e in lines if e["type"] == "Log")
    assert delivered + sum(e["total"] for e in reports) == 1200  # exact, however it was split


async def test_admit_lets_packet_rate_per_packet_events_a_second_and_counts_the_rest():
    # events.packet_rate: asked before an event is made. The refused are reported like any
    # drop, with the DHCP messages they stood for, so the fold's counters stay exact.
    now = [50.3]
    r, w = os.pipe()
    try:
        em = LineEmitter(w, "dhcp", packet_rate=3, clock=lambda: now[0])
        answers = [em.admit("DhcpPacket", "in.DISCOVER") for _ in range(5)]
        answers.append(em.admit("DhcpPacket", "out.OFFER"))
        assert answers == [True, True, True, False, False, False]
        now[0] = 51.0  # a new second: the budget is back
        assert em.admit("DhcpPacket", "in.REQUEST")
        em(LeaseGranted(mac="52:54:00:00:00:01", ip="10.0.0.9"))  # never asked: not limited
        out = await read_until_idle(r, em)
    finally:
        os.close(r)
        os.close(w)
    (report,) = [e for e in out if e["type"] == "EventsDropped"]
    assert report["counts"] == {"DhcpPacket": 3} and report["total"] == 3
    assert report["packets"] == {"in.DISCOVER": 2, "out.OFFER": 1}
    assert [e["type"] for e in out if e["type"] != "EventsDropped"] == ["LeaseGranted"]
    state = EngineState()
    for e in out:
        state.apply(e)
    assert state.counts["dhcp.in.DISCOVER"] == 2 and state.counts["dhcp.out.OFFER"] == 1
    assert state.dropped["dhcp"] == 3


def test_admit_without_a_rate_admits_everything():
    r, w = os.pipe()
    try:
        em = LineEmitter(w, "dhcp", packet_rate=0)
        assert all(em.admit("DhcpPacket", "in.DISCOVER") for _ in range(100_000))
        assert not em.dropped
    finally:
        os.close(r)
        os.close(w)


async def test_a_full_queue_counts_the_dhcp_messages_of_the_packets_it_drops():
    r, w = small_pipe()
    try:
        em = LineEmitter(w, "dhcp", queue_max=10, report_every=3600.0)
        shrink(w)
        for i in range(500):
            em(DhcpPacket(ts=i, mac="52:54:00:00:00:01", direction="out" if i % 2 else "in",
                          msg_type="ACK" if i % 2 else "REQUEST", xid=i))
        dropped = sum(em.dropped_packets.values())
        assert dropped == em.dropped["DhcpPacket"] > 0
        out = await read_until_idle(r, em)
    finally:
        os.close(r)
        os.close(w)
    state = EngineState()
    for e in out:
        state.apply(e)
    # every message counted once: the delivered by their events, the dropped by the report
    assert state.counts["dhcp.in.REQUEST"] == 250 and state.counts["dhcp.out.ACK"] == 250


def test_a_hostile_packets_count_in_events_dropped_changes_no_counter_it_should_not():
    # EventsDropped.packets comes from a line: only positive ints under "in."/"out." count, an
    # unknown message counts as "other", and only our DHCP service's report counts at all.
    state = EngineState()
    state.apply(EventsDropped(service="dhcp", counts={"DhcpPacket": 9}, total=9, packets={
        "in.DISCOVER": True, "sideways.ACK": 5, "out.BOGUS": 3, "in.ACK": -1, "out.OFFER": "7",
        "in.REQUEST": 2}))
    state.apply(EventsDropped(service="capture", counts={"DhcpPacket": 4}, total=4, packets={"in.DISCOVER": 4}))
    assert {k: v for k, v in state.counts.items() if k.startswith("dhcp.")} == {
        "dhcp.out.other": 3, "dhcp.in.REQUEST": 2}
    state.apply({"type": "EventsDropped", "service": "dhcp", "total": 1, "counts": {"DhcpPacket": 1},
                 "packets": ["not", "a", "dict"]})
    assert state.counts["dhcp.in.REQUEST"] == 2 and state.dropped["dhcp"] == 10
