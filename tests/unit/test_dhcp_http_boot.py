"""The reply a UEFI HTTP boot client (EDK2 HttpBootDxe) gets: fields it needs, and options that
survive EDK2's in-place parsing of the offer it caches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from services import base_config

from pxetui import store as dbstore
from pxetui.dhcp import options as o
from pxetui.dhcp.codec import Packet, build, parse
from pxetui.dhcp.policy import BootPolicy
from pxetui.dhcp.server import DhcpServer
from pxetui.dhcp.service import open_store

MAC = bytes.fromhex("525400770010")
HTTP_VC = b"HTTPClient:Arch:00016:UNDI:003001"
COOKIE_END = 240  # 236-byte BOOTP header + 4-byte magic cookie


def edk2_cached_options(raw: bytes) -> dict[int, bytes]:
    """What EDK2 reads back from the offer it cached and hands Dhcp4Dxe as the selected one.

    HttpBootParseDhcp4Packet NUL-terminates option 67 in place: when the option's last byte
    is not NUL it writes a NUL into the byte after the option data (the next option's code).
    Dhcp4Dxe then parses the options again (PAD is skipped, END stops)."""
    buf = bytearray(raw)
    for i, code, length in walk_options(buf):
        if code == o.BOOTFILE and buf[i + 1 + length] != 0:
            buf[i + 2 + length] = 0
    out: dict[int, bytes] = {}
    for i, code, length in walk_options(buf):
        out.setdefault(code, bytes(buf[i + 2:i + 2 + length]))
    return out


def walk_options(buf: bytearray) -> Iterator[tuple[int, int, int]]:
    """(offset, code, length) of each option after the cookie, as EDK2 walks them: PAD is
    skipped, END stops. Reads `buf` as it goes, so a change made during the walk is seen."""
    i = COOKIE_END
    while i < len(buf) and buf[i] != 255:
        if buf[i] == 0:
            i += 1
            continue
        yield i, buf[i], buf[i + 1]
        i += 2 + buf[i + 1]


@pytest.fixture
def server(tmp_path: Path) -> DhcpServer:
    cfg = base_config(tmp_path)
    conn = dbstore.connect(cfg.db_path)
    policy = BootPolicy(cfg, {}, proxy=False)
    return DhcpServer(cfg, open_store(cfg, conn), policy, "full", lambda e: None, lambda mac: None)


def exchange(server: DhcpServer, msg: int, **extra: bytes) -> bytes:
    opts = {o.MSG_TYPE: bytes((msg,)), o.CLIENT_ARCH: b"\x00\x10", o.VENDOR_CLASS: HTTP_VC,
            o.CLIENT_UUID: b"\x00" + bytes(range(16)), **{int(k[1:]): v for k, v in extra.items()}}
    replies = server.handle(build(Packet(xid=7, chaddr=MAC, options=opts)), ("0.0.0.0", 68), 67)
    assert len(replies) == 1
    return replies[0][0]


def test_http_boot_offer_and_ack_survive_edk2_parsing(server: DhcpServer) -> None:
    offer_raw = exchange(server, o.DISCOVER)
    offer = parse(offer_raw)
    ack_raw = exchange(server, o.REQUEST, o54=offer.options[o.SERVER_ID], o50=offer.yiaddr)
    url = server.cfg.http_base.encode() + b"/ipxe.efi"
    for raw in (offer_raw, ack_raw):
        pkt = parse(raw)
        assert pkt.options[o.VENDOR_CLASS] == b"HTTPClient"  # docs/FIELD-NOTES.md: echo HTTPClient
        # the full URL, with its own terminating NUL so EDK2 writes nothing past it
        assert pkt.options[o.BOOTFILE] == url + b"\0"
        seen = edk2_cached_options(raw)
        assert seen[o.SUBNET_MASK] == bytes((255, 255, 255, 0)), seen
        assert seen[o.SERVER_ID] == pkt.options[o.SERVER_ID] and seen[o.LEASE_TIME]
    assert parse(ack_raw).yiaddr == offer.yiaddr


def test_edk2_model_catches_an_unterminated_url() -> None:
    # The failure the terminating NUL avoids: option 67 followed by the lease time and mask.
    opts = {o.MSG_TYPE: bytes((o.OFFER,)), o.BOOTFILE: b"http://10.99.0.1/ipxe.efi",
            o.LEASE_TIME: o.u32(3600), o.SUBNET_MASK: bytes((255, 255, 255, 0))}
    seen = edk2_cached_options(build(Packet(op=2, chaddr=MAC, options=opts)))
    assert seen.get(o.SUBNET_MASK) != bytes((255, 255, 255, 0))


def test_pxe_client_keeps_file_and_unterminated_option_67(server: DhcpServer) -> None:
    opts = {o.MSG_TYPE: bytes((o.DISCOVER,)), o.CLIENT_ARCH: b"\x00\x07",
            o.VENDOR_CLASS: b"PXEClient:Arch:00007:UNDI:003000"}
    pkt = parse(server.handle(build(Packet(xid=8, chaddr=MAC, options=opts)), ("0.0.0.0", 68), 67)[0][0])
    assert pkt.file and pkt.options[o.BOOTFILE] == pkt.file and not pkt.file.endswith(b"\0")
