"""[ipv6]: the keys are checked without an interface; resolve() takes the interface's first
global/ULA address (never a tentative or link-local one) and its /64, and the pool in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pxetui import config
from pxetui.netinfo import InterfaceInfo, ipv6_addresses

IF_INET6 = """\
fe800000000000005054fffe000001 02 40 20 80       br0
fd990000000000000000000000000002 02 40 00 c0       br0
fd990000000000000000000000000001 02 40 00 80       br0
20010db8000000000000000000000001 02 30 00 80       eth9
"""


def test_ipv6_addresses_skips_link_local_tentative_and_other_interfaces(tmp_path: Path) -> None:
    p = tmp_path / "if_inet6"
    p.write_text(IF_INET6)
    # fd99::2 is tentative (0x40), fe80:: is link scope (0x20)
    assert ipv6_addresses("br0", str(p)) == [("fd99::1", 64)]
    assert ipv6_addresses("eth9", str(p)) == [("2001:db8::1", 48)]
    assert ipv6_addresses("nope", str(p)) == []
    assert ipv6_addresses("br0", str(tmp_path / "missing")) == []


@pytest.mark.parametrize("ipv6, message", [
    ({"mode": "relay"}, "ipv6.mode: 'relay' is not one of full, proxy"),
    ({"router_advertisements": "yes"}, "ipv6.router_advertisements: 'yes' is not one of auto, on, off"),
    ({"lease_time": 10}, "ipv6.lease_time: 10 is outside 60..31536000 seconds"),
    ({"range": "fd99::9-fd99::1"}, "ipv6.range: 'fd99::9-fd99::1': START is after END"),
    ({"range": "fd99::9"}, "ipv6.range: 'fd99::9': expected START-END"),
    ({"bogus": 1}, "ipv6.bogus: unknown key"),
])
def test_bad_ipv6_keys_are_named(ipv6: dict[str, object], message: str) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.Config.from_dict({"ipv6": ipv6})
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems


def _info() -> InterfaceInfo:
    return InterfaceInfo("br0", True, "10.77.0.1", "255.255.255.0", "52:54:00:00:00:01", 1000, 1500)


def test_resolve_fills_the_address_prefix_and_default_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "ipv6_addresses", lambda name: [("fd99::1", 64)])
    cfg = config.resolve(config.Config.from_dict({"interface": "br0", "ipv6": {"enabled": True}}), _info())
    assert (cfg.server_ip6, cfg.prefix6, cfg.ipv6.range) == ("fd99::1", "fd99::/64", "fd99::1000-fd99::1fff")
    assert cfg.http_base_for("fd99::1001") == "http://[fd99::1]" and cfg.http_base_for("10.77.0.9") == "http://10.77.0.1"
    again = config.Config.from_json(cfg.to_json())  # what a service is handed
    assert (again.server_ip6, again.prefix6) == ("fd99::1", "fd99::/64")


@pytest.mark.parametrize("found, ipv6, message", [
    ([], {}, "ipv6.enabled: br0 has no global or ULA IPv6 address"),
    ([("fd99::1", 48)], {}, "ipv6.enabled: fd99::1/48 on br0: DHCPv6 addresses"),
    ([("fd99::1", 64)], {"range": "fd98::1-fd98::9"}, "ipv6.range: fd98::1 is outside br0's prefix fd99::/64"),
])
def test_resolve_refuses_what_the_interface_cannot_serve(monkeypatch: pytest.MonkeyPatch, found: list[tuple[str, int]],
                                                         ipv6: dict[str, object], message: str) -> None:
    monkeypatch.setattr(config, "ipv6_addresses", lambda name: found)
    with pytest.raises(config.ConfigError) as exc:
        config.resolve(config.Config.from_dict({"interface": "br0", "ipv6": {"enabled": True, **ipv6}}), _info())
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems


def test_ipv6_off_leaves_the_config_ipv4_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "ipv6_addresses", lambda name: [("fd99::1", 64)])
    cfg = config.resolve(config.Config.from_dict({"interface": "br0"}), _info())
    assert cfg.server_ip6 == "" and cfg.http_base_for("fd99::1001") == "http://10.77.0.1"
