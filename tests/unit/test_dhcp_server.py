"""Protocol behaviour of DhcpServer in-process: full mode, proxy mode, port 4011, relay."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from services import base_config

from pxetui import store as dbstore
from pxetui.config import Config
from pxetui.dhcp import options as o
from pxetui.dhcp.codec import BOOTREPLY, Packet, build, parse
from pxetui.dhcp.policy import BootPolicy
from pxetui.dhcp.server import DhcpServer
from pxetui.dhcp.service import open_store
from pxetui.events import Event

SEABIOS_VC = b"PXEClient:Arch:00000:UNDI:002001"
OVMF_VC = b"PXEClient:Arch:00007:UNDI:003000"
UUID = b"\x00" + bytes(range(16))


def mac_bytes(n: int) -> bytes:
    return bytes.fromhex("525400aa00") + bytes((n,))


def client_packet(msg: int, mac: bytes, xid: int = 1, **opts: Any) -> Packet:
    options: dict[int, bytes] = {o.MSG_TYPE: bytes((msg,))}
    ciaddr = opts.pop("ciaddr", None)
    giaddr = opts.pop("giaddr", None)
    for k, v in opts.items():
        options[int(k.lstrip("o"))] = v
    p = Packet(xid=xid, chaddr=mac, options=options)
    if ciaddr:
        p.ciaddr = socket.inet_aton(ciaddr)
    if giaddr:
        p.giaddr = socket.inet_aton(giaddr)
    return p


class Rig:
    def __init__(self, tmp: Path, mode: str = "full", **dhcp: Any) -> None:
        self.tmp = tmp
        self.cfg: Config = base_config(tmp, dhcp=dhcp) if dhcp else base_config(tmp)
        self.cfg.dhcp.mode = mode
        self.conn = dbstore.connect(self.cfg.db_path)
        self.events: list[Event] = []
        self.start(mode)

    def start(self, mode: str) -> None:
        self.store = open_store(self.cfg, self.conn)
        self.policy = BootPolicy(self.cfg, dbstore.host_overrides(self.conn), proxy=mode == "proxy")
        self.server = DhcpServer(self.cfg, self.store, self.policy, mode, self.events.append,
                                 lambda mac: dbstore.clear_boot_once(self.conn, mac))

    def send(self, pkt: Packet, src: tuple[str, int] = ("0.0.0.0", 68), port: int = 67
             ) -> list[tuple[Packet, tuple[str, int]]]:
        replies = self.server.handle(build(pkt), src, port)
        self.store.commit()
        return [(parse(data), dest) for data, dest in replies]

    def one(self, pkt: Packet, **kw: Any) -> tuple[Packet, tuple[str, int]]:
        out = self.send(pkt, **kw)
        assert len(out) == 1, f"expected one reply, got {len(out)}; events {self.of('DhcpIgnored')}"
        return out[0]

    def dora(self, mac: bytes, **opts: Any) -> Packet:
        offer, _ = self.one(client_packet(o.DISCOVER, mac, **opts))
        ack, _ = self.one(client_packet(o.REQUEST, mac, o54=offer.options[o.SERVER_ID],
                                        o50=offer.yiaddr, **opts))
        assert o.msg_type(ack) == o.ACK
        return ack

    def of(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_dora_gives_an_address_with_lease_options(rig: Rig) -> None:
    offer, dest = rig.one(client_packet(o.DISCOVER, mac_bytes(1)))
    assert o.msg_type(offer) == o.OFFER and offer.op == BOOTREPLY
    assert dest == ("255.255.255.255", 68)  # client has no address yet
    assert offer.ip("yiaddr") == "10.99.0.100"
    assert offer.options[o.SERVER_ID] == socket.inet_aton("10.99.0.1")
    assert int.from_bytes(offer.options[o.LEASE_TIME]) == 3600
    assert offer.options[o.SUBNET_MASK] == socket.inet_aton("255.255.255.0")
    ack = rig.dora(mac_bytes(1))
    assert ack.ip("yiaddr") == "10.99.0.100"
    granted = rig.of("LeaseGranted")
    assert granted and granted[-1].ip == "10.99.0.100"  # type: ignore[attr-defined]
    row = rig.conn.execute("SELECT mac, state FROM dhcp_leases WHERE ip='10.99.0.100'").fetchone()
    assert tuple(row) == ("52:54:00:aa:00:01", "bound")


def test_never_the_same_address_to_two_clients(rig: Rig) -> None:
    ips = {rig.dora(mac_bytes(i)).ip("yiaddr") for i in range(1, 21)}
    assert len(ips) == 20
    # a second client asking for the first one's address is offered another
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(30), o50=socket.inet_aton("10.99.0.100")))
    assert offer.ip("yiaddr") not in ips


def test_requested_address_honoured_when_free(rig: Rig) -> None:
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(2), o50=socket.inet_aton("10.99.0.150")))
    assert offer.ip("yiaddr") == "10.99.0.150"


def test_renew_is_unicast_and_rebind_extends(rig: Rig) -> None:
    rig.server.clock = lambda: 1000.0
    ack = rig.dora(mac_bytes(3))
    ip = ack.ip("yiaddr")
    assert rig.store.lease_of("52:54:00:aa:00:03").expires == 1000.0 + 3600  # type: ignore[union-attr]
    rig.server.clock = lambda: 2000.0
    renew, dest = rig.one(client_packet(o.REQUEST, mac_bytes(3), ciaddr=ip), src=(ip, 68))
    assert o.msg_type(renew) == o.ACK and renew.ip("yiaddr") == ip
    assert dest == (ip, 68)  # RFC 2131 4.1: ciaddr set -> unicast
    assert rig.store.lease_of("52:54:00:aa:00:03").expires == 2000.0 + 3600  # type: ignore[union-attr]
    rig.server.clock = lambda: 3000.0
    rebind, _ = rig.one(client_packet(o.REQUEST, mac_bytes(3), ciaddr=ip))
    assert o.msg_type(rebind) == o.ACK and rebind.ip("yiaddr") == ip
    # each ACK extends the lease from its own time, in memory, on disk and in the event
    assert rig.store.lease_of("52:54:00:aa:00:03").expires == 3000.0 + 3600  # type: ignore[union-attr]
    assert rig.of("LeaseGranted")[-1].expires == 3000.0 + 3600  # type: ignore[attr-defined]
    row = rig.conn.execute("SELECT expires FROM dhcp_leases WHERE ip=?", (ip,)).fetchone()
    assert row[0] == 3000.0 + 3600


def test_selecting_us_for_an_address_off_our_subnet_is_nakked(rig: Rig) -> None:
    nak, dest = rig.one(client_packet(o.REQUEST, mac_bytes(4), o50=socket.inet_aton("192.168.5.7"),
                                      o54=socket.inet_aton("10.99.0.1")))
    assert o.msg_type(nak) == o.NAK and dest == ("255.255.255.255", 68)
    assert b"not on subnet" in nak.options[o.MESSAGE]


def test_init_reboot_for_another_clients_address_is_nakked(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(5)).yiaddr
    rig.dora(mac_bytes(6))  # RFC 2131 4.3.2: only a client we have a record of gets a NAK
    nak, _ = rig.one(client_packet(o.REQUEST, mac_bytes(6), o50=ip))
    assert o.msg_type(nak) == o.NAK
    assert nak.options[o.MESSAGE] == socket.inet_ntoa(ip).encode() + b" is held by another client"
    assert rig.store.lease_of("52:54:00:aa:00:05").ip == int.from_bytes(ip)  # type: ignore[union-attr]


def test_init_reboot_own_address_is_acked(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(7)).yiaddr
    ack, _ = rig.one(client_packet(o.REQUEST, mac_bytes(7), o50=ip))
    assert o.msg_type(ack) == o.ACK and ack.yiaddr == ip


def test_request_for_another_server_drops_our_offer(rig: Rig) -> None:
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(8)))
    assert rig.store.holder(int.from_bytes(offer.yiaddr), 0) == "52:54:00:aa:00:08"
    out = rig.send(client_packet(o.REQUEST, mac_bytes(8), o54=socket.inet_aton("10.99.0.254"),
                                 o50=socket.inet_aton("10.99.0.9")))
    assert out == []
    assert "client chose server 10.99.0.254" in [e.reason for e in rig.of("DhcpIgnored")]  # type: ignore[attr-defined]
    assert rig.store.holder(int.from_bytes(offer.yiaddr), 0) is None  # no longer held


def test_decline_quarantines_the_address(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(10)).yiaddr
    assert rig.send(client_packet(o.DECLINE, mac_bytes(10), o50=ip, o54=socket.inet_aton("10.99.0.1"))) == []
    assert rig.of("LeaseEnded")[-1].reason == "declined"  # type: ignore[attr-defined]
    again = rig.dora(mac_bytes(10))
    assert again.yiaddr != ip
    others = {rig.dora(mac_bytes(20 + i)).yiaddr for i in range(5)}
    assert ip not in others
    state = rig.conn.execute("SELECT state FROM dhcp_leases WHERE ip=?", (socket.inet_ntoa(ip),)).fetchone()
    assert state[0] == "declined"


def test_release_frees_the_address(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(11)).ip("yiaddr")
    rig.send(client_packet(o.RELEASE, mac_bytes(11), ciaddr=ip, o54=socket.inet_aton("10.99.0.1")),
             src=(ip, 68))
    assert rig.of("LeaseEnded")[-1].reason == "released"  # type: ignore[attr-defined]
    assert rig.conn.execute("SELECT count(*) FROM dhcp_leases").fetchone()[0] == 0
    # free: another client that asks for the address gets it
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(13), o50=socket.inet_aton(ip)))
    assert offer.ip("yiaddr") == ip


def test_inform_gets_configuration_without_a_lease(rig: Rig) -> None:
    ack, dest = rig.one(client_packet(o.INFORM, mac_bytes(12), ciaddr="10.99.0.50"))
    assert o.msg_type(ack) == o.ACK and ack.ip("yiaddr") == "0.0.0.0"
    assert o.LEASE_TIME not in ack.options and dest == ("10.99.0.50", 68)


def test_full_pool_is_an_event_not_a_crash(tmp_path: Path) -> None:
    rig = Rig(tmp_path, range="10.99.0.100-10.99.0.102")
    for i in range(3):
        rig.dora(mac_bytes(i + 1))
    assert rig.send(client_packet(o.DISCOVER, mac_bytes(9))) == []
    assert rig.send(client_packet(o.DISCOVER, mac_bytes(10))) == []
    assert len(rig.of("PoolExhausted")) == 1  # rate-limited
    assert any("exhausted" in e.message for e in rig.of("Log"))  # type: ignore[attr-defined]


def test_leases_survive_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ip = rig.dora(mac_bytes(1)).yiaddr
    rig.conn.close()
    rig2 = Rig(tmp_path)
    assert rig2.store.lease_of("52:54:00:aa:00:01") is not None
    offer, _ = rig2.one(client_packet(o.DISCOVER, mac_bytes(1)))
    assert offer.yiaddr == ip
    other, _ = rig2.one(client_packet(o.DISCOVER, mac_bytes(2)))
    assert other.yiaddr != ip


def test_reservation_fixed_address_and_boot_file(tmp_path: Path) -> None:
    rig = Rig(tmp_path, reservations=[{"mac": "52:54:00:aa:00:05", "ip": "10.99.0.42",
                                       "boot_file": "special.0"}])
    ack = rig.dora(mac_bytes(5), o93=b"\x00\x00", o60=SEABIOS_VC)
    assert ack.ip("yiaddr") == "10.99.0.42" and ack.file == b"special.0"
    # nobody else gets the reserved address
    assert all(rig.dora(mac_bytes(10 + i)).ip("yiaddr") != "10.99.0.42" for i in range(3))


def test_relay_served_from_giaddr_pool_to_relay_port(tmp_path: Path) -> None:
    rig = Rig(tmp_path, relay_pools=[{"subnet": "10.98.0.0/24", "range": "10.98.0.50-10.98.0.60",
                                      "router": "10.98.0.1"}])
    agent = o.encode_suboptions({1: b"port7"})
    offer, dest = rig.one(client_packet(o.DISCOVER, mac_bytes(1), giaddr="10.98.0.1", o82=agent))
    assert dest == ("10.98.0.1", 67)
    assert offer.ip("yiaddr") == "10.98.0.50" and offer.options[o.ROUTER] == socket.inet_aton("10.98.0.1")
    assert offer.options[o.RELAY_AGENT] == agent  # RFC 3046: echoed
    assert list(offer.options)[-1] == o.RELAY_AGENT
    assert rig.send(client_packet(o.DISCOVER, mac_bytes(2), giaddr="172.16.0.1")) == []
    assert "matches no pool" in rig.of("DhcpIgnored")[-1].reason  # type: ignore[attr-defined]


def test_denied_and_unknown_macs_are_ignored_with_reason(tmp_path: Path) -> None:
    rig = Rig(tmp_path, deny=["52:54:00:aa:00:01"], allow_unknown=False, allow=["52:54:00:aa:00:02"])
    assert rig.send(client_packet(o.DISCOVER, mac_bytes(1))) == []
    assert rig.send(client_packet(o.DISCOVER, mac_bytes(3))) == []
    reasons = [e.reason for e in rig.of("DhcpIgnored")]  # type: ignore[attr-defined]
    assert reasons[0] == "denied MAC" and "unknown MAC" in reasons[1]
    rig.dora(mac_bytes(2))


@pytest.mark.parametrize("junk, reason", [
    (b"", "malformed: too short"),
    (b"\x01" * 10, "malformed: too short"),
    (b"\x05" + bytes(299), "malformed: op 5 is neither BOOTREQUEST"),
    (bytes(236) + b"\x63\x82\x53\x63\x35\x05", "malformed: op 0 is neither BOOTREQUEST"),
    (b"\x01\x01\x06\x00" + bytes(232) + b"\x63\x82\x53\x63\x35\x05", "malformed: options: option 53 claims 5"),
    (build(Packet(op=BOOTREPLY, chaddr=mac_bytes(1), options={o.MSG_TYPE: b"\x02"})),
     "not a BOOTREQUEST (a reply sent to the server port)"),
])
def test_malformed_is_ignored_with_reason(rig: Rig, junk: bytes, reason: str) -> None:
    assert rig.server.handle(junk, ("10.99.0.7", 68), 67) == []
    ev = rig.of("DhcpIgnored")[-1]
    assert ev.reason.startswith(reason) and ev.ip == "10.99.0.7", ev  # type: ignore[attr-defined]


def test_every_packet_in_and_out_is_an_event(rig: Rig) -> None:
    rig.dora(mac_bytes(1), o93=b"\x00\x07", o60=OVMF_VC, o97=UUID)
    packets = [(e.direction, e.msg_type) for e in rig.of("DhcpPacket")]  # type: ignore[attr-defined]
    assert packets == [("in", "DISCOVER"), ("out", "OFFER"), ("in", "REQUEST"), ("out", "ACK")]
    first = rig.of("DhcpPacket")[0]
    assert first.arch == 7 and first.vendor_class == OVMF_VC.decode()  # type: ignore[attr-defined]
    assert first.uuid == "00010203-0405-0607-0809-0a0b0c0d0e0f"  # type: ignore[attr-defined]
    assert rig.of("BootDecision")[0].firmware == "uefi64"  # type: ignore[attr-defined]


def test_a_boot_decision_is_told_once_per_exchange(rig: Rig) -> None:
    # The ACK repeats the OFFER's decision: one event, not two, for each DORA.
    now = [1000.0]
    rig.server.clock = lambda: now[0]
    rig.dora(mac_bytes(1), o93=b"\x00\x07", o60=OVMF_VC)
    assert [e.firmware for e in rig.of("BootDecision")] == ["uefi64"]  # type: ignore[attr-defined]
    rig.dora(mac_bytes(2), o93=b"\x00\x00", o60=SEABIOS_VC)
    assert [e.mac for e in rig.of("BootDecision")] == ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]
    now[0] += 60.0  # the next boot of the first: told again
    rig.dora(mac_bytes(1), o93=b"\x00\x07", o60=OVMF_VC)
    assert len(rig.of("BootDecision")) == 3
    # A different decision (the same MAC, now as iPXE) is told at once.
    rig.dora(mac_bytes(1), o93=b"\x00\x07", o60=OVMF_VC, o77=b"iPXE")
    assert len(rig.of("BootDecision")) == 4


# -- boot information in full mode -------------------------------------------------------

def test_full_mode_pxe_reply_has_file_option67_siaddr(rig: Rig) -> None:
    (rig.cfg.tftp_root).mkdir(parents=True)
    (rig.cfg.tftp_root / "pxelinux.0").write_bytes(b"x")
    rig.start("full")
    ack = rig.dora(mac_bytes(1), o93=b"\x00\x00", o60=SEABIOS_VC, o97=UUID)
    assert ack.file == b"pxelinux.0" and ack.options[o.BOOTFILE] == b"pxelinux.0"
    assert ack.ip("siaddr") == "10.99.0.1"
    assert o.VENDOR_CLASS not in ack.options and ack.options[o.CLIENT_UUID] == UUID


def test_ipxe_gets_script_url_and_no_proxy_wait(rig: Rig) -> None:
    ack = rig.dora(mac_bytes(1), o93=b"\x00\x00", o60=SEABIOS_VC, o77=b"iPXE")
    assert ack.options[o.BOOTFILE] == b"http://10.99.0.1/boot.ipxe"
    assert ack.options[o.IPXE_ENCAP] == bytes((176, 1, 1))


def test_plain_client_gets_no_boot_file(rig: Rig) -> None:
    ack = rig.dora(mac_bytes(1), o55=bytes((1, 3, 6, 12, 15, 28, 42)))
    assert ack.file == b"" and o.BOOTFILE not in ack.options and o.VENDOR_CLASS not in ack.options


def test_http_boot_client_gets_url_and_httpclient(rig: Rig) -> None:
    ack = rig.dora(mac_bytes(1), o93=b"\x00\x10", o60=b"HTTPClient:Arch:00016:UNDI:003001")
    assert ack.options[o.VENDOR_CLASS] == b"HTTPClient"
    assert ack.options[o.BOOTFILE].startswith(b"http://10.99.0.1/")


def test_boot_once_local_then_cleared(rig: Rig) -> None:
    dbstore.set_host_override(rig.conn, "52:54:00:aa:00:01", boot_once="local")
    rig.start("full")
    ack = rig.dora(mac_bytes(1), o93=b"\x00\x07", o60=OVMF_VC)
    assert o.BOOTFILE not in ack.options and ack.file == b""
    assert dbstore.host_overrides(rig.conn)["52:54:00:aa:00:01"]["boot_once"] is None
    # next boot (after the grace window) gets the boot file again
    rig.policy.local_until.clear()
    rig.policy.set_overrides(dbstore.host_overrides(rig.conn))
    assert o.BOOTFILE in rig.dora(mac_bytes(1), o93=b"\x00\x07", o60=OVMF_VC).options


# -- proxyDHCP ---------------------------------------------------------------------------

@pytest.fixture
def proxy(tmp_path: Path) -> Rig:
    rig = Rig(tmp_path, mode="proxy")
    rig.cfg.tftp_root.mkdir(parents=True)
    for name in ("pxelinux.0", "grubx64.efi", "ipxe.efi"):
        (rig.cfg.tftp_root / name).write_bytes(b"x")
    rig.start("proxy")
    return rig


def test_proxy_ignores_plain_clients(proxy: Rig) -> None:
    assert proxy.send(client_packet(o.DISCOVER, mac_bytes(1))) == []
    assert proxy.of("DhcpIgnored")[-1].reason == "not a PXE client (proxy mode)"  # type: ignore[attr-defined]


def test_proxy_offer_for_bios_rom_has_discovery_control(proxy: Rig) -> None:
    offer, dest = proxy.one(client_packet(o.DISCOVER, mac_bytes(1), o93=b"\x00\x00",
                                          o60=SEABIOS_VC, o97=UUID))
    assert dest == ("255.255.255.255", 68)
    assert offer.ip("yiaddr") == "0.0.0.0" and offer.ip("siaddr") == "10.99.0.1"
    assert offer.options[o.VENDOR_CLASS] == b"PXEClient"
    assert offer.options[o.SERVER_ID] == socket.inet_aton("10.99.0.1")
    assert offer.options[o.CLIENT_UUID] == UUID
    subs = o.suboptions(offer.options[o.VENDOR_SPECIFIC])
    assert subs[o.PXE_DISCOVERY_CONTROL] == b"\x03"
    assert subs[o.PXE_BOOT_SERVERS] == b"\x80\x00\x01" + socket.inet_aton("10.99.0.1")
    assert o.LEASE_TIME not in offer.options
    assert offer.file == b"pxelinux.0"


def test_proxy_uefi_prefers_ipxe(proxy: Rig) -> None:
    offer, _ = proxy.one(client_packet(o.DISCOVER, mac_bytes(2), o93=b"\x00\x07", o60=OVMF_VC))
    assert offer.file == b"ipxe.efi" and o.VENDOR_SPECIFIC not in offer.options


def test_proxy_ipxe_offer_skips_the_wait(proxy: Rig) -> None:
    offer, _ = proxy.one(client_packet(o.DISCOVER, mac_bytes(3), o93=b"\x00\x00",
                                       o60=SEABIOS_VC, o77=b"iPXE", o175=b"\xb1\x05\x01\x80\x86\x10\x0e"))
    assert offer.options[o.IPXE_ENCAP] == bytes((176, 1, 1))
    assert offer.options[o.BOOTFILE] == b"http://10.99.0.1/boot.ipxe"


def test_proxy_ignores_requests_on_67(proxy: Rig) -> None:
    assert proxy.send(client_packet(o.REQUEST, mac_bytes(1), o60=OVMF_VC,
                                    o50=socket.inet_aton("10.99.0.5"))) == []
    assert proxy.of("DhcpIgnored")[-1].reason == "proxy mode: REQUEST is for the address server"  # type: ignore[attr-defined]
    assert not proxy.of("LeaseGranted") and proxy.store.lease_of("52:54:00:aa:00:01") is None


def test_port_4011_bios_request_echoes_boot_item(proxy: Rig) -> None:
    item = b"\x80\x00\x00\x00"
    req = client_packet(o.REQUEST, mac_bytes(4), xid=0, ciaddr="10.99.0.50", o93=b"\x00\x00",
                        o60=SEABIOS_VC, o97=UUID, o43=o.encode_suboptions({71: item}, end=True))
    ack, dest = proxy.one(req, src=("10.99.0.50", 68), port=4011)
    assert dest == ("10.99.0.50", 68)
    assert o.msg_type(ack) == o.ACK and ack.xid == 0
    assert o.suboptions(ack.options[o.VENDOR_SPECIFIC])[71] == item
    assert ack.file == b"pxelinux.0" and ack.sname == b"10.99.0.1"
    assert ack.options[o.CLIENT_UUID] == UUID and ack.options[o.VENDOR_CLASS] == b"PXEClient"


def test_port_4011_ovmf_answer_goes_to_source_port(proxy: Rig) -> None:
    req = client_packet(o.REQUEST, mac_bytes(5), ciaddr="10.99.0.51", o93=b"\x00\x07", o60=OVMF_VC)
    ack, dest = proxy.one(req, src=("10.99.0.51", 4011), port=4011)
    assert dest == ("10.99.0.51", 4011) and ack.file == b"ipxe.efi"


# -- the captured real clients (tests/data/dhcp) through both modes -----------------------

DATA = Path(__file__).resolve().parent.parent / "data" / "dhcp"


@pytest.mark.parametrize("name, full_file, proxy_file", [
    ("seabios_ipxe_discover.bin", b"http://10.99.0.1/boot.ipxe", b"http://10.99.0.1/boot.ipxe"),
    ("ovmf_pxe_discover.bin", b"grubx64.efi", b"ipxe.efi"),
    ("ovmf_ipxe_discover.bin", b"http://10.99.0.1/boot.ipxe", b"http://10.99.0.1/boot.ipxe"),
    ("udhcpc_discover.bin", b"", None),
    ("dhclient_discover.bin", b"", None),
])
def test_captured_clients(proxy: Rig, name: str, full_file: bytes, proxy_file: bytes | None) -> None:
    raw = (DATA / name).read_bytes()
    replies = proxy.server.handle(raw, ("0.0.0.0", 68), 67)
    if proxy_file is None:
        assert replies == []
    else:
        offer = parse(replies[0][0])
        assert offer.file == proxy_file and offer.ip("yiaddr") == "0.0.0.0"
        assert o.VENDOR_SPECIFIC not in offer.options  # iPXE and UEFI need no option 43
    proxy.start("full")
    offer = parse(proxy.server.handle(raw, ("0.0.0.0", 68), 67)[0][0])
    assert offer.file == full_file and offer.ip("yiaddr").startswith("10.99.0.")
    if full_file.startswith(b"http"):
        assert offer.options[o.IPXE_ENCAP] == bytes((176, 1, 1))


def test_expired_leases_are_reported_once_and_kept_for_their_client(rig: Rig) -> None:
    ip = rig.dora(mac_bytes(1)).yiaddr
    lease = rig.store.lease_of("52:54:00:aa:00:01")
    assert lease is not None
    assert rig.store.expired(lease.expires - 1) == []
    assert [x.mac for x in rig.store.expired(lease.expires + 1)] == ["52:54:00:aa:00:01"]
    assert rig.store.expired(lease.expires + 2) == []
    rig.server.clock = lambda: lease.expires + 5
    offer, _ = rig.one(client_packet(o.DISCOVER, mac_bytes(1)))
    assert offer.yiaddr == ip


def test_request_event_carries_the_requested_address(proxy: Rig) -> None:
    proxy.send(client_packet(o.REQUEST, mac_bytes(1), o60=OVMF_VC, o50=socket.inet_aton("10.99.0.160"),
                             o54=socket.inet_aton("10.99.0.2")))
    ev = proxy.of("DhcpPacket")[-1]
    assert ev.msg_type == "REQUEST" and ev.requested_ip == "10.99.0.160"  # type: ignore[attr-defined]


def test_new_reservation_waits_for_an_older_lease_of_another_client(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    taken = rig.dora(mac_bytes(1)).ip("yiaddr")
    rig.conn.close()
    # the address is now reserved for another machine, while mac 1's lease still runs
    rig2 = Rig(tmp_path, reservations=[{"mac": "52:54:00:aa:00:02", "ip": taken}])
    assert rig2.send(client_packet(o.DISCOVER, mac_bytes(2))) == []
    assert "still leased to 52:54:00:aa:00:01" in rig2.of("DhcpIgnored")[-1].reason  # type: ignore[attr-defined]
    # its holder is moved to another address at its next DORA, then the reservation applies
    assert rig2.dora(mac_bytes(1)).ip("yiaddr") != taken
    assert rig2.dora(mac_bytes(2)).ip("yiaddr") == taken


def test_packets_whose_events_are_not_admitted_are_served_and_tallied(rig: Rig) -> None:
    # events.packet_rate: over the budget the packet is answered and its lease granted and
    # announced; only its DhcpPacket and BootDecision events are never made (the emitter
    # counts them), and a refused decision is not asked about again on the REQUEST.
    asked: list[tuple[str, str | None]] = []

    def admit(kind: str, tally: str | None) -> bool:
        asked.append((kind, tally))
        return False

    rig.server.admit = admit
    ack = rig.dora(mac_bytes(7), o60=SEABIOS_VC)  # a PXE client: a boot decision each
    assert ack.ip("yiaddr") == "10.99.0.100" and ack.file == b"pxelinux.0"
    assert not rig.of("DhcpPacket") and not rig.of("BootDecision")
    assert [e.ip for e in rig.of("LeaseGranted")] == ["10.99.0.100"]  # type: ignore[attr-defined]
    assert asked == [("DhcpPacket", "in.DISCOVER"), ("BootDecision", None), ("DhcpPacket", "out.OFFER"),
                     ("DhcpPacket", "in.REQUEST"), ("DhcpPacket", "out.ACK")]
    rig.server.admit = lambda kind, tally: True
    rig.dora(mac_bytes(8), o60=SEABIOS_VC)
    assert [e.msg_type for e in rig.of("DhcpPacket")] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]  # type: ignore[attr-defined]
    assert [e.mac for e in rig.of("BootDecision")] == [mac_bytes(8).hex(":")]  # type: ignore[attr-defined]
