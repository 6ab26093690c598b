"""Events the engine dropped rather than slow serving: folded per service, on the dashboard."""

from __future__ import annotations

from ui_feed import ev, lab_feed
from ui_helpers import make_app, screen_text, settle

from pxetui.state import EngineState

SIZE = (80, 24)


def test_events_dropped_folds_into_per_service_counters():
    s = EngineState()
    for e in lab_feed():
        s.apply(e)
    assert not s.dropped  # nothing lost, nothing shown
    s.take_dirty()
    changed = s.apply(ev("EventsDropped", 50, service="dhcp", counts={"DhcpPacket": 1200, "Log": 34},
                         total=1234))
    assert changed == {"logs", "services"} and s.take_dirty()["services"] == {"dhcp"}
    s.apply(ev("EventsDropped", 51, service="dhcp", counts={"DhcpPacket": 66}, total=66))
    s.apply(ev("EventsDropped", 52, service="ui", counts={"ClientUpdate": 7}, total=7))
    # an older engine's line without a total: the counts say it; nonsense counts add nothing
    s.apply(ev("EventsDropped", 53, service="tftp", counts={"TransferProgress": 5, "x": "many"}))
    assert s.apply(ev("EventsDropped", 54, service="http", total=0)) == {"logs"}
    assert dict(s.dropped) == {"dhcp": 1300, "ui": 7, "tftp": 5}
    assert s.logs[-1].level == "warning"  # in the log as a warning too


async def test_dashboard_shows_dropped_counts_only_when_there_are_some():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "dropped" not in screen_text(app)
        source.push(ev("EventsDropped", 60, service="dhcp", counts={"DhcpPacket": 12345},
                       total=12345))
        source.push(ev("EventsDropped", 61, service="ui", counts={"Log": 20001}, total=20001))
        await settle(app, pilot)
        text = screen_text(app)
        assert "dropped: dhcp 12,345  ui 20,001" in text
        # one short line: the services above it are all still shown
        for name in ("dhcp", "tftp", "http", "capture"):
            assert f"{name} " in text
        assert "67,4011" in text
        source.push(ev("EventsDropped", 62, service="dhcp", counts={"DhcpPacket": 3_000_000},
                       total=3_000_000))
        await settle(app, pilot)
        assert "dropped: dhcp 3,012k  ui 20,001" in screen_text(app)  # still fits the box
