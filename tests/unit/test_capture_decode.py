"""Decoding real captures (tests/data/pcap, recorded from QEMU firmware against dnsmasq) and
crafted frames into pxetui events."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pxetui.capture.decode import SIZE_PROBE, Decoder
from pxetui.capture.pcap import read_pcap
from pxetui.events import Event

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"


def decode(name: str, **kw) -> list[Event]:
    lt, frames = read_pcap(DATA / name)
    dec = Decoder(linktype=lt, **kw)
    out: list[Event] = []
    last = 0.0
    for ts, data in frames:
        out += dec.feed(data, ts)
        last = ts
    out += dec.tick(last + 60)
    return out


def of(events: list[Event], type_: str, **match) -> list:
    return [e for e in events if e.type == type_ and all(getattr(e, k) == v for k, v in match.items())]


def test_bios_boot_dhcp_and_lease_seen_from_the_wire():
    evs = decode("bios_pxelinux.pcap")
    dhcp = of(evs, "DhcpPacket")
    # iPXE repeats its DISCOVER, and the OFFER with it: every packet of the exchange, in order.
    assert [e.msg_type for e in dhcp] == ["DISCOVER", "DISCOVER", "OFFER", "OFFER", "REQUEST", "ACK"]
    assert all(e.server_ip == "10.99.0.1" for e in dhcp if e.msg_type != "DISCOVER")
    assert all(e.direction == "wire" and not e.ours for e in dhcp)
    disc = of(evs, "DhcpPacket", msg_type="DISCOVER")[0]
    # SeaBIOS + iPXE ROM fingerprint (docs/FIELD-NOTES.md): arch 0, bare user class "iPXE".
    assert disc.arch == 0 and disc.user_class == "iPXE" and disc.ipxe
    assert disc.vendor_class == "PXEClient:Arch:00000:UNDI:002001"
    (lease,) = of(evs, "LeaseGranted")
    assert lease.mac == "52:54:00:12:34:01" and lease.server_ip == "10.99.0.1" and not lease.ours
    assert lease.expires > lease.ts
    (srv,) = of(evs, "ForeignDhcpServer")
    assert srv.server_ip == "10.99.0.1" and srv.boot_file == "pxelinux.0" and srv.server_mac


def test_bios_boot_tftp_transfers_followed_without_data_packets():
    evs = decode("bios_pxelinux.pcap")
    started = {e.path: e for e in of(evs, "TransferStarted")}
    assert {"pxelinux.0", "ldlinux.c32", "pxelinux.cfg/default", "debian-installer/amd64/linux",
            "debian-installer/amd64/initrd.gz"} <= set(started)
    assert started["pxelinux.0"].options["blksize"] == "1432"  # iPXE asks 1432 (docs/FIELD-NOTES.md)
    assert all(e.mac == "52:54:00:12:34:01" and e.ip for e in started.values())
    done = {e.path: e for e in of(evs, "TransferFinished")}
    assert done["pxelinux.cfg/default"].bytes_done == 133
    assert done["debian-installer/amd64/initrd.gz"].bytes_done == 1_500_000
    assert done["pxelinux.0"].bytes_done == 42430
    assert done["debian-installer/amd64/linux"].bytes_done == 8222656
    probes = of(evs, "TransferFailed", status=1)
    assert len(probes) == 9 and all(e.path.startswith("pxelinux.cfg/") for e in probes)
    progress = of(evs, "TransferProgress")
    assert progress and max(e.bytes_done for e in progress) > 1_000_000


def test_foreign_server_alert_only_when_we_serve():
    assert not of(decode("foreign_win.pcap"), "Alert")  # watch-only: every server is "foreign"
    evs = decode("foreign_win.pcap", our_ips={"10.99.0.1"})
    (alert,) = of(evs, "Alert")
    assert alert.key == "foreign-dhcp:10.99.0.2" and "offers addresses, boot file none" in alert.message
    assert [e.server_ip for e in of(evs, "ForeignDhcpServer")] == ["10.99.0.2"]


def test_own_address_marks_ours_and_no_foreign_alert():
    evs = decode("bios_pxelinux.pcap", our_ips={"10.99.0.1"})
    assert not of(evs, "ForeignDhcpServer")
    assert all(e.ours for e in of(evs, "DhcpPacket") if e.msg_type in ("OFFER", "ACK"))
    assert all(e.ours for e in of(evs, "TransferStarted"))


def test_proxy_answer_on_4011_is_not_a_lease():
    evs = decode("proxy_pxelinux.pcap")
    acks = of(evs, "DhcpPacket", msg_type="ACK")
    assert any(e.port == 4011 for e in acks)
    assert not [e for e in of(evs, "LeaseGranted") if e.server_ip == "10.99.0.1"]
    offer = of(evs, "DhcpPacket", msg_type="OFFER")[0]
    assert offer.yiaddr is None and offer.vendor_class == "PXEClient"


def test_uefi_size_probe_is_not_a_failure():
    evs = decode("uefi_shim_notfound.pcap")
    probes = [e for e in of(evs, "TransferFailed") if e.reason.startswith(SIZE_PROBE)]
    assert probes and probes[0].path.endswith("bootnetx64.efi")
    disc = of(evs, "DhcpPacket", msg_type="DISCOVER")[0]
    assert disc.arch == 7 and disc.vendor_class.startswith("PXEClient:Arch:00007")
    started = [e for e in of(evs, "TransferStarted") if e.path.endswith("bootnetx64.efi")]
    assert started[0].options.get("windowsize") == "4"  # EDK2 asks windowsize 4 (docs/FIELD-NOTES.md)


def test_http_requests_status_and_sizes():
    evs = decode("http404.pcap")
    started = {e.path: e for e in of(evs, "TransferStarted", protocol="http")}
    assert {"/boot.ipxe", "/linux", "/initrd.gz", "/live/filesystem.squashfs"} <= set(started)
    assert started["/linux"].options["server"] == "10.99.0.1:80"
    done = {e.path: e for e in of(evs, "TransferFinished", protocol="http")}
    assert done["/linux"].bytes_done == 8222656 and done["/linux"].status == 200
    assert done["/initrd.gz"].bytes_done == 1_500_000
    (nf,) = of(evs, "TransferFailed", protocol="http")
    assert nf.status == 404 and nf.path == "/live/filesystem.squashfs" and "404" in nf.reason
    assert nf.mac == "52:54:00:12:34:0b"


def test_tftp_request_with_no_answer_times_out():
    evs = decode("bios_timeout.pcap")
    fails = of(evs, "TransferFailed")
    assert fails and all("no answer" in e.reason for e in fails)
    retries = [e.retransmits for e in of(evs, "TransferProgress")]
    assert retries and max(retries) >= 2


def _frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01") / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))


def test_block_number_rollover_and_last_data():
    d = Decoder()
    c, s = "10.0.0.5", "10.0.0.1"
    d.feed(_frame(c, s, 3000, 69, b"\x00\x01big.iso\x00octet\x00blksize\x00512\x00tsize\x000\x00"), 1.0)
    d.feed(_frame(s, c, 40000, 3000, b"\x00\x06blksize\x00512\x00tsize\x0040000000\x00"), 1.1)
    d.feed(_frame(c, s, 3000, 40000, b"\x00\x04\xff\xc0"), 2.0)
    (p,) = d.feed(_frame(c, s, 3000, 40000, b"\x00\x04\x00\x40"), 3.0)  # block 65536 + 64
    assert p.bytes_done == (65536 + 64) * 512 and p.size == 40_000_000
    (fin,) = d.feed(_frame(s, c, 40000, 3000, b"\x00\x03\x00\x80" + b"x" * 100), 4.0)
    assert fin.type == "TransferFinished" and fin.bytes_done == (65536 + 127) * 512 + 100


def test_unanswered_pxe_client_alert():
    d = Decoder()
    disc = bytes(Ether(src="52:54:00:aa:bb:cc", dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex("525400aabbcc"), xid=7)
                 / DHCP(options=[("message-type", "discover"), ("vendor_class_id", b"PXEClient:Arch:00007"),
                                 "end"]))
    for t in (0.0, 4.0, 8.0):
        assert d.feed(disc, 100.0 + t)[0].msg_type == "DISCOVER"
    assert not d.tick(105.0)
    (alert,) = d.tick(111.0)
    assert alert.type == "Alert" and alert.mac == "52:54:00:aa:bb:cc"
    assert "3 DISCOVER(s) over 8 s" in alert.message and "no DHCP server answered" in alert.message
    assert not d.tick(120.0)  # said once


def test_garbage_is_counted_not_raised():
    d = Decoder()
    for junk in (b"", b"\x00" * 10, bytes(Ether() / IP() / UDP(sport=68, dport=67) / Raw(b"\x01" * 20)),
                 bytes(Ether() / IP() / UDP(sport=5000, dport=69) / Raw(b"\x00\x01nonul"))):
        assert d.feed(junk, 1.0) == []
    # The two frames too short to parse and the DHCP port's non-DHCP payload; a TFTP request
    # without its NULs is a packet understood and ignored, not an undecodable one.
    assert d.packets == 4 and d.undecoded == 3
    assert d.tftp == {}


def test_client_mac_from_frame_when_the_lease_was_not_seen():
    # proxyDHCP: the router's unicast ACK never reached the capture; the RRQ's source MAC is a
    # DHCP client we saw, so the transfer is still attributed. A stranger's MAC is not used.
    d = Decoder()
    mac = "52:54:00:aa:bb:01"
    disc = bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex("525400aabb01"), xid=9)
                 / DHCP(options=[("message-type", "discover"), "end"]))
    d.feed(disc, 1.0)
    rrq = Ether(src=mac) / IP(src="10.0.0.7", dst="10.0.0.1") / UDP(sport=2000, dport=69) / Raw(b"\x00\x01a.0\x00octet\x00")
    (ev,) = d.feed(bytes(rrq), 2.0)
    assert ev.mac == mac
    rrq[Ether].src, rrq[IP].src = "02:00:00:00:00:99", "10.0.0.8"
    (ev,) = d.feed(bytes(rrq), 3.0)
    assert ev.mac is None


def _tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: str, payload: bytes = b"") -> bytes:
    from scapy.layers.inet import TCP

    return bytes(Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags)
                 / Raw(payload))


def test_http_keep_alive_and_reset():
    d = Decoder()
    c, s = "10.0.0.5", "10.0.0.1"
    hdr_a = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    hdr_b = b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n"
    (sa,) = d.feed(_tcp(c, s, 4000, 80, 1, 1, "PA", b"GET /boot.ipxe HTTP/1.1\r\nHost: s\r\n\r\n"), 1.0)
    assert sa.path == "/boot.ipxe" and sa.options["host"] == "s"
    d.feed(_tcp(s, c, 80, 4000, 100, 40, "PA", hdr_a), 1.1)
    (sb,) = d.feed(_tcp(c, s, 4000, 80, 40, 100 + len(hdr_a) + 1000, "PA", b"GET /vmlinuz HTTP/1.1\r\n\r\n"), 1.2)
    # The second response starts where the first one ended: the first is complete.
    evs = d.feed(_tcp(s, c, 80, 4000, 100 + len(hdr_a) + 1000, 66, "PA", hdr_b), 1.3)
    fin_a = [e for e in evs if e.type == "TransferFinished"]
    assert fin_a and fin_a[0].transfer_id == sa.transfer_id and fin_a[0].bytes_done == 1000
    prog = [e for e in evs if e.type == "TransferProgress"]
    assert prog and prog[0].size == 5_000_000
    # The client resets after 2 MB: its acknowledgement number says how far it got.
    base = 100 + len(hdr_a) + 1000 + len(hdr_b)
    (fail,) = d.feed(_tcp(c, s, 4000, 80, 66, base + 2_000_000, "R"), 2.0)
    assert fail.type == "TransferFailed" and fail.transfer_id == sb.transfer_id
    assert fail.bytes_done == 2_000_000 and "reset after 2000000 of 5000000 bytes" in fail.reason
    assert d.feed(_tcp(s, c, 80, 4000, base, 66, "FA"), 2.1) == []  # connection already closed


def test_request_carries_the_requested_address():
    # proxy_pxelinux.pcap: the client's broadcast REQUEST to the address server (10.99.0.2)
    # names 10.99.0.131 in option 50; replies and the port-4011 REQUEST (ciaddr) carry none.
    evs = decode("proxy_pxelinux.pcap")
    reqs = of(evs, "DhcpPacket", msg_type="REQUEST")
    assert [(e.requested_ip, e.server_ip, e.port) for e in reqs] == [
        ("10.99.0.131", "10.99.0.2", 67), (None, None, 4011)]
    assert reqs[1].ip == "10.99.0.131"
    assert all(e.requested_ip is None for e in of(evs, "DhcpPacket") if e.msg_type in ("OFFER", "ACK"))


def test_while_our_dhcp_serves_the_wire_copies_of_its_exchanges_are_left_out():
    # Our DHCP service reports what it hears and sends; the wire's copies would double a
    # storm's events. Other servers' answers, and our own when the service is down, stay.
    lt, frames_iter = read_pcap(DATA / "foreign_win.pcap")
    frames = list(frames_iter)

    def run(served: bool) -> tuple[list[Event], Decoder]:
        dec = Decoder(linktype=lt, our_ips={"10.99.0.1"})
        dec.dhcp_served = served
        out = [e for ts, data in frames for e in dec.feed(data, ts)]
        return out, dec

    down, _ = run(False)
    up, dec = run(True)
    ours_down = [e for e in of(down, "DhcpPacket") if e.ours or e.msg_type in ("DISCOVER", "REQUEST")]
    assert ours_down, "the capture holds exchanges with our server"
    assert not [e for e in of(up, "DhcpPacket") if e.ours or e.msg_type == "DISCOVER"]
    assert dec.served_copies >= len([e for e in ours_down if e.ours or e.msg_type == "DISCOVER"])
    foreign = [e for e in of(up, "DhcpPacket") if e.server_ip == "10.99.0.2" and not e.ours
               and e.msg_type in ("OFFER", "ACK")]
    assert foreign and foreign == [e for e in of(down, "DhcpPacket") if e.server_ip == "10.99.0.2"
                                   and not e.ours and e.msg_type in ("OFFER", "ACK")]
    assert of(up, "Alert") == of(down, "Alert") and of(up, "ForeignDhcpServer")
    assert not [e for e in of(up, "LeaseGranted") if e.ours]


def test_a_served_copy_still_feeds_the_alerts_and_the_address_book():
    # Not emitted, but read: a PXE client our service heard and never answered is still
    # alerted on, and our ACK still tells capture whose address a later TFTP request comes from.
    mac = "52:54:00:aa:bb:cd"
    chaddr = bytes.fromhex(mac.replace(":", ""))
    dec = Decoder(our_ips={"10.99.0.1"})
    dec.dhcp_served = True
    disc = bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67) / BOOTP(chaddr=chaddr, xid=7)
                 / DHCP(options=[("message-type", "discover"), ("vendor_class_id", b"PXEClient:Arch:00007"),
                                 "end"]))
    assert dec.feed(disc, 100.0) == [] and dec.feed(disc, 104.0) == []
    (alert,) = dec.tick(111.0)
    assert alert.mac == mac and "(PXEClient:Arch:00007) sent 2 DISCOVER(s)" in alert.message
    ack = bytes(Ether(src="52:54:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / IP(src="10.99.0.1", dst="255.255.255.255")
                / UDP(sport=67, dport=68) / BOOTP(op=2, chaddr=chaddr, xid=8, yiaddr="10.99.0.50")
                / DHCP(options=[("message-type", "ack"), ("server_id", "10.99.0.1"), ("lease_time", 600), "end"]))
    # nothing of the copy itself is emitted; the alert it ends is cleared
    (cleared,) = dec.feed(ack, 112.0)
    assert cleared.key == alert.key and cleared.cleared and dec.served_copies == 3
    assert dec.ip_mac["10.99.0.50"] == mac
    rrq = bytes(Ether(src=mac, dst="52:54:00:00:00:01") / IP(src="10.99.0.50", dst="10.99.0.1")
                / UDP(sport=2070, dport=69) / Raw(b"\x00\x01pxelinux.0\x00octet\x00"))
    (started,) = of(dec.feed(rrq, 113.0), "TransferStarted")
    assert started.mac == mac


def test_udp_port_bound_reads_the_kernel_table(tmp_path):
    from pxetui.netinfo import udp_port_bound

    table = tmp_path / "udp"
    table.write_text(
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
        "  117: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n")
    assert udp_port_bound(67, str(table))
    assert not udp_port_bound(69, str(table))
    assert not udp_port_bound(67, str(tmp_path / "missing"))
