"""IPv6 addresses in the 80x24 tables: a dual-stack segment with one IPv4 client and one
IPv6-only client (OVMF PXE over IPv6: its lease from a DHCPv6 server's link-local address),
and a transfer from a long global IPv6 address whose MAC is unknown. A short ULA address
("fd99::1000") is shown whole; a long one is cut in the middle, keeping its prefix and its
host part; the client's detail shows it whole. Snapshots: `pytest tests/ui/test_ipv6_tables.py
--snapshot-update`, then look at the SVGs."""

from __future__ import annotations

from typing import Any

import pytest
from ui_feed import T0, ev
from ui_helpers import goto, make_app, screen_text

from screens import fmt
from screens.clients import ip_order

V4_MAC, V4_IP = "52:54:00:12:34:01", "10.99.0.50"
V6_MAC, V6_IP = "52:54:00:12:34:0d", "fd99::1000"
V6_SERVER = "fe80::5054:ff:fe00:9901"
LONG_V6 = "2001:db8:1234:5678:9abc:def0:1234:5678"


def dual_stack_feed() -> list[dict[str, Any]]:
    out = [
        ev("EngineStarted", 0, service="supervisor", interface="br0", address="10.99.0.1",
           netmask="255.255.255.0", dhcp_mode="full", dhcp_mode_reason="forced by --dhcp full",
           http_port=80, version="0.1"),
        ev("LeaseGranted", 2, service="dhcp", mac=V4_MAC, ip=V4_IP, expires=T0 + 3602, hostname="bios1"),
        ev("LeaseGranted", 3, service="capture", mac=V6_MAC, ip=V6_IP, ours=False, server_ip=V6_SERVER,
           expires=T0 + 7203),
        ev("RouterAdvert", 3.5, service="capture", ip=V6_SERVER, managed=True, other=True,
           lifetime=1800, prefixes=["fd99::/64"]),
    ]
    for i, (mac, ip, fw, arch, stage) in enumerate(((V4_MAC, V4_IP, "bios", 0, "kernel"),
                                                    (V6_MAC, V6_IP, "uefi64", 7, "bootloader"))):
        out.append(ev("ClientUpdate", 5 + i, service="tracker", mac=mac, ip=ip, stage=stage,
                      firmware=fw, arch=arch, progress=0.4 + i / 10, last_event=f"{stage} started",
                      stages=[{"stage": "discover", "ts": T0 + 1 + i}, {"stage": stage, "ts": T0 + 5 + i}]))
    transfers = ((V4_MAC, V4_IP, "vmlinuz"), (V6_MAC, V6_IP, "grubx64.efi"), (None, LONG_V6, "shimx64.efi"))
    for i, (mac, ip, path) in enumerate(transfers):
        out.append(ev("TransferStarted", 10 + i, service="capture" if mac is None else "tftp", mac=mac,
                      ip=ip, transfer_id=f"t{i}", protocol="tftp", path=path, size=2_000_000,
                      options={"blksize": 1456, "windowsize": 4}, ours=mac is not None))
        out.append(ev("TransferProgress", 11 + i, service="tftp", transfer_id=f"t{i}", protocol="tftp",
                      bytes_done=500_000, size=2_000_000, rate=250_000.0))
    return out


def test_address_is_cut_in_the_middle_only_when_too_long():
    assert fmt.address(V4_IP, 15) == V4_IP and fmt.address(V6_IP, 15) == V6_IP
    assert fmt.address(None, 15) == "-"
    cut = fmt.address(LONG_V6, 15)
    assert len(cut) == 15 and cut == "2001…:1234:5678"
    assert fmt.address(LONG_V6, 17) == "2001:…0:1234:5678"  # the transfers' Client column
    # IPv4 before IPv6, each in numeric order; no address first.
    ips = [LONG_V6, "10.99.0.9", None, V6_IP, "10.99.0.10"]
    assert sorted(ips, key=ip_order) == [None, "10.99.0.9", "10.99.0.10", LONG_V6, V6_IP]


@pytest.mark.parametrize("key,expect", [
    ("f2", [V4_IP, V6_IP]),
    ("f3", [V4_IP, V6_IP, "fe80…:fe00:9901"]),
    ("f4", [V4_MAC, V6_MAC, "2001:…0:1234:5678"]),
])
async def test_ipv6_tables_at_80x24(key, expect):
    app, _ = make_app(None, events=dual_stack_feed())
    async with app.run_test(size=(80, 24)) as pilot:
        await goto(app, pilot, key)
        text = screen_text(app)
        lines = text.splitlines()
        for want in expect:
            assert any(want in line for line in lines), (want, text)


async def test_detail_shows_the_whole_ipv6_address():
    app, _ = make_app(None, events=dual_stack_feed())
    async with app.run_test(size=(80, 24)) as pilot:
        await goto(app, pilot, "f2")
        app.screen.open_detail(V6_MAC)
        await pilot.pause()
        app.flush()
        await pilot.pause()
        assert f"{V6_MAC}  {V6_IP}" in screen_text(app)


@pytest.mark.parametrize("screen", ["clients", "leases", "transfers"])
def test_ipv6_snapshots(snap_compare, tmp_path, monkeypatch, screen):
    from test_snapshots import SCREENS, run_keys

    monkeypatch.chdir(tmp_path)
    app, _ = make_app(None, events=dual_stack_feed())
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_keys(*SCREENS[screen]))
