"""Rate limits and caps of the pure server (docs/SECURITY.md): per-MAC rate, the rate of new
offers, outstanding offers capped with the oldest reclaimed, a full pool reclaiming unanswered
offers, and one LimitHit per interval (with the count), never one per packet."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from test_dhcp_server import Rig, client_packet, mac_bytes

from pxetui.config import Config, ConfigError
from pxetui.dhcp import options as o
from pxetui.dhcp.limits import Bucket, KeyedBuckets

US = socket.inet_aton("10.99.0.1")


def spoofed(n: int) -> bytes:
    return bytes.fromhex("02aa") + n.to_bytes(4, "big")


def limited(tmp_path: Path, range_: str = "10.99.0.100-10.99.0.199", **limits: Any) -> Rig:
    rig = Rig(tmp_path, range=range_, limits=limits)
    now = [1000.0]
    rig.server.clock = lambda: now[0]
    rig.now = now  # type: ignore[attr-defined]
    return rig


def hits(rig: Rig, limit: str) -> list[Any]:
    return [e for e in rig.of("LimitHit") if e.limit == limit]  # type: ignore[attr-defined]


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    b = Bucket(rate=2.0, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.take(0.5) and not b.take(0.5)  # one token per 0.5 s
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]  # never more than the burst
    assert not b.take(50.0)  # a clock that steps back refills nothing


def test_keyed_buckets_forget_the_least_recently_seen_key_first() -> None:
    kb = KeyedBuckets(rate=1.0, burst=1, size=3)
    for key in ("a", "b", "c"):
        assert kb.take(key, 0.0)
    assert not kb.take("a", 0.0)  # "a" is now the most recently seen
    assert kb.take("d", 0.0) and len(kb) == 3  # "b" forgotten, the table stays at its cap
    assert list(kb.buckets) == ["c", "a", "d"]
    assert kb.take("b", 0.0)  # a forgotten key starts again with a full bucket


def test_one_mac_over_its_rate_is_dropped_before_it_costs_an_event(tmp_path: Path) -> None:
    rig = limited(tmp_path, mac_rate=1.0, mac_burst=5)
    answered = [rig.send(client_packet(o.DISCOVER, mac_bytes(1), xid=i)) for i in range(50)]
    assert sum(1 for a in answered if a) == 5
    assert len(rig.of("DhcpPacket")) == 10  # 5 in, 5 out: the 45 dropped left no event
    (hit,) = hits(rig, "dhcp.limits.mac_rate")  # one event for the interval, not 45
    assert "52:54:00:aa:00:01" in hit.message
    assert rig.send(client_packet(o.DISCOVER, mac_bytes(2)))  # another MAC is not affected
    rig.now[0] += 10.0  # type: ignore[attr-defined]
    assert rig.send(client_packet(o.DISCOVER, mac_bytes(1), xid=99))  # refilled
    rig.send(client_packet(o.DISCOVER, mac_bytes(1), xid=100))
    rig.now[0] += 0.1  # type: ignore[attr-defined]
    for i in range(20):
        rig.send(client_packet(o.DISCOVER, mac_bytes(1), xid=200 + i))
    later = hits(rig, "dhcp.limits.mac_rate")
    assert len(later) == 2 and later[1].count >= 45  # the hits since the first event, counted


def test_a_pxe_boot_fits_the_default_per_mac_limit(tmp_path: Path) -> None:
    """A ROM's DORA plus its retransmissions, then iPXE's DORA, within a second."""
    rig = limited(tmp_path)
    mac = mac_bytes(3)
    for _ in range(3):
        rig.dora(mac)
        rig.dora(mac, o77=b"iPXE")
    assert not rig.of("LimitHit")


def test_new_clients_beyond_the_offer_rate_are_dropped_known_ones_are_not(tmp_path: Path) -> None:
    rig = limited(tmp_path, new_offers_per_second=5.0, new_offers_burst=5)
    known = rig.dora(mac_bytes(1))  # spends one token
    offers = [rig.send(client_packet(o.DISCOVER, spoofed(i))) for i in range(30)]
    assert sum(1 for x in offers if x) == 4
    assert len(rig.store.offers) == 4
    (hit,) = hits(rig, "dhcp.limits.new_offers_per_second")
    assert "DISCOVER dropped" in hit.message
    # a client with a lease, one with an offer, and every REQUEST still get through
    again, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(1)))
    assert again.yiaddr == known.yiaddr
    first = next(x for x in offers if x)[0][0]
    ack, _ = rig.one(client_packet(o.REQUEST, first.chaddr[:6], o54=US, o50=first.yiaddr))
    assert o.msg_type(ack) == o.ACK
    rig.now[0] += 1.0  # type: ignore[attr-defined]
    assert rig.send(client_packet(o.DISCOVER, spoofed(1000)))  # refilled at 5/s


def test_outstanding_offers_are_capped_oldest_reclaimed_first(tmp_path: Path) -> None:
    rig = limited(tmp_path, max_offers=3)
    firsts = [rig.one(client_packet(o.DISCOVER, spoofed(i)))[0] for i in range(3)]
    fourth, _ = rig.one(client_packet(o.DISCOVER, spoofed(3)))
    assert set(rig.store.offers) == {spoofed(i).hex(":") for i in (1, 2, 3)}
    assert rig.store.holder(int.from_bytes(firsts[0].yiaddr), 1000.0) is None  # back in the pool
    (hit,) = hits(rig, "dhcp.limits.max_offers")
    assert spoofed(0).hex(":") in hit.message
    # the reclaimed client can still complete: its address is free, REQUEST binds it
    ack, _ = rig.one(client_packet(o.REQUEST, spoofed(0), o54=US, o50=firsts[0].yiaddr))
    assert o.msg_type(ack) == o.ACK and ack.yiaddr == firsts[0].yiaddr
    assert fourth.yiaddr not in {f.yiaddr for f in firsts}


def test_ten_spoofed_discovers_cannot_empty_a_ten_address_pool(tmp_path: Path) -> None:
    rig = limited(tmp_path, range_="10.99.0.100-10.99.0.109")
    spoofs = [rig.one(client_packet(o.DISCOVER, spoofed(i)))[0] for i in range(10)]
    assert rig.store.pools[0].free == type(rig.store.pools[0].free)()  # every address offered
    ack = rig.dora(mac_bytes(1))  # a real client: the oldest unanswered offer is reclaimed for it
    assert ack.yiaddr == spoofs[0].yiaddr
    assert hits(rig, "dhcp.range") and not rig.of("PoolExhausted")
    # a flood that keeps coming churns the offers, and a real client still gets through
    for i in range(10, 200):
        rig.send(client_packet(o.DISCOVER, spoofed(i)))
    assert o.msg_type(rig.dora(mac_bytes(2))) == o.ACK
    assert len(hits(rig, "dhcp.range")) == 1  # one event per interval, with the count
    rig.now[0] += 11.0  # type: ignore[attr-defined]
    rig.send(client_packet(o.DISCOVER, spoofed(500)))
    assert hits(rig, "dhcp.range")[-1].count >= 190


def test_the_first_request_wins_an_address_reclaimed_under_pressure(tmp_path: Path) -> None:
    rig = limited(tmp_path, range_="10.99.0.100-10.99.0.100")
    a, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(1)))
    b, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(2)))  # pool full: a's offer goes to b
    assert a.yiaddr == b.yiaddr and rig.store.holder(int.from_bytes(a.yiaddr), 1000.0) == "52:54:00:aa:00:02"
    # a answers first: its REQUEST (to us, for our offer) takes the address back
    ack, _ = rig.one(client_packet(o.REQUEST, mac_bytes(1), o54=US, o50=a.yiaddr))
    assert o.msg_type(ack) == o.ACK
    nak, _ = rig.one(client_packet(o.REQUEST, mac_bytes(2), o54=US, o50=b.yiaddr))
    assert o.msg_type(nak) == o.NAK  # b starts over (and finds the pool full of leases)
    assert rig.store.lease_of("52:54:00:aa:00:01") is not None
    # a bound lease is never taken that way, nor by an INIT-REBOOT (b's offer is gone with
    # the NAK: no record of b, so RFC 2131 4.3.2 silence rather than a NAK)
    assert rig.send(client_packet(o.REQUEST, mac_bytes(2), o50=a.yiaddr)) == []
    assert rig.store.lease_of("52:54:00:aa:00:01").ip == int.from_bytes(a.yiaddr)  # type: ignore[union-attr]
    assert rig.send(client_packet(o.DISCOVER, mac_bytes(3))) == []
    assert rig.of("PoolExhausted")


def test_offers_expire_after_the_hold_time(tmp_path: Path) -> None:
    rig = limited(tmp_path, range_="10.99.0.100-10.99.0.100", offer_hold_seconds=10)
    a, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(1)))
    rig.now[0] += 11.0  # type: ignore[attr-defined]
    assert rig.store.holder(int.from_bytes(a.yiaddr), rig.now[0]) is None  # type: ignore[attr-defined]
    ack = rig.dora(mac_bytes(2))
    assert ack.yiaddr == a.yiaddr


def test_config_defaults_are_the_documented_ones() -> None:
    cfg = Config.from_dict({})
    lim = cfg.dhcp.limits
    assert (lim.mac_rate, lim.mac_burst, lim.mac_table, lim.new_offers_per_second, lim.new_offers_burst,
            lim.max_offers, lim.offer_hold_seconds) == (10.0, 20, 16384, 1000.0, 2000, 8192, 15.0)
    assert cfg.dhcp.recheck_seconds == 60.0


@pytest.mark.parametrize(("raw", "problem"), [
    ({"limits": {"mac_rate": 0}}, "dhcp.limits.mac_rate: 0.0 is outside 0.1..10000"),
    ({"limits": {"mac_burst": 0}}, "dhcp.limits.mac_burst: 0 is outside 1..100000"),
    ({"limits": {"mac_table": 10}}, "dhcp.limits.mac_table: 10 is outside 64..10000000"),
    ({"limits": {"new_offers_per_second": -1}}, "dhcp.limits.new_offers_per_second: -1.0 is outside 1..1000000"),
    ({"limits": {"max_offers": 0}}, "dhcp.limits.max_offers: 0 is outside 1..10000000"),
    ({"limits": {"offer_hold_seconds": 3600}}, "dhcp.limits.offer_hold_seconds: 3600.0 is outside 1..300"),
    ({"limits": {"max_offers": "lots"}}, "dhcp.limits.max_offers: expected an integer, got 'lots'"),
    ({"limits": {"per_ip": 3}}, "dhcp.limits.per_ip: unknown key"),
    ({"recheck_seconds": 0.5}, "dhcp.recheck_seconds: 0.5 is neither 0 (off) nor 1..3600"),
])
def test_config_bad_limits_are_named_by_their_key(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_dict({"dhcp": raw})
    assert problem in err.value.problems
