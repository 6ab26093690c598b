"""Capture over IPv6: the BPF filter keeps DHCPv6, RAs and the TFTP/HTTP markers over IPv6; the
decoder turns an OVMF PXEv6 boot (tests/data/pcap/ovmf_pxe6.pcapng, built by pcap6.py) into
the same events as an IPv4 boot; `pxetui analyze` shows it; malformed DHCPv6 never escapes."""

from __future__ import annotations

import argparse
import ctypes
import json

import pcap6
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcap6 import ADDRESS, BOOT_URL, CLIENT_LL, CLIENT_MAC, SERVER, SERVER_LL, SERVER_MAC, T0
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from pxetui.capture.decode import Decoder
from pxetui.capture.filters import boot_filter
from pxetui.capture.pcap import read_pcap
from pxetui.capture.service import UDP6_TABLE, Capture, our_addresses
from pxetui.commands import analyze
from pxetui.config import Config
from pxetui.dhcp6 import codec as c
from pxetui.events import Event
from pxetui.netinfo import udp_port_bound

GOLDEN = pcap6.GOLDEN


def decode(frames, **kw) -> tuple[list[Event], Decoder]:
    dec = Decoder(**kw)
    out: list[Event] = []
    last = T0
    for t, pkt in frames:
        out += dec.feed(bytes(pkt), T0 + t)
        last = T0 + t
    out += dec.tick(last + 60)
    return out, dec


def of(events, type_: str, **match) -> list:
    return [e for e in events if e.type == type_ and all(getattr(e, k) == v for k, v in match.items())]


def test_golden_capture_is_what_the_generator_writes(tmp_path):
    fresh = tmp_path / "again.pcapng"
    pcap6.write(fresh, pcap6.ovmf_pxe6())
    assert fresh.read_bytes() == GOLDEN.read_bytes()


class _Hdr(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long), ("caplen", ctypes.c_uint32),
                ("len", ctypes.c_uint32)]


@pytest.fixture(scope="module")
def match():
    from scapy.arch.common import compile_filter as raw_compile
    from scapy.libs.winpcapy import _lib

    prog = raw_compile(boot_filter([80, 8080]), linktype=1)
    fn = _lib.pcap_offline_filter
    fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Hdr), ctypes.c_char_p]

    def m(pkt) -> bool:
        data = bytes(pkt)
        return fn(ctypes.byref(prog), ctypes.byref(_Hdr(0, 0, len(data), len(data))), data) != 0

    return m


def test_filter_keeps_every_frame_of_the_ipv6_boot(match):
    # The golden capture holds only what the filter keeps: every frame must pass it.
    for t, pkt in pcap6.ovmf_pxe6():
        assert match(pkt), (t, pkt.summary())


def test_filter_drops_ipv6_bulk_and_unrelated(match):
    data = pcap6.udp6(SERVER, ADDRESS, 50001, 1501, b"\0\x03\0\x07" + b"x" * 1456, to_server=False)
    assert not match(data)  # a full DATA block
    for block in (1, 63, 65):  # ACKs not sampled
        assert not match(pcap6.udp6(ADDRESS, SERVER, 1501, 50001, b"\0\x04" + block.to_bytes(2, "big")))
    assert match(pcap6.udp6(ADDRESS, SERVER, 1501, 50001, b"\0\x04\0\x80"))  # ACK 128: sampled
    ns = Ether() / IPv6(src=CLIENT_LL, dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt=SERVER)
    assert not match(ns)  # neighbour solicitation: not a boot marker
    assert match(pcap6.tcp6(True, 1, 1, "PA", b"GET /x HTTP/1.1\r\n\r\n", server=(SERVER, 8080)))
    assert not match(pcap6.tcp6(True, 1, 1, "PA", b"POST /x HTTP/1.1\r\n\r\n"))
    assert not match(pcap6.tcp6(True, 1, 1, "A"))  # a bare ACK of the body


def test_golden_dhcpv6_exchange_as_events():
    lt, frames = read_pcap(GOLDEN)
    dec = Decoder(linktype=lt)
    evs: list[Event] = []
    for ts, data in frames:
        evs += dec.feed(data, ts)
    dhcp = of(evs, "DhcpPacket")
    assert [e.msg_type for e in dhcp] == ["SOLICIT", "ADVERTISE", "REQUEST", "REPLY"]
    # OVMF's DUID-UUID names no MAC: the Solicit's Ethernet source does, and the replies
    # are matched to it by the DUID.
    assert all(e.mac == CLIENT_MAC and e.direction == "wire" and e.port == 547 and not e.ours for e in dhcp)
    sol = dhcp[0]
    assert sol.arch == 7 and sol.vendor_class == "PXEClient:Arch:00007:UNDI:003016" and sol.ip is None
    adv, req, rep = dhcp[1:]
    assert adv.boot_file == rep.boot_file == BOOT_URL
    assert adv.server_ip == rep.server_ip == SERVER_LL and adv.server_mac == SERVER_MAC
    assert adv.yiaddr == rep.yiaddr == ADDRESS and req.requested_ip == ADDRESS
    (lease,) = of(evs, "LeaseGranted")
    assert (lease.mac, lease.ip, lease.server_ip, lease.ours) == (CLIENT_MAC, ADDRESS, SERVER_LL, False)
    assert lease.expires == pytest.approx(rep.ts + 7200)
    (srv,) = of(evs, "ForeignDhcpServer")
    assert srv.server_ip == SERVER_LL and srv.offered == ADDRESS and srv.boot_file == BOOT_URL
    (ra,) = of(evs, "RouterAdvert")
    assert ra.ip == SERVER_LL and ra.router_mac == SERVER_MAC and ra.managed and ra.other
    assert ra.prefixes == ["fd99::/64"] and ra.lifetime == 1800


def test_golden_tftp_and_http_over_ipv6():
    evs, _ = decode(pcap6.ovmf_pxe6())
    (tftp,) = of(evs, "TransferStarted", protocol="tftp")
    assert (tftp.path, tftp.ip, tftp.mac, tftp.options["server"]) == ("grubx64.efi", ADDRESS, CLIENT_MAC, SERVER)
    (done,) = of(evs, "TransferFinished", protocol="tftp")
    assert done.bytes_done == pcap6.LOADER_SIZE
    (http,) = of(evs, "TransferStarted", protocol="http")
    assert http.path == "/linux" and http.options["server"] == f"{SERVER}:80" and http.mac == CLIENT_MAC
    (kernel,) = of(evs, "TransferFinished", protocol="http")
    assert kernel.bytes_done == pcap6.KERNEL_SIZE and kernel.status == 200


def _analyze(path, *flags: str, capsys) -> str:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    analyze.register(sub)
    args = p.parse_args(["analyze", str(path), *flags])
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_analyze_reports_the_ipv6_client_address_url_and_file(capsys):
    out = _analyze(GOLDEN, capsys=capsys)
    head = next(line for line in out.splitlines() if line.startswith("Client "))
    assert CLIENT_MAC in head and f"ip {ADDRESS}" in head and "firmware uefi64" in head
    assert f"offer          1.00s  {ADDRESS} from {SERVER_LL}, file {BOOT_URL}" in out
    assert "tftp bootloader done" in out and "grubx64.efi" in out and "/linux" in out
    assert "advertises fd99::/64, M=1 O=1: DHCPv6 addresses" in out
    rows = [json.loads(line) for line in _analyze(GOLDEN, "--json", capsys=capsys).splitlines()]
    (client,) = [r for r in rows if r["type"] == "ClientUpdate"]
    assert client["ip"] == ADDRESS and [f["path"] for f in client["files"]] == ["grubx64.efi", "/linux"]
    assert [r["type"] for r in rows if r["type"] == "RouterAdvert"] == ["RouterAdvert"]


def _solicits(n: int, every: float = 4.0, **kw):
    return [(i * every, pcap6.dhcp6(pcap6.client_msg(c.SOLICIT, xid=0x100 + i, **kw), True)) for i in range(n)]


def test_unanswered_solicits_alert_once():
    evs, dec = decode(_solicits(4))
    (alert,) = of(evs, "Alert")  # no address yet: the RA rule leaves it to this one
    assert alert.key == f"unanswered6:{CLIENT_MAC}" and alert.mac == CLIENT_MAC
    assert "only IPv4 is served" in alert.message and "--ipv6" in alert.message
    assert not of(dec.tick(T0 + 200), "Alert")  # raised once, not on every tick


def _took_address_fetched_nothing(ra=None):
    frames = pcap6.ovmf_pxe6()[1:5]  # Solicit, Advertise, Request, Reply: no RA, no download
    return ([(0.0, ra)] if ra is not None else []) + frames


def test_no_router_advert_and_nothing_fetched_after_the_reply():
    evs, dec = decode(_took_address_fetched_nothing())
    (alert,) = of(evs, "Alert", key="ipv6-no-ra")
    assert alert.message.startswith(f"{CLIENT_MAC}: No router advertisement on this segment")
    assert f"took {ADDRESS} and {BOOT_URL} but fetched nothing" in alert.message
    assert "ipv6.router_advertisements" in alert.message
    later = dec.feed(bytes(pcap6.router_advert()), T0 + 100)
    assert [e.type for e in later] == ["RouterAdvert", "Alert"] and later[1].cleared


def test_any_router_advert_or_a_download_keeps_the_ra_rule_quiet():
    # Measured with OVMF (ovmf_pxe6_nom.pcap): RAs without the M flag do not stop PXE.
    evs, _ = decode(_took_address_fetched_nothing(pcap6.router_advert(managed=False)))
    assert not of(evs, "Alert")
    evs, _ = decode(pcap6.ovmf_pxe6()[1:7])  # the Reply, then the loader's RRQ: fetching
    assert not of(evs, "Alert")


def test_http_boot_client_without_router_advert():
    frames = _solicits(3, vendor=b"HTTPClient:Arch:00016:UNDI:003016", arch=16)
    evs, _ = decode(frames)
    (alert,) = of(evs, "Alert", key="ipv6-no-ra")
    assert "UEFI HTTP boot client asks over DHCPv6 (3 Solicit(s))" in alert.message
    assert "needs one with the on-link prefix" in alert.message


def test_answered_boot_raises_nothing():
    evs, _ = decode(pcap6.ovmf_pxe6())
    assert not of(evs, "Alert")


def test_we_serve_ipv4_only_and_a_client_asks_over_ipv6():
    evs, _ = decode(_solicits(1), our_ips={"10.99.0.1"}, serves_ipv6=False)
    (alert,) = of(evs, "Alert", key="ipv6-not-served")
    assert alert.mac == CLIENT_MAC and "start pxetui with --ipv6" in alert.message.lower()
    assert "docs/IPV6.md" in alert.message
    evs, _ = decode(_solicits(1), our_ips={"10.99.0.1", SERVER}, serves_ipv6=True)
    assert not of(evs, "Alert", key="ipv6-not-served")


def test_a_non_boot_client_solicit_is_no_alert():
    evs, _ = decode(_solicits(4, arch=None, vendor=b""))
    assert of(evs, "DhcpPacket", msg_type="SOLICIT") and not of(evs, "Alert")


def test_our_dhcpv6_copies_left_out_while_our_service_listens():
    frames = pcap6.ovmf_pxe6()[1:5]  # Solicit, Advertise, Request, Reply
    for served in (False, True):
        dec = Decoder(our_ips={SERVER}, our_macs={SERVER_MAC})
        dec.v6.dhcp_served = served
        evs = [e for t, p in frames for e in dec.feed(bytes(p), T0 + t)]
        dhcp = of(evs, "DhcpPacket")
        if served:  # our service reports each of these itself, and the lease
            assert not dhcp and not of(evs, "LeaseGranted") and dec.v6.served_copies == 4
        else:
            assert [e.ours for e in dhcp] == [False, True, False, True]
            assert of(evs, "LeaseGranted", ours=True) and not of(evs, "ForeignDhcpServer")


def test_capture_service_knows_our_ipv6_address_and_port_547(tmp_path, monkeypatch):
    cfg = Config(interface="eth9", server_ip="10.99.0.1", server_ip6="fd99::1")
    assert our_addresses(cfg) == {"10.99.0.1"}
    cfg.ipv6.enabled = True
    assert our_addresses(cfg) == {"10.99.0.1", "fd99::1"}
    table = tmp_path / "udp6"
    table.write_text("  sl  local_address                         remote_address                        st\n"
                     "  0: 00000000000000000000000000000000:0223 00000000000000000000000000000000:0000 07\n")
    assert udp_port_bound(547, str(table)) and not udp_port_bound(67, str(table))
    cap = Capture("eth9", {"10.99.0.1"}, [80], lambda ev: None, own_mac="52:54:00:00:99:01",
                  serves_ipv6=False)
    assert cap.decoder.v6.our_macs == {"52:54:00:00:99:01"} and not cap.decoder.v6.serves_ipv6
    # Only our DHCPv6 service is up (547 in the IPv6 table): only its copies are left out.
    import pxetui.capture.service as service

    monkeypatch.setattr(service, "udp_port_bound", lambda port, t="/proc/net/udp": (port, t) == (547, UDP6_TABLE))
    cap.tick()
    assert cap.decoder.v6.dhcp_served and not cap.decoder.dhcp_served


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(max_size=300), src=st.integers(1, 6))
def test_random_dhcpv6_payloads_never_raise(payload, src):
    dec = Decoder()
    frame = pcap6.dhcp6(payload, from_client=src % 2 == 0, client_ll=f"fe80::{src}")
    for _ in range(2):
        evs = dec.feed(bytes(frame), T0)
        assert all(isinstance(e, Event) for e in evs)
    try:
        c.parse(payload)
    except c.Dhcp6Error:  # malformed: counted twice, logged once (the second is counted only)
        assert dec.v6.malformed == 2 and dec.undecoded == 2
        assert len(of(evs, "Log")) == 0


def test_malformed_dhcpv6_logged_once_per_source():
    dec = Decoder()
    bad = bytes(pcap6.dhcp6(b"\x01\x00\x00\x01\x00\x01\x00\xff", True))  # client id claims 255 bytes
    first = dec.feed(bad, T0)
    (log,) = of(first, "Log")
    assert log.level_name == "warning" and CLIENT_LL in log.message and "option 1 claims 255 bytes" in log.message
    assert dec.feed(bad, T0 + 1) == [] and dec.undecoded == 2
    # The decoder goes on: the next good Solicit is decoded.
    good = pcap6.dhcp6(pcap6.client_msg(c.SOLICIT), True)
    assert of(dec.feed(bytes(good), T0 + 2), "DhcpPacket", msg_type="SOLICIT")


def test_relayed_messages_are_read_inside():
    inner = pcap6.client_msg(c.SOLICIT)
    relay = c.Dhcp6Message(c.RELAY_FORW, 0, [(c.OPT_RELAY_MSG, inner)], 0, "fd99::ffff", CLIENT_LL)
    evs, _ = decode([(0.0, pcap6.dhcp6(c.encode(relay), True))])
    (sol,) = of(evs, "DhcpPacket")
    assert sol.msg_type == "SOLICIT" and sol.arch == 7


def test_router_advert_in_the_log():
    from pxetui.logfmt import line

    evs, _ = decode([(0.0, pcap6.router_advert(managed=False))])
    (ra,) = of(evs, "RouterAdvert")
    assert line(ra.to_dict()).endswith(f"IPv6 router {SERVER_LL} ({SERVER_MAC}) advertises fd99::/64, M=0 O=1")


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), nh=st.sampled_from([0, 6, 17, 43, 44, 58, 60, 59]))
def test_random_ipv6_packets_never_raise(body, nh):
    """Any next header and any bytes after it, including an RA-looking ICMPv6 message with
    broken options: the decoder returns events or nothing, never an exception."""
    from scapy.packet import Raw

    dec = Decoder()
    for payload in (body, b"\x86\x00" + body):
        frame = Ether(src=CLIENT_MAC) / IPv6(src=CLIENT_LL, dst="ff02::1", nh=nh) / Raw(payload)
        assert all(isinstance(e, Event) for e in dec.feed(bytes(frame), T0))
    assert dec.packets == 2


REAL = GOLDEN.parent / "ovmf_pxe6_real.pcap"
REAL_MAC = "52:54:00:12:34:0e"


def test_real_ovmf_pxe6_capture(capsys):
    """Debian's OVMF (IPv4 PXE off) against dnsmasq: the UEFI network stack's own stateful
    DHCPv6 first (the RA has M; no vendor class), then PXE's Solicit with options 61/16 and
    DUID-LLT, the size probe and shim-less GRUB over TFTPv6, two Releases (tests/data/pcap/README.md)."""
    lt, frames = read_pcap(REAL)
    dec = Decoder(linktype=lt)
    evs: list[Event] = []
    last = 0.0
    for ts, data in frames:
        evs += dec.feed(data, ts)
        last = ts
    evs += dec.tick(last + 60)
    assert dec.undecoded == 0 and not of(evs, "Alert") and not of(evs, "Log")
    dhcp = of(evs, "DhcpPacket")
    assert [e.msg_type for e in dhcp] == ["SOLICIT", "ADVERTISE", "REQUEST", "REPLY"] * 2 + ["RELEASE", "REPLY"] * 2
    assert all(e.mac == REAL_MAC for e in dhcp)
    boot = dhcp[4]
    assert boot.arch == 7 and boot.vendor_class == "PXEClient:Arch:00007:UNDI:003000"
    assert dhcp[0].arch is None and dhcp[0].vendor_class is None  # the stack's own Solicit
    assert dhcp[5].boot_file == dhcp[7].boot_file == "tftp://[fd99::1]/grubx64.efi"
    assert [(le.ip, le.ours) for le in of(evs, "LeaseGranted")] == [("fd99::16a", False), ("fd99::1ea", False)]
    assert len(of(evs, "ForeignDhcpServer")) == 2  # addresses only, then addresses and a URL
    (ra,) = of(evs, "RouterAdvert")
    assert ra.managed and ra.prefixes == ["fd99::/64"]
    probe, *misses = of(evs, "TransferFailed")
    assert probe.reason.startswith("size probe") and probe.path == "grubx64.efi"
    assert [m.path for m in misses][-1] == "/grub/grub.cfg" and all(m.status == 1 for m in misses)
    (loader,) = of(evs, "TransferFinished")
    assert loader.path == "grubx64.efi" and loader.bytes_done == 3_843_520 and loader.mac == REAL_MAC
    out = _analyze(REAL, capsys=capsys)
    assert f"Client {REAL_MAC}  ip fd99::1ea  firmware uefi64" in out
    assert "file tftp://[fd99::1]/grubx64.efi" in out and "tftp bootloader done" in out
    assert "diagnosis: TFTP file not found: the client asked for '/grub/grub.cfg'" in out


@pytest.mark.parametrize("name,ra", [("ovmf_pxe6_nora.pcap", None), ("ovmf_pxe6_nom.pcap", False)])
def test_real_ovmf_pxe6_boots_without_router_advert_or_m_flag(name, ra, capsys):
    """Measured: OVMF's PXE over IPv6 takes its DHCPv6 address and fetches the loader from a
    server on its link with no RA at all, or with RAs whose M flag is off: no alert, and the
    client reaches its bootloader (tests/data/pcap/README.md)."""
    lt, frames = read_pcap(GOLDEN.parent / name)
    dec = Decoder(linktype=lt)
    evs: list[Event] = []
    last = 0.0
    for ts, data in frames:
        evs += dec.feed(data, ts)
        last = ts
    evs += dec.tick(last + 60)
    assert [r.managed for r in of(evs, "RouterAdvert")] == ([] if ra is None else [ra])
    assert not of(evs, "Alert")
    (loader,) = of(evs, "TransferFinished")
    assert loader.path == "grubx64.efi" and loader.bytes_done == 3_843_520 and loader.mac == REAL_MAC
    out = _analyze(GOLDEN.parent / name, capsys=capsys)
    assert "alert:" not in out and "tftp bootloader done" in out


def test_lab_ovmf_pxe6_capture(capsys):
    """The lab's recording (tests/data/README.md): OVMF with IPv4 PXE off against dnsmasq,
    unfiltered and cut after the first TFTP blocks. An RA dnsmasq sent from fd99::1 (its
    link-local still tentative) is not one a host accepts (RFC 4861 6.1.2) and is not counted."""
    path = GOLDEN.parent.parent / "ovmf-pxe6.pcapng"
    lt, frames = read_pcap(path)
    dec = Decoder(linktype=lt)
    evs: list[Event] = []
    for ts, data in frames:
        evs += dec.feed(data, ts)
    mac = "52:54:00:77:00:10"
    dhcp = of(evs, "DhcpPacket")
    assert [e.msg_type for e in dhcp] == ["SOLICIT", "ADVERTISE", "REQUEST", "REPLY"] * 2 + ["RELEASE", "REPLY"]
    assert all(e.mac == mac for e in dhcp)
    assert dhcp[4].arch == 7 and dhcp[4].vendor_class == "PXEClient:Arch:00007:UNDI:003000"
    assert dhcp[7].boot_file == "tftp://[fd99::1]/grubnetx64.efi" and dhcp[7].yiaddr == "fd99::18e"
    assert [r.ip for r in of(evs, "RouterAdvert")] == ["fe80::d428:faff:fe17:2c15"]
    (probe,) = of(evs, "TransferFailed")
    assert probe.reason.startswith("size probe") and "3842048 bytes" in probe.reason
    started = of(evs, "TransferStarted")
    assert [(t.path, t.ip, t.mac) for t in started] == [("grubnetx64.efi", "fd99::18e", mac)] * 2
    out = _analyze(path, capsys=capsys)
    assert f"Client {mac}  ip fd99::18e  firmware uefi64" in out
    assert "file tftp://[fd99::1]/grubnetx64.efi" in out and "bootloader" in out
    assert "alert:" not in out


def test_a_flood_of_made_up_clients_and_servers_stays_bounded(monkeypatch):
    from pxetui.capture import dhcp6wire

    monkeypatch.setattr(dhcp6wire, "MAX_ASKING", 8)
    monkeypatch.setattr(dhcp6wire, "MAX_SERVERS", 4)
    dec = Decoder()
    for i in range(40):
        mac = f"52:54:00:aa:00:{i:02x}"
        dec.feed(bytes(pcap6.dhcp6(pcap6.client_msg(c.SOLICIT, xid=i + 1), True, client_mac=mac,
                                   client_ll=f"fe80::aa:{i:x}")), T0 + i)
        dec.feed(bytes(pcap6.dhcp6(pcap6.server_msg(c.ADVERTISE, xid=i + 1, duid=pcap6.DUID + bytes([i])),
                                   False, server_ll=f"fe80::bb:{i:x}")), T0 + i)
    assert len(dec.v6.unanswered) <= 8 and len(dec.v6.no_ra) == 8 and len(dec.v6.servers) == 4
    assert "fe80::bb:27" in dec.v6.servers  # the newest kept
