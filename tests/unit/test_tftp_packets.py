"""The TFTP codec: round trips, and hostile bytes only ever raise PacketError."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pxetui.tftp.packets import (
    RRQ,
    WRQ,
    Ack,
    Data,
    Error,
    OAck,
    PacketError,
    Request,
    encode_ack,
    encode_data,
    encode_error,
    encode_oack,
    encode_request,
    parse,
)

names = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=60)
opt_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
opt_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)


@given(op=st.sampled_from([RRQ, WRQ]), name=names, mode=st.sampled_from(["octet", "netascii", "OCTET"]),
       options=st.dictionaries(opt_names, opt_values, max_size=5))
def test_request_round_trip(op, name, mode, options):
    pkt = parse(encode_request(op, name, mode, options))
    assert isinstance(pkt, Request)
    assert (pkt.opcode, pkt.filename, pkt.mode) == (op, name, mode.lower())
    expect: dict[str, str] = {}
    for k, v in options.items():
        expect.setdefault(k.lower(), v)
    assert pkt.options == expect


@given(block=st.integers(0, 0xFFFF), payload=st.binary(max_size=1500))
def test_data_and_ack_round_trip(block, payload):
    assert parse(encode_data(block, payload)) == Data(block, payload)
    assert parse(encode_ack(block)) == Ack(block)


@given(code=st.integers(0, 8), msg=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=100))
def test_error_round_trip(code, msg):
    assert parse(encode_error(code, msg)) == Error(code, msg)


def test_opcodes_on_the_wire_are_the_rfcs():
    """Round trips pass with any numbering; the bytes pin RFC 1350 section 5 (RRQ 1 .. ERROR 5)
    and RFC 2347's OACK 6, which every PXE ROM expects."""
    assert encode_request(RRQ, "f") == b"\x00\x01f\x00octet\x00"
    assert encode_request(WRQ, "f") == b"\x00\x02f\x00octet\x00"
    assert encode_data(1, b"x") == b"\x00\x03\x00\x01x"
    assert encode_ack(2) == b"\x00\x04\x00\x02"
    assert encode_error(1, "no") == b"\x00\x05\x00\x01no\x00"
    assert encode_oack({"tsize": 5}) == b"\x00\x06tsize\x005\x00"
    assert parse(b"\x00\x03\x00\x07ab") == Data(7, b"ab")
    assert parse(b"\x00\x04\x00\x07") == Ack(7)


def test_oack_round_trip_keeps_order():
    pkt = parse(encode_oack({"tsize": 123, "blksize": 1468, "windowsize": 4}))
    assert isinstance(pkt, OAck)
    assert list(pkt.options.items()) == [("tsize", "123"), ("blksize", "1468"), ("windowsize", "4")]


@given(st.binary(max_size=600))
def test_parse_never_raises_anything_else(raw):
    try:
        pkt = parse(raw)
    except PacketError as exc:
        assert str(exc)  # the message names the problem
    else:
        assert isinstance(pkt, Request | Data | Ack | Error | OAck)


@given(st.binary(max_size=200))
@example(b"pxelinux.0\x00octet\x00")  # the check below runs whatever hypothesis draws
def test_request_with_hostile_body(body):
    try:
        pkt = parse(b"\x00\x01" + body)
    except PacketError:
        return
    assert isinstance(pkt, Request) and pkt.filename


@pytest.mark.parametrize("raw, problem", [
    (b"\x00\x01", "too short"),
    (b"\x00\x01file\x00octet", "NUL-terminated"),
    (b"\x00\x01file\x00", "no transfer mode"),
    (b"\x00\x01\x00octet\x00", "empty file name"),
    (b"\x00\x01f\x00oct\xffet\x00", "not ASCII"),
    (b"\x00\x01f\x00octet\x00blksize\x00", "has no value"),
    (b"\x00\x09abcd", "unknown opcode"),
])
def test_malformed_requests_name_the_problem(raw, problem):
    with pytest.raises(PacketError, match=problem):
        parse(raw)


def test_padding_nuls_after_options_are_tolerated():
    # Some PXE ROMs pad the request; the options before the padding still count.
    pkt = parse(b"\x00\x01pxelinux.0\x00octet\x00tsize\x000\x00\x00\x00")
    assert isinstance(pkt, Request) and pkt.options == {"tsize": "0"}


def test_option_names_are_case_insensitive_first_wins():
    pkt = parse(b"\x00\x01f\x00octet\x00BLKSIZE\x001432\x00blksize\x00512\x00")
    assert isinstance(pkt, Request) and pkt.options == {"blksize": "1432"}


def test_undecodable_file_name_survives_for_the_filesystem():
    pkt = parse(b"\x00\x01caf\xe9\x00octet\x00")
    assert isinstance(pkt, Request)
    assert pkt.filename.encode("utf-8", "surrogateescape") == b"caf\xe9"
