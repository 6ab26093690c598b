"""The DHCPv6 codec: fuzzing (only Dhcp6Error escapes), round trips, and a golden OVMF PXEv6
Solicit built byte by byte from RFC 8415 / RFC 5970 and what EDK2's PxeBcDhcp6 sends."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pxetui.dhcp6 import codec as c
from pxetui.dhcp6.codec import Dhcp6Error, Dhcp6Message, encode, parse

# OVMF "PXE over IPv6" Solicit, by hand, with the options in the order OVMF sends them (as in
# tests/data/ovmf-pxe6.pcapng, read below):
OVMF_SOLICIT = bytes.fromhex(
    "01" "5a3c1e"  # SOLICIT, transaction id 0x5a3c1e
    "0001" "000e" "0001" "0001" "31ef5083" "525400770010"  # client id: DUID-LLT, Ethernet, MAC
    "0008" "0002" "0000"  # elapsed time 0
    "0003" "000c" "0c0d0e0f" "00000000" "00000000"  # IA_NA iaid 0x0c0d0e0f, T1 0, T2 0
    "0006" "0008" "003b" "003c" "0017" "0010"  # ORO: 59 boot URL, 60 params, 23 DNS, 16 vendor
    "003e" "0003" "010300"  # network interface identifier: UNDI 3.0 (RFC 5970 3.4)
    "003d" "0002" "0007"  # client architecture: 7 (EFI x64)
    "0010" "0026" "00000157" "0020"  # vendor class: enterprise 343, one 32-byte item:
    + b"PXEClient:Arch:00007:UNDI:003000".hex()
)
PCAP = Path(__file__).resolve().parent.parent / "data" / "ovmf-pxe6.pcapng"


def dhcp6_payloads() -> list[tuple[int, bytes]]:
    """(UDP destination port, payload) of every DHCPv6 datagram in the OVMF capture."""
    from scapy.layers.inet import UDP
    from scapy.utils import rdpcap

    return [(p[UDP].dport, bytes(p[UDP].payload)) for p in rdpcap(str(PCAP))
            if UDP in p and p[UDP].dport in (546, 547)]


def test_golden_ovmf_pxe_solicit() -> None:
    msg = parse(OVMF_SOLICIT)
    assert (msg.msg_type, msg.name, msg.transaction_id) == (c.SOLICIT, "SOLICIT", 0x5A3C1E)
    assert c.duid_mac(msg.client_id) == "52:54:00:77:00:10"
    assert [(ia.iaid, ia.t1, ia.t2, ia.addresses) for ia in msg.ia_na] == [(0x0C0D0E0F, 0, 0, [])]
    assert msg.oro == [59, 60, 23, 16]
    assert msg.elapsed == 0
    vc = msg.vendor_class
    assert vc is not None and vc.enterprise == c.ENTERPRISE_PXE
    assert vc.data == [b"PXEClient:Arch:00007:UNDI:003000"]
    assert msg.vendor_class_text.startswith("PXEClient")
    assert msg.client_arch == [7]
    assert msg.server_id is None and not msg.rapid_commit and msg.boot_file_url is None
    assert [code for code, _ in msg.options] == [1, 8, 3, 6, 62, 61, 16]
    assert encode(msg) == OVMF_SOLICIT  # byte-exact: options kept raw and in order


def test_golden_ovmf_capture_parses_and_round_trips() -> None:
    """OVMF against dnsmasq (tests/data/README.md): first an address-only exchange, then the
    PXE one with options 59/60 asked, 61 = 7 and PXEClient; dnsmasq answers with option 59."""
    payloads = dhcp6_payloads()
    msgs = [parse(data) for _, data in payloads]
    assert all(encode(m) == data for m, (_, data) in zip(msgs, payloads, strict=True))
    assert [m.name for m in msgs] == ["SOLICIT", "ADVERTISE", "REQUEST", "REPLY"] * 2 + ["RELEASE", "REPLY"]
    assert all(port == 547 for (port, _), m in zip(payloads, msgs, strict=True) if m.msg_type in c.CLIENT_TYPES)
    plain, pxe = msgs[0], msgs[4]
    assert plain.oro == [23] and plain.client_arch == [] and plain.vendor_class is None
    assert [code for code, _ in pxe.options] == [code for code, _ in parse(OVMF_SOLICIT).options]
    assert pxe.client_arch == [7] and pxe.oro == [59, 60, 23, 16]
    assert pxe.vendor_class_text == "PXEClient:Arch:00007:UNDI:003000"
    assert c.duid_mac(pxe.client_id) == "52:54:00:77:00:10"
    assert msgs[5].boot_file_url == "tftp://[fd99::1]/grubnetx64.efi"
    assert [a.address for a in msgs[7].ia_na[0].addresses] == ["fd99::18e"]


def test_advertise_with_boot_options_round_trips() -> None:
    ia = c.IaNa(7, 300, 480, [c.IaAddress("fd99::1000", 600, 900)])
    msg = Dhcp6Message(c.ADVERTISE, 0xABCDEF)
    msg.add(c.OPT_SERVERID, c.duid_ll("52:54:00:12:34:56"))
    msg.add(c.OPT_IA_NA, c.encode_ia_na(ia))
    msg.add(c.OPT_BOOTFILE_URL, b"tftp://[fd99::1]/ipxe.efi")
    msg.add(c.OPT_BOOTFILE_PARAM, c.encode_items([b"root=tftp", b"quiet"]))
    msg.add(c.OPT_VENDOR_CLASS, c.encode_vendor_class(c.VendorClass(343, [b"HTTPClient"])))
    msg.add(c.OPT_RAPID_COMMIT, b"")
    msg.add(c.OPT_STATUS_CODE, c.encode_status(c.Status(0, "ok")))
    back = parse(encode(msg))
    assert back == msg
    assert back.ia_na == [ia]
    assert back.boot_file_url == "tftp://[fd99::1]/ipxe.efi"
    assert back.boot_file_params == ["root=tftp", "quiet"]
    assert back.rapid_commit and back.status == c.Status(0, "ok")
    assert c.duid_mac(back.server_id) == "52:54:00:12:34:56"


def test_ia_na_status_inside() -> None:
    ia = c.IaNa(1, status=c.Status(c.STATUS_NO_ADDRS_AVAIL, "pool full"))
    got = c.decode_ia_na(c.encode_ia_na(ia))
    assert got.status is not None and got.status.name == "NoAddrsAvail"
    assert got.status.message == "pool full"


def test_duid_mac() -> None:
    llt = bytes.fromhex("0001" "0001" "2a5c1b00" "525400aabbcc")
    assert c.duid_mac(llt) == "52:54:00:aa:bb:cc"
    assert c.duid_mac(bytes.fromhex("0003" "0001" "525400aabbcc")) == "52:54:00:aa:bb:cc"
    assert c.duid_mac(bytes.fromhex("0003" "0006" "525400aabbcc")) is None  # not Ethernet
    assert c.duid_mac(bytes.fromhex("0002" "00000157" "0102")) is None  # DUID-EN
    assert c.duid_mac(None) is None and c.duid_mac(b"\x00") is None


def test_relay_forward_parses_with_inner_message() -> None:
    relay = Dhcp6Message(c.RELAY_FORW, hop_count=1, link_address="2001:db8::1",
                         peer_address="fe80::5054:ff:fe12:3456")
    relay.add(c.OPT_RELAY_MSG, OVMF_SOLICIT)
    msg = parse(encode(relay))
    assert (msg.name, msg.hop_count, msg.link_address) == ("RELAY-FORW", 1, "2001:db8::1")
    inner = msg.relay_message()
    assert inner is not None and inner.client_arch == [7]


@pytest.mark.parametrize(("data", "words"), [
    (b"\x01\x00", "too short"),
    (b"\x00\x00\x00\x01", "reserved"),
    (b"\x01\x00\x00\x01\x00\x01\x00\x09ab", "option 1 claims 9 bytes"),
    (b"\x01\x00\x00\x01\x00\x01", "stray bytes"),
    (b"\x01\x00\x00\x01\x00\x03\x00\x04abcd", "IA_NA option: 4 bytes"),
    (b"\x01\x00\x00\x01\x00\x06\x00\x03abc", "odd length"),
    (b"\x01\x00\x00\x01\x00\x08\x00\x01a", "elapsed time"),
    (b"\x01\x00\x00\x01\x00\x0e\x00\x01a", "rapid commit"),
    (b"\x01\x00\x00\x01\x00\x10\x00\x02ab", "vendor class"),
    (b"\x01\x00\x00\x01\x00\x10\x00\x07\x00\x00\x01\x57\x00\x09a", "item claims 9"),
    (b"\x01\x00\x00\x01\x00\x01\x00\x01a", "client identifier"),
    (b"\x0c\x00" + bytes(20), "relay message too short"),
    (b"\x0c\x00" + bytes(32), "without a relay message"),
    (b"\x0c\x00" + bytes(32) + b"\x00\x09\x00\x01\x01", "relay message: too short"),
])
def test_malformed_is_named(data: bytes, words: str) -> None:
    with pytest.raises(Dhcp6Error, match=words.replace("(", r"\(")):
        parse(data)


def _check_accessors(msg: Dhcp6Message) -> None:
    # every accessor works on whatever parse() accepted (parse validated the contents)
    _ = (msg.client_id, msg.server_id, msg.ia_na, msg.oro, msg.elapsed, msg.vendor_class,
         msg.vendor_class_text, msg.user_class, msg.client_arch, msg.boot_file_url,
         msg.boot_file_params, msg.rapid_commit, msg.status, msg.name)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
@example(OVMF_SOLICIT)
def test_any_bytes_parse_or_raise_the_one_error(data: bytes) -> None:
    try:
        msg = parse(data)
    except Dhcp6Error as err:
        assert str(err)  # the error names the problem
        return
    _check_accessors(msg)
    assert msg.msg_type == data[0]
    assert parse(encode(msg)) == msg


_OPTION = st.tuples(st.sampled_from([1, 2, 3, 6, 8, 13, 14, 15, 16, 59, 60, 61, 99]),
                    st.binary(max_size=60))


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 11), st.integers(0, 2**24 - 1), st.lists(_OPTION, max_size=8))
def test_structured_options_parse_or_raise(msg_type: int, xid: int,
                                           opts: list[tuple[int, bytes]]) -> None:
    """Valid framing with random contents reaches each option's decoder."""
    data = encode(Dhcp6Message(msg_type, xid, opts))
    try:
        msg = parse(data)
    except Dhcp6Error as err:
        assert str(err)
        return
    assert msg.options == opts and msg.transaction_id == xid
    _check_accessors(msg)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.lists(st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**32 - 1)), max_size=4),
       st.lists(st.binary(max_size=40), max_size=4), st.lists(st.integers(0, 0xFFFF), max_size=6))
def test_typed_round_trip(iaid: int, t1: int, t2: int, addrs: list[tuple[int, int, int]],
                          items: list[bytes], arches: list[int]) -> None:
    import ipaddress

    ia = c.IaNa(iaid, t1, t2, [c.IaAddress(str(ipaddress.IPv6Address(a)), p, v)
                               for a, p, v in addrs])
    msg = Dhcp6Message(c.REPLY, 1, [(c.OPT_IA_NA, c.encode_ia_na(ia)),
                                    (c.OPT_USER_CLASS, c.encode_items(items)),
                                    (c.OPT_CLIENT_ARCH_TYPE,
                                     b"".join(a.to_bytes(2, "big") for a in arches))])
    back = parse(encode(msg))
    assert back.ia_na == [ia] and back.user_class == items and back.client_arch == arches
