"""The struct codec: fuzzing (only DhcpParseError escapes) and golden round trips from real
client packets captured off the wire (tests/data/dhcp/README.md says how each was captured)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pxetui.dhcp import options as o
from pxetui.dhcp.codec import HEADER_LEN, MAGIC, DhcpParseError, Packet, build, parse

DATA = Path(__file__).resolve().parent.parent / "data" / "dhcp"
COOKIE = MAGIC.to_bytes(4, "big")
HEADER = bytes([1, 1, 6, 0]) + bytes(HEADER_LEN - 4)


def golden(name: str) -> Packet:
    return parse((DATA / name).read_bytes())


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=700) | st.binary(min_size=HEADER_LEN, max_size=700))  # half past the header
@example(HEADER + COOKIE + b"\x35\x01\x01\xff")  # random bytes seldom parse: this one does
def test_any_bytes_parse_or_raise_the_one_error(data: bytes) -> None:
    try:
        pkt = parse(data)
    except DhcpParseError as err:
        assert str(err)  # the error names the problem
    else:  # what parses is the fixed header as sent (RFC 2131 section 2)
        assert (pkt.op, pkt.xid) == (data[0], int.from_bytes(data[4:8], "big"))
        assert pkt.mac == data[28 : 28 + min(data[2], 16)].hex(":")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"", b"\x34\x01\x01", b"\x34\x01\x03"]))
@example(b"\x35\x01\x01\xff", b"")  # the round trip below runs whatever hypothesis draws
def test_any_options_after_a_valid_header(opts: bytes, overload: bytes) -> None:
    """Random option bytes behind a valid header reach the TLV walker and its overload path."""
    try:
        pkt = parse(HEADER + COOKIE + overload + opts)
    except DhcpParseError:
        return
    # whatever parsed must build and parse back to the same thing
    again = parse(build(pkt))
    assert again.options == pkt.options and again.xid == pkt.xid


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(1, 254).filter(lambda c: c != 52), st.binary(max_size=600),
                       max_size=12),
       st.integers(0, 2**32 - 1), st.binary(min_size=6, max_size=6), st.binary(max_size=64),
       st.binary(max_size=128))
def test_build_parse_round_trip(opts: dict[int, bytes], xid: int, mac: bytes, sname: bytes,
                                file: bytes) -> None:
    sname, file = sname.replace(b"\0", b"x"), file.replace(b"\0", b"x")
    pkt = Packet(xid=xid, chaddr=mac, sname=sname, file=file, options=opts)
    back = parse(build(pkt))
    assert back.options == {k: v for k, v in opts.items()}  # incl. RFC 3396 splitting of >255
    assert (back.xid, back.mac, back.sname, back.file) == (xid, mac.hex(":"), sname, file)


@pytest.mark.parametrize("data, problem", [
    (b"", "too short"),
    (bytes(235), "too short"),
    (bytes([3]) + bytes(299), "neither BOOTREQUEST"),
    (bytes([1, 1, 17]) + bytes(297), "hardware address length"),
    (HEADER + COOKIE + b"\x35", "no length byte"),
    (HEADER + COOKIE + b"\x35\x05\x01", "claims 5 bytes"),
])
def test_parse_errors_name_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(DhcpParseError, match=problem):
        parse(data)


def test_plain_bootp_without_cookie_is_not_dhcp() -> None:
    pkt = parse(HEADER + bytes(64))
    assert not pkt.dhcp and pkt.options == {}


def test_option_overload_reads_file_field() -> None:
    file_opts = b"\x43\x05hello\xff"
    raw = bytearray(build(Packet(xid=9, chaddr=b"\x01" * 6, options={52: b"\x01", 53: b"\x01"})))
    raw[108 : 108 + len(file_opts)] = file_opts  # `file` starts at byte 108
    pkt = parse(bytes(raw))
    assert pkt.options[67] == b"hello" and pkt.file == b""


def test_long_option_split_and_joined() -> None:
    url = b"http://10.0.0.1/" + b"a" * 400
    raw = build(Packet(options={53: b"\x02", 67: url}))
    assert raw.count(bytes((67, 255))) == 1
    assert parse(raw).options[67] == url


def test_minimum_size_is_300() -> None:
    assert len(build(Packet(options={53: b"\x01"}))) == 300


# -- golden packets: real clients (docs/FIELD-NOTES.md fingerprints) ---------------------------

def roundtrip(pkt: Packet) -> None:
    again = parse(build(pkt))
    assert again == pkt
    assert build(again) == build(pkt)


def test_seabios_ipxe_discover() -> None:
    pkt = golden("seabios_ipxe_discover.bin")
    roundtrip(pkt)
    assert o.msg_type(pkt) == o.DISCOVER and o.arch(pkt) == 0
    assert o.text(pkt, o.VENDOR_CLASS) == "PXEClient:Arch:00000:UNDI:002001"
    assert o.user_classes(pkt) == ["iPXE"]  # a bare string, not RFC 3004 framing
    assert o.IPXE_ENCAP in pkt.options and pkt.options[o.MAX_SIZE] == (1472).to_bytes(2, "big")
    assert o.ndi(pkt) == (1, 2, 1)  # UNDI 2.1
    assert o.suboptions(pkt.options[o.IPXE_ENCAP])  # iPXE's feature list decodes as TLVs
    assert not pkt.broadcast


def test_ovmf_native_pxe_discover() -> None:
    pkt = golden("ovmf_pxe_discover.bin")
    roundtrip(pkt)
    assert o.arch(pkt) == 7 and o.text(pkt, o.VENDOR_CLASS) == "PXEClient:Arch:00007:UNDI:003000"
    assert o.USER_CLASS not in pkt.options and o.CLIENT_ID not in pkt.options
    assert pkt.broadcast and o.client_uuid(pkt) is not None


def test_ovmf_ipxe_efi_discover() -> None:
    pkt = golden("ovmf_ipxe_discover.bin")
    roundtrip(pkt)
    assert o.arch(pkt) == 7 and o.text(pkt, o.VENDOR_CLASS) == "PXEClient:Arch:00007:UNDI:003010"
    assert o.user_classes(pkt) == ["iPXE"]


def test_udhcpc_discover() -> None:
    pkt = golden("udhcpc_discover.bin")
    roundtrip(pkt)
    assert o.msg_type(pkt) == o.DISCOVER and o.arch(pkt) is None
    assert set(pkt.options[o.PARAM_REQUEST]) >= {1, 3, 6, 12, 15, 28, 42}


def test_dhclient_request() -> None:
    pkt = golden("dhclient_request.bin")
    roundtrip(pkt)
    assert o.msg_type(pkt) == o.REQUEST and o.ip_opt(pkt, o.REQUESTED_IP) is not None


def test_user_class_rfc3004_framing() -> None:
    pkt = Packet(options={77: b"\x04iPXE\x03abc"})
    assert o.user_classes(pkt) == ["iPXE", "abc"]
