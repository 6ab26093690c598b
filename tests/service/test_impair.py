"""The userspace netem of tests/impair.py: it drops about what it is told, delays every frame
at least as long as it is told, and goes away with its TAPs or on SIGTERM."""

from __future__ import annotations

import random

import pytest
from impair import impaired_pair
from netns import wait_for

pytestmark = pytest.mark.root


def test_relay_drops_and_delays(netns, tmp_path):
    loss, delay, seed = 0.05, 0.005, 1
    link = impaired_pair(netns, tmp_path, loss=loss, delay=delay, seed=seed, netem=False)
    assert link.kind == "relay" and link.relay is not None
    p = link.ping(300, interval=0.003, wait=1.0)
    assert p.sent == 300
    # An echo crosses the link twice: about 1 - 0.95**2 = 10% go unanswered.
    assert 0.03 <= p.loss <= 0.25, p.loss
    # Frames are held `delay` after the relay read them, so this lower bound cannot flake.
    assert min(p.rtts) >= 2 * delay, min(p.rtts)
    stats = link.relay_stats()  # SIGTERM: the relay reports and exits cleanly
    assert link.relay.returncode == 0
    assert len(stats) == 2
    # Seeded: the n-th frame's fate is fixed. For seed 1 any 200..600 frames lose 6.2-9.3%
    # (checked below), so the band holds however many ARP or IPv6 frames joined the echoes.
    rng = random.Random(seed)
    fates = [rng.random() < loss for _ in range(600)]
    assert all(0.02 <= sum(fates[:n]) / n <= 0.10 for n in range(200, 600))
    for direction, st in stats.items():
        assert 200 <= st["frames"] < 600, (direction, st)
        assert 0.02 <= st["dropped"] / st["frames"] <= 0.10, (direction, st)


def test_delay_only_loses_nothing(netns, tmp_path):
    link = impaired_pair(netns, tmp_path, loss=0.0, delay=0.02, netem=False)
    p = link.ping(20, interval=0.01, wait=2.0)
    assert (p.sent, len(p.rtts)) == (20, 20)
    assert min(p.rtts) >= 0.04


def test_relay_ends_when_a_tap_goes(netns, tmp_path):
    link = impaired_pair(netns, tmp_path, loss=0.0, delay=0.001, netem=False)
    assert link.relay is not None and link.relay_log is not None
    link.client.run("ip", "link", "del", "eth0")
    wait_for(lambda: link.relay.poll() is not None, timeout=5, what="the relay to exit")
    assert link.relay.returncode == 0
    stats = link.relay_stats()  # the relay has exited: reads what it reported
    assert sum(st["frames"] for st in stats.values()) > 0
