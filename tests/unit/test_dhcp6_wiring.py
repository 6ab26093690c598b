"""How the supervisor runs DHCPv6: when (ipv6.enabled, and DHCP not off unless proxy), on
which port, and which config changes restart it."""

from __future__ import annotations

import pytest

from pxetui import reload, service, supervisor
from pxetui.config import Config


@pytest.mark.parametrize("dhcp_mode, v6_mode, enabled, runs", [
    ("auto", "full", False, False),
    ("auto", "full", True, True),
    ("full", "proxy", True, True),
    ("off", "full", True, False),  # another server hands out addresses: no full DHCPv6 beside it
    ("off", "proxy", True, True),  # boot URLs only
])
def test_dhcp6_runs_when(dhcp_mode: str, v6_mode: str, enabled: bool, runs: bool) -> None:
    cfg = Config.from_dict({"dhcp": {"mode": dhcp_mode}, "ipv6": {"enabled": enabled, "mode": v6_mode}})
    names = supervisor.services_for(cfg)
    assert ("dhcp6" in names) is runs
    assert (supervisor.ports_needed(cfg, names).get(547) == "udp") is runs
    assert "dhcp6" in service.SERVICES


def test_ipv6_changes_restart_dhcp6_only_among_dhcp_services() -> None:
    old = Config.from_dict({"ipv6": {"enabled": True}})
    new = Config.from_dict({"ipv6": {"enabled": True, "lease_time": 600}})
    assert reload.restarts(reload.changed_keys(old, new), ["dhcp", "dhcp6"]) == {"dhcp6": ["ipv6.lease_time"]}
