"""The IPv6 diagnosis rules (pxetui/diagnosis.py): each from a capture built by pcap6.py and
replayed through decode and the tracker as `pxetui analyze` does, and the segment-wide RA
rule on its own; the healthy IPv6 boot gives no rule."""

from __future__ import annotations

import pcap6
from pcap6 import ADDRESS, CLIENT_MAC, SERVER_LL

from pxetui import diagnosis
from pxetui.commands.analyze import replay
from pxetui.dhcp6 import codec as c
from pxetui.tracker import Tracker


def client(tmp_path, frames, stuck: float = 60):
    path = tmp_path / "boot6.pcapng"
    pcap6.write(path, frames)
    tr = Tracker(stuck_seconds=stuck)
    for _ in replay(str(path), stuck_seconds=stuck, tracker=tr):
        pass
    return tr.clients[CLIENT_MAC]


def test_healthy_ipv6_boot_has_no_finding(tmp_path):
    c6 = client(tmp_path, pcap6.ovmf_pxe6())
    assert diagnosis.diagnose(c6.events) == []
    assert c6.ip == ADDRESS and "kernel may be running" in c6.diagnosis


def test_solicits_nobody_answers(tmp_path):
    frames = [(i * 4.0, pcap6.dhcp6(pcap6.client_msg(c.SOLICIT, xid=i + 1), True)) for i in range(4)]
    c6 = client(tmp_path, frames)
    assert [f.rule for f in diagnosis.diagnose(c6.events)] == ["dhcp6_unanswered"]
    assert c6.diagnosis.startswith("Firmware asked over IPv6 but only IPv4 is served")
    assert "4 DHCPv6 Solicit(s) over 12 s" in c6.diagnosis and "--ipv6" in c6.diagnosis
    assert "docs/IPV6.md" in c6.diagnosis


def test_answer_without_option_59(tmp_path):
    frames = [(0.0, pcap6.dhcp6(pcap6.client_msg(c.SOLICIT), True)),
              (0.1, pcap6.dhcp6(pcap6.server_msg(c.ADVERTISE, url=None), False)),
              (1.0, pcap6.dhcp6(pcap6.client_msg(c.REQUEST, address=ADDRESS,
                                                 server_id=c.duid_ll(pcap6.SERVER_MAC)), True)),
              (1.1, pcap6.dhcp6(pcap6.server_msg(c.REPLY, url=None), False))]
    c6 = client(tmp_path, frames)
    assert [f.rule for f in diagnosis.diagnose(c6.events)] == ["dhcp6_no_boot_url"]
    assert c6.diagnosis.startswith("No boot file URL (option 59)")
    assert f"2 Advertise/Reply from {SERVER_LL}" in c6.diagnosis
    assert c6.ip == ADDRESS  # it got its address; only the URL is missing


def test_ipv6_rules_stay_quiet_when_the_client_booted_over_ipv4_after_all():
    sol = {"type": "DhcpPacket", "ts": 1.0, "msg_type": "SOLICIT", "arch": 7, "vendor_class": "PXEClient"}
    fetched = {"type": "TransferStarted", "ts": 5.0, "path": "grubx64.efi", "transfer_id": "a"}
    assert diagnosis.dhcp6_unanswered([sol]) is not None
    assert diagnosis.dhcp6_unanswered([sol, fetched]) is None
    # A laptop's Solicit (no option 61, no PXE vendor class) is not a boot client's.
    assert diagnosis.dhcp6_unanswered([{**sol, "arch": None, "vendor_class": None}]) is None
    adv = {"type": "DhcpPacket", "ts": 1.1, "msg_type": "ADVERTISE", "server_ip": "fe80::1"}
    assert diagnosis.dhcp6_no_boot_url([sol, adv]) is not None
    assert diagnosis.dhcp6_no_boot_url([sol, {**adv, "boot_file": "tftp://[fd99::1]/x.efi"}]) is None


def test_router_advert_rule():
    sol = {"type": "DhcpPacket", "ts": 5000.0, "msg_type": "SOLICIT", "arch": 7, "vendor_class": "PXEClient"}
    reply = {"type": "DhcpPacket", "ts": 5001.0, "msg_type": "REPLY", "yiaddr": "fd99::1000",
             "boot_file": "tftp://[fd99::1]/x.efi"}
    ra = {"type": "RouterAdvert", "ts": 4000.0, "ip": "fe80::1", "managed": False}
    fetch = {"type": "TransferStarted", "ts": 5002.0, "path": "x.efi", "transfer_id": "a"}
    f = diagnosis.router_advert_problem([sol, reply])
    assert f is not None and f.message.startswith("No router advertisement on this segment")
    assert "took fd99::1000 and tftp://[fd99::1]/x.efi but fetched nothing" in f.message
    assert "ipv6.router_advertisements" in f.message
    # Any RA (M on or off), or a download, and PXE is not stopped by the routers (measured).
    assert diagnosis.router_advert_problem([sol, reply, ra]) is None
    assert diagnosis.router_advert_problem([sol, reply, fetch]) is None
    # A PXE client with no address yet: the DHCPv6 rules speak, not this one.
    assert diagnosis.router_advert_problem([sol]) is None
    # UEFI HTTP boot needs an RA with the on-link prefix even before it has an address.
    http = {**sol, "vendor_class": "HTTPClient:Arch:00016:UNDI:003016", "arch": 16}
    f = diagnosis.router_advert_problem([http])
    assert f is not None and "HTTP boot over IPv6 needs one with the on-link prefix" in f.message
    # An RA from long before the client started does not count for it (RFC 4861 MaxRtrAdvInterval).
    old = {**ra, "ts": 5000.0 - diagnosis.RA_MEMORY - 1}
    assert diagnosis.router_advert_problem([http, old]) is not None
    assert diagnosis.router_advert_problem([http, {**ra, "ts": 4999.0}]) is None
    assert diagnosis.router_advert_problem([ra]) is None  # no boot client asked
    # Segment-wide: it needs RouterAdvert events the tracker never keeps, so it is no RULE.
    assert diagnosis.router_advert_problem not in diagnosis.RULES
