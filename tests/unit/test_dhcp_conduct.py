"""RFC 2131 conduct of the pure server on a network that is not ours (docs/SECURITY.md): silence
about addresses that are not ours, DECLINE and RELEASE only from the holder with our server id,
and the step back to proxyDHCP when another server hands out addresses."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from test_dhcp_server import OVMF_VC, SEABIOS_VC, Rig, client_packet, mac_bytes

from pxetui.dhcp import options as o
from pxetui.dhcp.codec import BOOTREPLY, BROADCAST_FLAG, Packet, build
from pxetui.dhcp.probe import recheck_mac

US = socket.inet_aton("10.99.0.1")
OTHER = socket.inet_aton("10.99.0.2")


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def ignored(rig: Rig) -> list[str]:
    return [e.reason for e in rig.of("DhcpIgnored")]  # type: ignore[attr-defined]


def rows(rig: Rig) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in rig.conn.execute("SELECT ip, mac, state FROM dhcp_leases ORDER BY ip")]


# -- silence about addresses that are not ours (RFC 2131 4.3.2) ---------------------------

@pytest.mark.parametrize("name, opts, src", [
    ("INIT-REBOOT, another network", {"o50": socket.inet_aton("192.0.2.7")}, ("0.0.0.0", 68)),
    ("INIT-REBOOT, our subnet outside our pool (the site server's range)",
     {"o50": socket.inet_aton("10.99.0.50")}, ("0.0.0.0", 68)),
    ("REBINDING, another network", {"ciaddr": "192.0.2.9"}, ("192.0.2.9", 68)),
    ("RENEWING, another server's lease on our subnet", {"ciaddr": "10.99.0.220"}, ("10.99.0.220", 68)),
])
def test_requests_about_addresses_not_ours_get_no_answer(rig: Rig, name: str, opts: dict[str, object],
                                                         src: tuple[str, int]) -> None:
    assert rig.send(client_packet(o.REQUEST, mac_bytes(40), **opts), src=src) == [], name
    assert "not ours" in ignored(rig)[-1] and "RFC 2131 4.3.2" in ignored(rig)[-1]
    assert not rig.of("LeaseGranted") and rows(rig) == []


def test_init_reboot_for_our_address_held_by_another_is_nakked(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(41)).yiaddr
    rig.dora(mac_bytes(42))  # a client we have a record of (RFC 2131 4.3.2 NAKs only those)
    nak, _ = rig.one(client_packet(o.REQUEST, mac_bytes(42), o50=ip))
    assert o.msg_type(nak) == o.NAK and nak.options[o.SERVER_ID] == US


def test_init_reboot_for_a_quarantined_address_of_ours_is_nakked(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(43)).yiaddr
    rig.send(client_packet(o.DECLINE, mac_bytes(43), o50=ip, o54=US))
    rig.dora(mac_bytes(44))
    nak, _ = rig.one(client_packet(o.REQUEST, mac_bytes(44), o50=ip))
    assert o.msg_type(nak) == o.NAK and b"quarantined" in nak.options[o.MESSAGE]


# -- a REQUEST from a client we do not know (RFC 2131 4.3.2; docs/SECURITY.md) --------------

def test_init_reboot_from_a_client_we_have_no_record_of_is_silent(rig: Rig) -> None:
    # One REQUEST per spoofed MAC, never a DISCOVER: it used to get an ACK and a lease,
    # past new_offers_per_second and max_offers. RFC 2131 4.3.2: no record, MUST be silent.
    held = rig.dora(mac_bytes(46)).yiaddr
    for addr in (socket.inet_aton("10.99.0.150"), held):  # a free address, another's
        assert rig.send(client_packet(o.REQUEST, mac_bytes(47), o50=addr)) == []
        assert "no record" in ignored(rig)[-1] and "RFC 2131 4.3.2" in ignored(rig)[-1]
    assert not rig.store.knows("52:54:00:aa:00:2f") and len(rows(rig)) == 1
    assert len(rig.of("LeaseGranted")) == 1


def test_init_reboot_of_a_known_client_is_answered(tmp_path: Path) -> None:
    rig = Rig(tmp_path, reservations=[{"mac": "52:54:00:aa:00:31", "ip": "10.99.0.42"}])
    ip = rig.dora(mac_bytes(48)).yiaddr
    rig.start("full")  # a restart: the lease database is our record of the client
    ack, _ = rig.one(client_packet(o.REQUEST, mac_bytes(48), o50=ip))
    assert o.msg_type(ack) == o.ACK and ack.yiaddr == ip
    # a reservation is a record too; an offer is one (the client REQUESTs without option 54)
    ack, _ = rig.one(client_packet(o.REQUEST, mac_bytes(49), o50=socket.inet_aton("10.99.0.42")))
    assert o.msg_type(ack) == o.ACK
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(50)))
    ack, _ = rig.one(client_packet(o.REQUEST, mac_bytes(50), o50=offer.yiaddr))
    assert o.msg_type(ack) == o.ACK and ack.yiaddr == offer.yiaddr


@pytest.mark.parametrize("name, opts", [
    ("SELECTING us with no offer of ours", {"o54": US, "o50": socket.inet_aton("10.99.0.150")}),
    ("RENEWING a free address of ours with no lease", {"ciaddr": "10.99.0.150"}),
])
def test_request_from_a_new_client_is_charged_like_a_discover(tmp_path: Path, name: str,
                                                              opts: dict[str, object]) -> None:
    # Kept working (a late REQUEST after our offer was taken back; a lease lost with our
    # database), but each costs a new-offer token: one REQUEST per spoofed MAC no longer
    # binds past new_offers_per_second (docs/SECURITY.md).
    rig = Rig(tmp_path, limits={"new_offers_per_second": 1, "new_offers_burst": 2})
    rig.server.clock = lambda: 1000.0  # before the bucket's start: it never refills here
    first, _ = rig.one(client_packet(o.REQUEST, mac_bytes(70), **opts), src=("10.99.0.150", 68))
    assert o.msg_type(first) == o.ACK, name
    rig.one(client_packet(o.DISCOVER, mac_bytes(71)))  # the last token
    assert rig.send(client_packet(o.REQUEST, mac_bytes(72), **opts), src=("10.99.0.150", 68)) == []
    (hit,) = [e for e in rig.of("LimitHit") if e.limit == "dhcp.limits.new_offers_per_second"]  # type: ignore[attr-defined]
    assert "REQUEST dropped" in hit.message  # type: ignore[attr-defined]
    assert rig.store.lease_of("52:54:00:aa:00:48") is None
    # a client we know is never charged: it renews with the bucket empty
    again, _ = rig.one(client_packet(o.REQUEST, mac_bytes(70), ciaddr="10.99.0.150"), src=("10.99.0.150", 68))
    assert o.msg_type(again) == o.ACK


def test_selecting_another_server_is_silent_and_frees_our_offer(rig: Rig) -> None:
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(45)))
    assert rig.send(client_packet(o.REQUEST, mac_bytes(45), o54=OTHER, o50=offer.yiaddr)) == []
    assert "52:54:00:aa:00:2d" not in rig.store.offers
    assert rig.store.holder(int.from_bytes(offer.yiaddr), 0) is None


# -- DECLINE: only the holder of a running lease, with our server id -----------------------

def test_decline_from_another_mac_changes_nothing(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(50)).yiaddr
    before = rows(rig)
    assert rig.send(client_packet(o.DECLINE, mac_bytes(51), o50=ip, o54=US)) == []
    assert "refused: the lease on that address is another client's" in ignored(rig)[-1]
    assert rows(rig) == before and not rig.of("LeaseEnded")
    assert rig.store.lease_of("52:54:00:aa:00:32").ip == int.from_bytes(ip)  # type: ignore[union-attr]


@pytest.mark.parametrize("sid, why", [(None, "no server identifier"), (OTHER, "for server 10.99.0.2")],
                         ids=["no server id", "another server id"])
def test_decline_without_our_server_id_changes_nothing(rig: Rig, sid: bytes | None, why: str) -> None:
    ip = rig.dora(mac_bytes(52)).yiaddr
    opts = {"o50": ip} | ({"o54": sid} if sid else {})
    assert rig.send(client_packet(o.DECLINE, mac_bytes(52), **opts)) == []
    assert why in ignored(rig)[-1] and not rig.of("LeaseEnded")
    assert rows(rig)[0][2] == "bound"


def test_decline_of_free_or_merely_offered_addresses_changes_nothing(rig: Rig) -> None:
    # one MAC declining every address of the pool (the quarantine attack)
    for host in range(100, 200):
        rig.send(client_packet(o.DECLINE, mac_bytes(53), o50=socket.inet_aton(f"10.99.0.{host}"), o54=US))
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(54)))
    rig.send(client_packet(o.DECLINE, mac_bytes(54), o50=offer.yiaddr, o54=US))
    assert rows(rig) == [] and not rig.of("LeaseEnded")
    assert all("refused: no running lease of ours" in r for r in ignored(rig)[-101:])
    assert rig.dora(mac_bytes(54)).yiaddr == offer.yiaddr


def test_decline_from_the_holder_quarantines(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(55)).yiaddr
    rig.send(client_packet(o.DECLINE, mac_bytes(55), o50=ip, o54=US))
    assert rig.of("LeaseEnded")[-1].reason == "declined"  # type: ignore[attr-defined]
    assert rows(rig) == [(socket.inet_ntoa(ip), "", "declined")]


# -- RELEASE: only the lease holder, from its address, with our server id ------------------

@pytest.mark.parametrize("mac, sid, src, why", [
    (61, US, "ip", "refused: the lease on that address is another client's"),
    (60, OTHER, "ip", "for server 10.99.0.2"),
    (60, None, "ip", "no server identifier"),
    (60, US, "10.99.0.77", "sent from 10.99.0.77, not from the released address"),
], ids=["another MAC", "another server id", "no server id", "another source address"])
def test_spoofed_release_changes_nothing(rig: Rig, mac: int, sid: bytes | None, src: str, why: str) -> None:
    ip = rig.dora(mac_bytes(60)).ip("yiaddr")
    before = rows(rig)
    opts = {"ciaddr": ip} | ({"o54": sid} if sid else {})
    assert rig.send(client_packet(o.RELEASE, mac_bytes(mac), **opts), src=(ip if src == "ip" else src, 68)) == []
    assert why in ignored(rig)[-1], ignored(rig)
    assert rows(rig) == before and not rig.of("LeaseEnded")
    # the victim's address is still its own: nobody else is offered it
    assert rig.one(client_packet(o.DISCOVER, mac_bytes(62), o50=socket.inet_aton(ip)))[0].ip("yiaddr") != ip


def test_release_of_an_offer_changes_nothing(rig: Rig) -> None:
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(63)))
    ip = offer.ip("yiaddr")
    rig.send(client_packet(o.RELEASE, mac_bytes(63), ciaddr=ip, o54=US), src=(ip, 68))
    assert "refused: no lease of ours" in ignored(rig)[-1]
    assert rig.store.holder(int.from_bytes(offer.yiaddr), 0) == "52:54:00:aa:00:3f"


def test_relayed_release_is_checked_against_giaddr_not_source(tmp_path: Path) -> None:
    rig = Rig(tmp_path, relay_pools=[{"subnet": "10.98.0.0/24", "range": "10.98.0.50-10.98.0.60"}])
    ack = rig.dora(mac_bytes(64), giaddr="10.98.0.1")
    rig.send(client_packet(o.RELEASE, mac_bytes(64), ciaddr=ack.ip("yiaddr"), giaddr="10.98.0.1", o54=US),
             src=("10.98.0.1", 67))
    assert rig.of("LeaseEnded")[-1].reason == "released"  # type: ignore[attr-defined]


@pytest.mark.parametrize("giaddr, src, why", [
    ("1.2.3.4", "10.99.0.66", "relayed (giaddr 1.2.3.4) but sent from 10.99.0.66, not from the relay"),
    ("1.2.3.4", "1.2.3.4", "relay giaddr 1.2.3.4 matches no pool"),
    ("10.98.0.1", "10.99.0.66", "relayed (giaddr 10.98.0.1) but sent from 10.99.0.66, not from the relay"),
    ("10.98.0.1", "10.98.0.1", "not on the relay's subnet 10.98.0.0/24"),
], ids=["made-up relay", "made-up relay, source forged too", "real relay, another source",
        "real relay, another subnet's address"])
@pytest.mark.parametrize("msg", [o.RELEASE, o.DECLINE], ids=["RELEASE", "DECLINE"])
def test_forged_relayed_release_or_decline_changes_nothing(tmp_path: Path, msg: int, giaddr: str,
                                                           src: str, why: str) -> None:
    # giaddr is only a field: the source check of RFC 2131 4.4.6 must not vanish when it is
    # set. A relayed RELEASE/DECLINE counts only from the relay for its own subnet's address
    # (docs/SECURITY.md). The victim is on our own segment (10.99.0.0/24).
    rig = Rig(tmp_path, relay_pools=[{"subnet": "10.98.0.0/24", "range": "10.98.0.50-10.98.0.60"}])
    ip = rig.dora(mac_bytes(65)).ip("yiaddr")
    before = rows(rig)
    opts = {"ciaddr": ip} if msg == o.RELEASE else {"o50": socket.inet_aton(ip)}
    assert rig.send(client_packet(msg, mac_bytes(65), giaddr=giaddr, o54=US, **opts), src=(src, 67)) == []
    assert why in ignored(rig)[-1], ignored(rig)
    assert rows(rig) == before and not rig.of("LeaseEnded")
    assert rig.store.lease_of("52:54:00:aa:00:41").ip == int.from_bytes(socket.inet_aton(ip))  # type: ignore[union-attr]


def test_relayed_decline_from_the_relay_quarantines(tmp_path: Path) -> None:
    rig = Rig(tmp_path, relay_pools=[{"subnet": "10.98.0.0/24", "range": "10.98.0.50-10.98.0.60"}])
    ack = rig.dora(mac_bytes(66), giaddr="10.98.0.1")
    rig.send(client_packet(o.DECLINE, mac_bytes(66), o50=ack.yiaddr, giaddr="10.98.0.1", o54=US),
             src=("10.98.0.1", 67))
    assert rig.of("LeaseEnded")[-1].reason == "declined"  # type: ignore[attr-defined]


# -- another server appears: step back to proxyDHCP ---------------------------------------

def foreign_reply(msg: int, yiaddr: str, sid: bytes | None = OTHER) -> bytes:
    opts = {o.MSG_TYPE: bytes((msg,))} | ({o.SERVER_ID: sid} if sid else {})
    return build(Packet(op=BOOTREPLY, xid=7, flags=BROADCAST_FLAG, yiaddr=socket.inet_aton(yiaddr),
                        chaddr=mac_bytes(99), options=opts))


@pytest.fixture
def booted(tmp_path: Path) -> Rig:
    rig = Rig(tmp_path)
    rig.cfg.tftp_root.mkdir(parents=True)
    for name in ("pxelinux.0", "grubx64.efi", "ipxe.efi"):
        (rig.cfg.tftp_root / name).write_bytes(b"x")
    rig.start("full")
    return rig


def test_our_own_replies_and_proxy_offers_do_not_count(booted: Rig) -> None:
    for data, src in ((foreign_reply(o.OFFER, "10.99.0.120", US), ("10.99.0.1", 67)),
                      (foreign_reply(o.ACK, "10.99.0.120", None), ("10.99.0.1", 67)),
                      (foreign_reply(o.OFFER, "0.0.0.0"), ("10.99.0.2", 67)),  # a proxyDHCP offer
                      (foreign_reply(o.NAK, "0.0.0.0"), ("10.99.0.2", 67)),
                      (b"junk", ("10.99.0.2", 67))):
        assert booted.server.saw_reply(data, src) is False
    assert booted.server.mode == "full" and not booted.of("DhcpModeDecided")


def test_a_foreign_offer_turns_full_mode_into_proxy(booted: Rig) -> None:
    booted.server.clock = lambda: 1000.0
    holder = booted.dora(mac_bytes(70))
    pending, _ = booted.one(client_packet(o.DISCOVER, mac_bytes(71)))
    assert booted.server.saw_reply(foreign_reply(o.OFFER, "10.99.0.160"), ("10.99.0.2", 67)) is True
    assert booted.server.mode == "proxy"
    decided = booted.of("DhcpModeDecided")[-1]
    assert decided.mode == "proxy" and decided.other_server == "10.99.0.2"  # type: ignore[attr-defined]
    assert "stopped handing out addresses" in decided.reason  # type: ignore[attr-defined]
    alert = booted.of("Alert")[-1]
    assert alert.key == "foreign-dhcp:10.99.0.2" and alert.severity == "error"  # type: ignore[attr-defined]
    assert booted.of("ForeignDhcpServer")[-1].server_ip == "10.99.0.2"  # type: ignore[attr-defined]
    assert booted.store.offers == {}  # outstanding offers dropped
    # no more addresses: a PXE client gets a proxy offer (boot information only), a plain
    # client nothing
    offer, _ = booted.one(client_packet(o.DISCOVER, mac_bytes(72), o93=b"\x00\x07", o60=OVMF_VC))
    assert offer.ip("yiaddr") == "0.0.0.0" and offer.file == b"ipxe.efi"  # the proxy defaults
    assert booted.send(client_packet(o.DISCOVER, mac_bytes(73))) == []
    # the holder of a running lease keeps it until it expires: confirmed, never extended
    booted.server.clock = lambda: 1000.0 + 600
    ip = holder.ip("yiaddr")
    ack, dest = booted.one(client_packet(o.REQUEST, mac_bytes(70), ciaddr=ip), src=(ip, 68))
    assert o.msg_type(ack) == o.ACK and ack.ip("yiaddr") == ip and dest == (ip, 68)
    assert int.from_bytes(ack.options[o.LEASE_TIME]) == 3000
    assert int.from_bytes(ack.options[o.RENEWAL_T1]) == 1500
    assert booted.store.lease_of("52:54:00:aa:00:46").expires == 1000.0 + 3600  # type: ignore[union-attr]
    # a stale offer of ours is NAKed at once; anything else is the other server's business
    nak, _ = booted.one(client_packet(o.REQUEST, mac_bytes(71), o54=US, o50=pending.yiaddr))
    assert o.msg_type(nak) == o.NAK
    assert booted.send(client_packet(o.REQUEST, mac_bytes(74), o50=socket.inet_aton(ip))) == []
    assert booted.send(client_packet(o.REQUEST, mac_bytes(70), o50=socket.inet_aton("10.99.0.160"),
                                     o54=OTHER)) == []
    # and once the lease has run out, silence
    booted.server.clock = lambda: 1000.0 + 3601
    assert booted.send(client_packet(o.REQUEST, mac_bytes(70), ciaddr=ip), src=(ip, 68)) == []
    # the holder may still give it back
    booted.server.clock = lambda: 1000.0 + 700
    booted.send(client_packet(o.RELEASE, mac_bytes(70), ciaddr=ip, o54=US), src=(ip, 68))
    assert booted.of("LeaseEnded")[-1].reason == "released"  # type: ignore[attr-defined]


def test_the_switch_happens_once(booted: Rig) -> None:
    assert booted.server.saw_reply(foreign_reply(o.ACK, "10.99.0.161"), ("10.99.0.2", 67))
    assert not booted.server.saw_reply(foreign_reply(o.OFFER, "10.99.0.162"), ("10.99.0.2", 67))
    assert len(booted.of("DhcpModeDecided")) == 1


def test_our_probe_mac_is_never_served(booted: Rig) -> None:
    booted.server.probe_mac = "02:11:22:33:44:55"
    probe = client_packet(o.DISCOVER, bytes.fromhex("021122334455"), o60=SEABIOS_VC, o93=b"\x00\x00")
    assert booted.send(probe) == []
    assert not booted.of("DhcpPacket") and booted.store.offers == {}


def test_the_recheck_mac_is_made_up_from_ours_and_no_real_nics() -> None:
    for own in ("52:54:00:12:34:56", "00:1b:21:aa:bb:cc", "06:00:00:00:00:01", "fe:ff:ff:ff:ff:ff"):
        mac = recheck_mac(own)
        first = int(mac[:2], 16)
        assert mac != own and mac[2:] == own[2:]
        assert first & 0x02 and not first & 0x01  # locally administered, unicast
    assert recheck_mac("52:54:00:12:34:56") == recheck_mac("52:54:00:12:34:56")  # capture derives it too
