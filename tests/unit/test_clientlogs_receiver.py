"""pxetui.clientlogs receiver, store and TCP framing: rate limit per source, caps per client."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxetui.clientlogs.framing import FrameError, Framer
from pxetui.clientlogs.receiver import Buckets, Receiver
from pxetui.clientlogs.store import LogStore
from pxetui.config import LogsConfig
from pxetui.events import ClientLog, Event, LimitHit, Log


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def rig(tmp_path: Path | None = None, **kw: object) -> tuple[Receiver, list[Event], Clock]:
    out: list[Event] = []
    clock = Clock()
    cfg = LogsConfig(enabled=True, **kw)  # type: ignore[arg-type]
    store = LogStore(tmp_path / "logs.db", cfg.max_lines_per_client) if tmp_path else None
    macs = {"10.99.0.100": "52:54:00:00:00:01", "10.99.0.101": "52:54:00:00:00:02"}
    return Receiver(cfg, out.append, macs.get, store, clock), out, clock


def of(out: list[Event], cls: type) -> list:
    return [e for e in out if isinstance(e, cls)]


def test_lines_are_attributed_to_the_lease_of_their_source() -> None:
    rx, out, _ = rig()
    rx.take("syslog", b"<14>Dec  7 09:00:15 main-menu[240]: INFO: Menu item 'netcfg' selected", "10.99.0.100")
    rx.take("netconsole", b"[    1.0] one\n[    1.1] two\n", "10.99.0.101")
    rx.take("syslog", b"<13>hello", "10.99.0.7")
    logs = of(out, ClientLog)
    assert [(e.mac, e.source, e.app) for e in logs] == [
        ("52:54:00:00:00:01", "syslog", "main-menu"), ("52:54:00:00:00:02", "netconsole", "kernel"),
        ("52:54:00:00:00:02", "netconsole", "kernel"), (None, "syslog", "")]
    assert logs[0].severity == 6 and logs[0].facility == 1 and logs[0].ip == "10.99.0.100"


def test_a_flood_from_one_source_hits_the_rate_limit_once_and_others_pass() -> None:
    rx, out, clock = rig(rate=10.0, burst=20)
    for i in range(500):
        rx.take("syslog", b"<13>flood %d" % i, "10.99.0.100")
    rx.take("syslog", b"<13>quiet neighbour", "10.99.0.101")
    hits = of(out, LimitHit)
    assert [(h.limit, h.ip) for h in hits] == [("logs.rate", "10.99.0.100")]
    logs = of(out, ClientLog)
    assert len([e for e in logs if e.ip == "10.99.0.100"]) == 20  # the burst
    assert [e.message for e in logs if e.ip == "10.99.0.101"] == ["quiet neighbour"]
    assert rx.dropped == 480
    clock.t += 1.0  # a second later: `rate` more lines pass
    for i in range(50):
        rx.take("syslog", b"<13>later %d" % i, "10.99.0.100")
    assert len([e for e in of(out, ClientLog) if e.message.startswith("later")]) == 10


def test_bad_messages_are_reported_once_per_interval_and_lose_nothing_else() -> None:
    rx, out, clock = rig()
    for _ in range(30):
        rx.take("syslog", b"<999>nonsense", "10.99.0.100")
    rx.take("syslog", b"<13>fine", "10.99.0.100")
    warnings = of(out, Log)
    assert len(warnings) == 1 and "bad syslog" in warnings[0].message and "PRI" in warnings[0].message
    assert [e.message for e in of(out, ClientLog)] == ["fine"]
    clock.t += 11
    rx.take("syslog", b"<999>again", "10.99.0.100")
    assert len(of(out, Log)) == 2 and "30 bad" in of(out, Log)[1].message


def test_long_lines_are_cut_and_reported() -> None:
    rx, out, _ = rig(max_line_bytes=256)
    rx.take("syslog", b"<13>" + b"y" * 1000, "10.99.0.100")
    (ev,) = of(out, ClientLog)
    assert ev.truncated and len(ev.message) <= 256
    assert [h.limit for h in of(out, LimitHit)] == ["logs.max_line_bytes"]


def test_store_keeps_the_newest_lines_per_client(tmp_path: Path) -> None:
    rx, out, _ = rig(tmp_path, max_lines_per_client=10)
    for i in range(25):
        rx.take("syslog", b"<13>a%d" % i, "10.99.0.100")
    rx.take("syslog", b"<13>b0", "10.99.0.101")
    rx.flush()
    assert rx.store is not None
    tail = rx.store.tail("52:54:00:00:00:01", 100)
    assert [r["message"] for r in tail] == [f"a{i}" for i in range(15, 25)]
    assert rx.store.count("52:54:00:00:00:02") == 1
    assert [h.limit for h in of(out, LimitHit)] == ["logs.max_lines_per_client"]
    rx.store.close()
    again = LogStore(tmp_path / "logs.db", 10)  # a restart continues the sequence
    again.add(ClientLog(mac="52:54:00:00:00:01", ip="10.99.0.100", message="after restart"))
    again.flush()
    assert [r["message"] for r in again.tail("52:54:00:00:00:01", 2)] == ["a24", "after restart"]
    again.close()


def test_bucket_table_is_bounded() -> None:
    b = Buckets(1.0, 1)
    for i in range(5000):
        b.take(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(b._b) <= 4096


def test_framer_octet_counting_and_lf() -> None:
    f = Framer(100)
    assert f.feed(b"12 <13>hello w") == []
    assert f.feed(b"x<13>second line\n<13>third\n") == [b"<13>hello wx", b"<13>second line", b"<13>third"]
    assert f.feed(b"<13>" + b"z" * 200) == [b"<13>" + b"z" * 96]
    assert f.feed(b"zzz\n<13>next\n") == [b"<13>next"]
    with pytest.raises(FrameError, match="over logs.max_line_bytes"):
        Framer(100).feed(b"500 <13>x")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_framer_is_total_and_bounded(chunks: list[bytes]) -> None:
    f = Framer(64)
    try:
        for c in chunks:
            for msg in f.feed(c):
                assert len(msg) <= 64
    except FrameError:
        pass
