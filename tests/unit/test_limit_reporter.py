"""LimitReporter: one LimitHit per interval per (limit, client), with the hits it stands for."""

from __future__ import annotations

from pxetui.events import Event, LimitHit, LimitReporter, from_json
from pxetui.logfmt import describe, level_of


def reporter(**kw: float) -> tuple[LimitReporter, list[LimitHit]]:
    got: list[LimitHit] = []

    def emit(ev: Event) -> None:
        assert isinstance(ev, LimitHit)
        got.append(ev)

    return LimitReporter(emit, **kw), got  # type: ignore[arg-type]


def test_once_per_interval_with_the_count():
    rep, got = reporter(interval=10.0)
    rep.hit("tftp.max_per_client", "10.0.0.5", "too many", now=100.0)
    for i in range(50):
        rep.hit("tftp.max_per_client", "10.0.0.5", "too many", now=100.0 + i * 0.1)
    assert [(e.ip, e.count) for e in got] == [("10.0.0.5", 1)]
    rep.hit("tftp.max_per_client", "10.0.0.5", "too many", now=111.0)
    assert [(e.ip, e.count) for e in got] == [("10.0.0.5", 1), ("10.0.0.5", 51)]


def test_keys_are_per_limit_and_client():
    rep, got = reporter(interval=10.0)
    rep.hit("tftp.max_per_client", "10.0.0.5", "a", now=1.0)
    rep.hit("tftp.max_per_client", "10.0.0.6", "a", now=1.0)
    rep.hit("http.max_per_client", "10.0.0.5", "b", now=1.0)
    rep.hit("tftp.max_transfers", None, "c", now=1.0)
    assert {(e.limit, e.ip) for e in got} == {
        ("tftp.max_per_client", "10.0.0.5"), ("tftp.max_per_client", "10.0.0.6"),
        ("http.max_per_client", "10.0.0.5"), ("tftp.max_transfers", None)}


def test_a_flood_of_addresses_folds_into_one_event():
    rep, got = reporter(interval=10.0, per_interval=4)
    for i in range(1000):
        rep.hit("tftp.max_per_client", f"10.0.{i >> 8}.{i & 255}", "x", now=5.0)
    assert len(got) == 5  # 4 named clients, then one event for all the others
    assert got[-1].ip is None and "many clients" in got[-1].message


def test_the_event_round_trips_and_reads_as_a_warning():
    ev = LimitHit(service="tftp", ip="10.0.0.5", limit="tftp.max_per_client", count=3,
                  message="too many transfers from 10.0.0.5")
    d = from_json(ev.to_json()).to_dict()
    assert d["type"] == "LimitHit" and d["count"] == 3 and d["limit"] == "tftp.max_per_client"
    assert level_of(d) == "warning"
    assert describe(d) == "limit tftp.max_per_client hit (3 times): too many transfers from 10.0.0.5"
