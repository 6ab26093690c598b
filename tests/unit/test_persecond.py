"""The per-second budget behind events.packet_rate, log.rate and `watch --rate`."""

from __future__ import annotations

from pxetui.persecond import PerSecond


def test_the_budget_counts_whole_seconds_and_a_zero_rate_has_none() -> None:
    now = [100.2]
    b = PerSecond(2, lambda: now[0])
    assert [b.take() for _ in range(4)] == [True, True, False, False]
    now[0] = 100.9
    assert not b.take() and not b.new_second()  # the same second
    now[0] = 101.0
    assert b.new_second() and b.take() and not b.new_second()
    now[0] = 99.5  # a clock that steps back starts another second, not a negative budget
    assert b.take()
    assert all(PerSecond(0, lambda: 1.0).take() for _ in range(1000))
