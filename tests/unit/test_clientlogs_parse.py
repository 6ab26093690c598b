"""pxetui.clientlogs: syslog (RFC 3164, RFC 5424) and netconsole payloads decode totally."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxetui.clientlogs import decode, netconsole
from pxetui.clientlogs.syslog import SyslogError, parse


def test_rfc5424_with_structured_data_and_bom() -> None:
    m = parse(b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
              b'[exampleSDID@32473 iut="3" eventSource="App\\"lic]ation"] \xef\xbb\xbfAn application event')
    assert (m.facility, m.severity, m.format) == (20, 5, "rfc5424")
    assert (m.hostname, m.app, m.procid, m.msgid) == ("mymachine.example.com", "evntslog", "", "ID47")
    assert m.message == "An application event"


def test_rfc5424_without_message_and_nil_fields() -> None:
    m = parse(b"<0>1 - - - - - -")
    assert (m.facility, m.severity, m.message, m.hostname, m.timestamp) == (0, 0, "", "", "")


def test_busybox_line_without_host_keeps_the_tag() -> None:
    # What the Debian installer's busybox syslogd forwards (no host name).
    m = parse(b"<14>Dec  7 09:00:15 main-menu[240]: INFO: Menu item 'netcfg' selected")
    assert (m.app, m.procid, m.hostname) == ("main-menu", "240", "")
    assert m.message == "INFO: Menu item 'netcfg' selected" and m.format == "rfc3164"


def test_bsd_line_with_host() -> None:
    m = parse(b"<13>Dec 17 09:00:15 client1 root: hello world")
    assert (m.hostname, m.app, m.message, m.timestamp) == ("client1", "root", "hello world", "Dec 17 09:00:15")


def test_no_pri_is_user_notice_as_a_relay_assumes() -> None:
    m = parse(b"just text\n")
    assert (m.facility, m.severity, m.message) == (1, 5, "just text")


@pytest.mark.parametrize("data", [b"", b"  \n", b"<192>x", b"<01>x", b"<abc>x", b"<13>1 only two",
                                  b"<13>1 t h a p m [unterminated", b"<13>1 t h a p m x"])
def test_garbage_is_a_syslog_error_that_says_why(data: bytes) -> None:
    with pytest.raises(SyslogError) as info:
        parse(data)
    assert str(info.value)


def test_control_characters_cannot_reach_a_terminal() -> None:
    m = parse(b"<13>Dec  7 09:00:15 evil: \x1b[2J\x07cleared\r\n")
    assert "\x1b" not in m.message and "\x07" not in m.message and m.message.endswith("cleared")


def test_netconsole_plain_and_extended() -> None:
    plain = netconsole.parse(b"[    1.234567] Linux version 6.1.0\n[    1.3] second\n")
    assert [c.message for c in plain] == ["[    1.234567] Linux version 6.1.0", "[    1.3] second"]
    assert plain[0].severity is None
    ext = netconsole.parse(b"4,1234,5678901,-;e1000 0000:00:03.0 eth0: link down\n SUBSYSTEM=net\n DEVICE=n2\n")
    assert [(c.message, c.severity, c.facility, c.seq) for c in ext] == [
        ("e1000 0000:00:03.0 eth0: link down", 4, 0, 1234)]


def test_decode_cuts_long_lines_and_names_unknown_sources() -> None:
    lines = decode.decode("syslog", b"<13>" + b"x" * 5000, max_bytes=300)
    assert lines[0].truncated and len(lines[0].message) <= 300
    assert decode.source_for(514, 514, 6666) == "syslog" and decode.source_for(53, 514, 6666) is None
    with pytest.raises(ValueError, match="unknown log source"):
        decode.decode("smtp", b"x")


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=600))
def test_syslog_parse_is_total(data: bytes) -> None:
    try:
        m = parse(data)
    except SyslogError:
        return
    assert 0 <= m.facility <= 23 and 0 <= m.severity <= 7
    assert not any(ord(ch) < 32 and ch != "\t" for ch in m.message)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"<13>", b"<191>1 ", b"<0>1 - - - - - ", b"<14>Dec  7 09:00:15 ", b""]),
       st.binary(max_size=300))
def test_syslog_parse_is_total_after_a_valid_start(head: bytes, tail: bytes) -> None:
    try:
        m = parse(head + tail)
    except SyslogError as exc:
        assert str(exc)  # says what is wrong
        return
    assert m.format in ("rfc3164", "rfc5424") and "\n" not in m.message


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 191), st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=80))
def test_rfc5424_round_trip(pri: int, text: str) -> None:
    m = parse(f"<{pri}>1 2026-12-07T09:00:00Z host app 42 - - {text}".encode())
    assert (m.facility, m.severity, m.app, m.procid) == (pri >> 3, pri & 7, "app", "42")
    assert m.message == text.rstrip("\r\n\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_netconsole_parse_is_total(data: bytes) -> None:
    for line in netconsole.parse(data):
        assert line.message.strip() and "\n" not in line.message
