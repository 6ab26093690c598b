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


def test_probe_counts_only_an_advertise_that_offers_an_address() -> None:
    from pxetui.dhcp6 import codec as c
    from pxetui.dhcp6.probe import offered, solicit

    sent = c.parse(solicit("06:54:00:00:00:01", 0xABCDEF))
    assert sent.name == "SOLICIT" and c.duid_mac(sent.client_id) == "06:54:00:00:00:01" and sent.ia_na
    sid = c.duid_ll("52:54:00:00:00:02")

    def advert(xid: int, ia: c.IaNa) -> bytes:
        return c.encode(c.Dhcp6Message(c.ADVERTISE, xid, [(c.OPT_SERVERID, sid),
                                                         (c.OPT_IA_NA, c.encode_ia_na(ia))]))
    with_addr = c.IaNa(1, 0, 0, [c.IaAddress("fd99::100", 300, 600)])
    assert offered(advert(0xABCDEF, with_addr), 0xABCDEF) == (sid, "fd99::100")
    assert offered(advert(0x111111, with_addr), 0xABCDEF) is None  # another exchange
    no_addrs = c.IaNa(1, status=c.Status(c.STATUS_NO_ADDRS_AVAIL))
    assert offered(advert(0xABCDEF, no_addrs), 0xABCDEF) is None  # a proxy takes nothing from us
    assert offered(b"\x02garbage", 0xABCDEF) is None
