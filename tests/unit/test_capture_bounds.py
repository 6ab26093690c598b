"""The capture decoder's tables stay bounded under forged traffic (docs/SECURITY.md, "Bounded
disk and memory"): every one is keyed by what any host on the segment can make up (a reply's
option 54, a source address and port, a chaddr), so a flood keeps the newest entries, each
packet costs O(1), and an alert whose client is forgotten is cleared in every fold."""

from __future__ import annotations

import socket
import struct

import pcap6
from pcap6 import CLIENT_MAC, T0

from pxetui.capture import decode as dec_mod
from pxetui.capture.decode import (
    MAX_ASKING,
    MAX_HTTP,
    MAX_PENDING,
    MAX_SERVERS,
    MAX_TFTP_PER_CLIENT,
    Decoder,
)
from pxetui.dhcp import options as o
from pxetui.dhcp.codec import Packet, build
from pxetui.dhcp6 import codec as c
from pxetui.events import Alert, Event, TransferClosed

OURS = "10.99.0.1"


def _eth(ip_packet: bytes) -> bytes:
    return b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x09" + b"\x08\x00" + ip_packet


def _ipv4(proto: int, src: str, dst: str, l4: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + l4


def _udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def _tcp(sport: int, dport: int, data: bytes, flags: int = 0x18) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 1000, 0, 0) + data


def _ip(i: int, base: int = 0x0A000000) -> str:
    return socket.inet_ntoa(struct.pack("!I", base + i))


def _mac(i: int) -> bytes:
    return struct.pack("!HI", 0x0200, i)


def _mac_text(i: int) -> str:
    return ":".join(f"{b:02x}" for b in _mac(i))


def _offer(i: int) -> bytes:
    """A forged OFFER naming a new server (option 54) each time."""
    p = Packet(op=2, xid=i, chaddr=_mac(i), yiaddr=socket.inet_aton(_ip(i)),
               options={o.MSG_TYPE: b"\x02", o.SERVER_ID: socket.inet_aton(_ip(i, 0x0B000000))})
    return _eth(_ipv4(17, _ip(i, 0x0B000000), "255.255.255.255", _udp(67, 68, build(p))))


def _discover(i: int) -> bytes:
    p = Packet(op=1, xid=i, chaddr=_mac(i),
               options={o.MSG_TYPE: b"\x01", 60: b"PXEClient:Arch:00000:UNDI:002001"})
    return _eth(_ipv4(17, "0.0.0.0", "255.255.255.255", _udp(68, 67, build(p))))


def _get(src: str, sport: int = 40000, path: str = "/x") -> bytes:
    """A lone "GET " segment to port 80: no handshake, as a forger sends it."""
    return _eth(_ipv4(6, src, OURS, _tcp(sport, 80, f"GET {path} HTTP/1.1\r\n\r\n".encode())))


def _rrq(src: str, sport: int, path: str = "pxelinux.0") -> bytes:
    return _eth(_ipv4(17, src, OURS, _udp(sport, 69, b"\0\1" + path.encode() + b"\0octet\0")))


def test_forged_dhcp_servers_keep_the_newest():
    d = Decoder(our_ips=[OURS])
    for i in range(MAX_SERVERS + 300):
        d.feed(_offer(i), T0 + i * 1e-3)
    assert len(d.servers) == MAX_SERVERS
    newest = _ip(MAX_SERVERS + 299, 0x0B000000)
    assert list(d.servers)[-1] == newest and _ip(0, 0x0B000000) not in d.servers


def test_forged_http_requests_keep_the_newest_connections_and_close_the_rest():
    d = Decoder(our_ips=["10.99.0.2"])  # another server's transfers: rows of their own in a fold
    closed: list[Event] = []
    for i in range(MAX_HTTP + 300):
        closed += [e for e in d.feed(_get(_ip(i, 0x0C000000)), T0 + i * 1e-3) if isinstance(e, TransferClosed)]
    assert len(d.http) == MAX_HTTP
    assert list(d.http)[-1][0] == _ip(MAX_HTTP + 299, 0x0C000000)
    assert all(k[0] != _ip(0, 0x0C000000) for k in d.http)
    # each forgotten request is closed, so no fold keeps it running for ever
    assert len(closed) == 300 and closed[0].ip == _ip(0, 0x0C000000)


def test_requests_pipelined_on_one_connection_are_bounded():
    d = Decoder(our_ips=[OURS])
    for i in range(MAX_PENDING + 20):
        d.feed(_get("10.0.0.5", path=f"/f{i}"), T0 + i)
    (conn,) = d.http.values()
    assert len(conn.pending) == MAX_PENDING
    assert conn.pending[-1].path == f"/f{MAX_PENDING + 19}"


class _Unscanned(dict):
    """The TFTP table, refusing to be walked: a request must look at its own client's only."""

    def items(self):  # type: ignore[override]
        raise AssertionError("a request walked the whole TFTP table")

    values = keys = __iter__ = items  # type: ignore[assignment]


def test_forged_tftp_requests_cost_o1_each_and_stay_bounded():
    d = Decoder(our_ips=[OURS])
    for i in range(2000):
        d.feed(_rrq(_ip(i, 0x0D000000), 1024 + i), T0)
    d.tftp = _Unscanned(d.tftp)
    assert len(d.feed(_rrq("10.99.0.50", 2000), T0)) == 1  # its TransferStarted, nothing walked
    d.tftp = {k: d.tftp[k] for k in dict.keys(d.tftp)}
    # one source, port after port: its own transfers are capped
    for port in range(1024, 1024 + MAX_TFTP_PER_CLIENT * 3):
        d.feed(_rrq("10.99.0.60", port), T0 + 1)
    mine = [t for t in d.tftp.values() if t.client[0] == "10.99.0.60"]
    assert len(mine) == MAX_TFTP_PER_CLIENT and mine[-1].client[1] == 1024 + MAX_TFTP_PER_CLIENT * 3 - 1


def test_forged_tftp_flood_keeps_the_newest_transfers(monkeypatch):
    monkeypatch.setattr(dec_mod, "MAX_TFTP", 500)
    d = Decoder(our_ips=[OURS])
    out: list[Event] = []
    for i in range(800):
        out += d.feed(_rrq(_ip(i, 0x0D000000), 2000), T0)
    assert len(d.tftp) == 500 and list(d.tftp)[-1] == (_ip(799, 0x0D000000), 2000)
    assert sum(isinstance(e, TransferClosed) for e in out) == 300


def test_a_forgotten_unanswered_client_clears_its_alert():
    d = Decoder(our_ips=[OURS])
    d.feed(_discover(1), T0)
    d.feed(_discover(1), T0 + 4)
    (raised,) = [e for e in d.tick(T0 + 12) if isinstance(e, Alert)]
    assert raised.key == f"unanswered:{_mac_text(1)}" and not raised.cleared
    assert not [e for e in d.tick(T0 + 13) if isinstance(e, Alert)]
    (cleared,) = [e for e in d.tick(T0 + 4 + dec_mod.FORGET_AFTER + 1) if isinstance(e, Alert)]
    assert cleared.key == raised.key and cleared.cleared
    assert not d.unanswered and not d.alerted


def test_an_unanswered_client_answered_at_last_clears_its_alert() -> None:
    """The alert says no server answers that client; once one does, every fold is told."""
    d = Decoder(our_ips=[OURS])
    d.feed(_discover(1), T0)
    (raised,) = [e for e in d.tick(T0 + 12) if isinstance(e, Alert)]
    offer = Packet(op=2, xid=1, chaddr=_mac(1), yiaddr=socket.inet_aton(_ip(50)),
                   options={o.MSG_TYPE: b"\x02", o.SERVER_ID: socket.inet_aton("10.99.0.7")})
    out = d.feed(_eth(_ipv4(17, "10.99.0.7", "255.255.255.255", _udp(67, 68, build(offer)))), T0 + 13)
    (cleared,) = [e for e in out if isinstance(e, Alert) and e.key == raised.key]
    assert cleared.cleared and "10.99.0.7 answered" in cleared.message
    assert not d.unanswered and not d.alerted


def test_forged_pxe_discovers_keep_the_newest_and_clear_the_alerts_they_push_out():
    d = Decoder(our_ips=[OURS])
    for i in range(10):
        d.feed(_discover(i), T0)
    assert len([e for e in d.tick(T0 + 11) if isinstance(e, Alert)]) == 10
    out: list[Event] = []
    for i in range(10, MAX_ASKING + 10):
        out += d.feed(_discover(i), T0 + 11)
    assert len(d.unanswered) == MAX_ASKING and _mac_text(MAX_ASKING + 9) in d.unanswered
    assert sorted(e.key for e in out if isinstance(e, Alert) and e.cleared) == \
        sorted(f"unanswered:{_mac_text(i)}" for i in range(10))


def test_a_forgotten_unanswered_dhcpv6_client_clears_its_alert():
    d = Decoder(our_ips=[OURS])
    for i in range(4):
        d.feed(bytes(pcap6.dhcp6(pcap6.client_msg(c.SOLICIT, xid=0x100 + i), True)), T0 + 4 * i)
    (raised,) = [e for e in d.tick(T0 + 60) if isinstance(e, Alert)]
    assert raised.key == f"unanswered6:{CLIENT_MAC}" and not raised.cleared
    (cleared,) = [e for e in d.tick(T0 + 12 + 601) if isinstance(e, Alert)]
    assert cleared.key == raised.key and cleared.cleared


def test_numbers_from_the_wire_that_int_refuses_are_ignored_not_raised() -> None:
    """'²' passes str.isdigit and int() refuses it, as it refuses over 4,300 digits: a forged
    OACK or HTTP response with either must cost the decoder nothing but the number."""
    d = Decoder(our_ips={OURS})
    client = "10.0.0.5"
    d.feed(_eth(_ipv4(17, client, OURS, _udp(2000, 69, b"\x00\x01pxelinux.0\x00octet\x00tsize\x000\x00"))), T0)
    oack = b"\x00\x06tsize\x00\xb2\x00blksize\x00" + b"9" * 5000 + b"\x00"
    d.feed(_eth(_ipv4(17, OURS, client, _udp(50000, 2000, oack))), T0 + 0.1)
    d.feed(_get(client, 41000, "/vmlinuz"), T0 + 0.2)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: " + b"7" * 5000 + b"\r\n\r\n"
    evs = d.feed(_eth(_ipv4(6, OURS, client, _tcp(80, 41000, head))), T0 + 0.3)
    assert d.undecoded == 0 and isinstance(evs, list)


def test_a_decoder_bug_on_one_frame_does_not_end_the_capture() -> None:
    from pxetui.capture.service import Capture
    from pxetui.events import Log

    events: list[Event] = []
    cap = Capture("eth0", set(), [80], events.append)
    try:
        def broken(data: bytes, ts: float) -> list[Event]:
            raise ValueError("a bug")

        cap.decoder.feed = broken  # type: ignore[method-assign]
        for i in range(3):
            cap.on_frame(b"\x00" * 60, T0 + i)
        logs = [e for e in events if isinstance(e, Log)]
        assert len(logs) == 1 and "a bug" in logs[0].message  # said once per FAILED_EVERY
        assert cap.decoder.undecoded == 3
    finally:
        cap.close()
