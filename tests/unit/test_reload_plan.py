"""pxetui/reload.py: which keys a SIGHUP reload changes, refuses, and which services restart."""

from __future__ import annotations

import copy

from pxetui import reload
from pxetui.config import Config, Reservation


def base() -> Config:
    cfg = Config.from_dict({"interface": "eth0", "state_dir": "/tmp/st", "dhcp": {"range": "10.0.0.100-10.0.0.199"}})
    cfg.server_ip, cfg.netmask = "10.0.0.1", "255.255.255.0"
    return cfg


def test_nothing_changed_restarts_nothing():
    a = base()
    assert reload.changed_keys(a, copy.deepcopy(a)) == []
    assert reload.restarts([], ["dhcp", "tftp", "http", "capture"]) == {}


def test_each_section_restarts_only_its_readers():
    a = base()
    b = copy.deepcopy(a)
    b.http.max_per_client = 3
    b.dhcp.reservations.append(Reservation(mac="52:54:00:aa:bb:cc", ip="10.0.0.50"))
    changed = reload.changed_keys(a, b)
    assert changed == ["dhcp.reservations", "http.max_per_client"]
    assert reload.restarts(changed, ["dhcp", "tftp", "http", "capture"]) == {
        "dhcp": ["dhcp.reservations"], "http": ["http.max_per_client"]}


def test_http_port_restarts_every_service_that_renders_urls():
    a = base()
    b = copy.deepcopy(a)
    b.http.port = 8080
    assert set(reload.restarts(reload.changed_keys(a, b), ["dhcp", "tftp", "http", "capture"])) == {
        "dhcp", "tftp", "http", "capture"}


def test_ipv6_on_or_a_new_ipv6_address_restarts_the_tftp_and_http_listeners():
    """Their IPv6 listeners and URLs follow ipv6.enabled and server_ip6 (docs/IPV6.md); DHCPv6's
    own keys (range, lease time) leave them alone."""
    a = base()
    b = copy.deepcopy(a)
    b.ipv6.enabled, b.server_ip6 = True, "fd99::1"
    assert set(reload.restarts(reload.changed_keys(a, b), ["tftp", "http", "capture"])) == {"tftp", "http"}
    c = copy.deepcopy(b)
    c.ipv6.lease_time = 7200
    assert "tftp" not in reload.restarts(reload.changed_keys(b, c), ["tftp", "http"])


def test_engine_keys_are_refused_or_deferred():
    a = base()
    b = copy.deepcopy(a)
    b.state_dir, b.security.user, b.tracker.stuck_seconds = "/srv/other", "nobody", 30
    changed = reload.changed_keys(a, b)
    problems = reload.refused(changed)
    assert [p.split(":")[0] for p in problems] == ["security.user", "state_dir"]
    assert "changes only when pxetui serve restarts" in problems[0]
    assert reload.at_next_start(changed) == ["tracker.stuck_seconds"]
