from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pxetui.events import EVENT_TYPES, EventDecodeError, LeaseGranted, TransferStarted, from_json
from pxetui.logfmt import describe, level_of, line


def test_every_event_round_trips_and_has_a_readable_line():
    for name, cls in EVENT_TYPES.items():
        ev = cls(service="x", mac="52:54:00:00:00:01", ip="10.0.0.5")
        d = json.loads(ev.to_json())
        assert d["type"] == name and d["service"] == "x" and "ts" in d
        assert from_json(ev.to_json()) == ev
        assert describe(d) or name == "Log"  # every event can be shown (a Log is its message)
        assert line(d).split()[0].count(":") == 2


def test_fields_survive_and_unknown_fields_are_ignored():
    ev = TransferStarted(service="tftp", ip="10.0.0.5", transfer_id="t1", path="pxelinux.0",
                         size=42, options={"blksize": 1432, "windowsize": 4})
    d = ev.to_dict()
    d["added_by_a_newer_engine"] = 1
    back = from_json(json.dumps(d))
    assert isinstance(back, TransferStarted) and back.options == {"blksize": 1432, "windowsize": 4}
    assert back == ev  # every field, ts included
    older = ev.to_dict()
    del older["size"]  # a line from an engine before the field: its default
    assert from_json(json.dumps(older)).size is TransferStarted().size


def test_lease_line_names_the_other_server():
    d = LeaseGranted(ip="10.0.0.9", mac="aa:bb:cc:dd:ee:ff", ours=False, server_ip="10.0.0.254").to_dict()
    assert describe(d) == "lease 10.0.0.9 -> aa:bb:cc:dd:ee:ff by 10.0.0.254"
    assert level_of({"type": "TransferFailed"}) == "warning"


@pytest.mark.parametrize("bad", [b"", b"nope", b"[]", b'{"type": "Nope"}', b'{"type": 3}', b"\xff\xfe"])
def test_bad_lines_raise_one_error(bad):
    with pytest.raises(EventDecodeError):
        from_json(bad)


@given(st.binary(max_size=200))
@example(b'{"type": "Log", "ts": 1.5, "message": "hi"}')  # random bytes seldom decode: this does
def test_any_bytes_decode_or_raise_event_decode_error(data):
    try:
        ev = from_json(data)
    except EventDecodeError as err:
        assert str(err)  # the error names the problem
    else:
        # what decodes is the event the line names, whole
        assert json.loads(data)["type"] == type(ev).__name__ and from_json(ev.to_json()) == ev


@pytest.mark.parametrize("n,wide,compact", [(None, "?", "?"), (512, "512 B", "512B"),
                                            (1536, "1.5 KiB", "1.5K"), (3 * 2**30, "3.0 GiB", "3.0G"),
                                            (5 * 2**40, "5120.0 GiB", "5120.0G")])
def test_one_size_format_for_logs_reports_and_tables(n, wide, compact):
    from pxetui.logfmt import human_size

    assert human_size(n) == wide and human_size(n, compact=True) == compact


def test_printer_writes_once_per_loop_turn_and_hides_debug():
    import asyncio
    import io

    from pxetui.events import DhcpIgnored, DhcpPacket
    from pxetui.logfmt import Printer

    class Counting(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            self.writes += 1
            return super().write(s)

    async def storm(out: Counting, verbose: bool) -> int:
        p = Printer(out, verbose=verbose)
        for i in range(100):
            p(DhcpPacket(service="dhcp", mac=f"52:54:00:00:00:{i:02x}", msg_type="DISCOVER"))
            p(DhcpIgnored(service="dhcp", reason="limits"))
        before = out.writes
        await asyncio.sleep(0)
        return before

    quiet = Counting()
    assert asyncio.run(storm(quiet, False)) == 0  # nothing written inside the batch
    lines = quiet.getvalue().splitlines()
    assert quiet.writes == 1 and len(lines) == 100 and all("DISCOVER" in x for x in lines)
    loud = Counting()
    asyncio.run(storm(loud, True))
    assert len(loud.getvalue().splitlines()) == 200
    # Without a loop (a command's own output), each line goes at once.
    direct = Counting()
    Printer(direct)(DhcpPacket(service="dhcp", msg_type="ACK"))
    assert direct.writes == 1 and "ACK" in direct.getvalue()


def test_printer_holds_info_lines_over_log_rate_and_says_how_many_once_a_second():
    import io

    from pxetui.events import Alert, DhcpPacket, LeaseGranted, Log
    from pxetui.logfmt import Printer

    now = [100.2]
    out = io.StringIO()
    p = Printer(out, rate=5, clock=lambda: now[0])
    for i in range(20):
        p(DhcpPacket(service="dhcp", mac=f"52:54:00:00:00:{i:02x}", msg_type="DISCOVER"))
    for _ in range(3):
        p(LeaseGranted(service="dhcp", mac="52:54:00:00:00:01", ip="10.0.0.5"))
    p(Log(service="dhcp", level_name="error", message="disk full"))  # never held back
    p(Alert(service="capture", key="k", severity="warning", message="foreign server"))
    lines = out.getvalue().splitlines()
    assert sum("DISCOVER" in x for x in lines) == 5 and not any("lease" in x for x in lines)
    assert any("disk full" in x for x in lines) and any("foreign server" in x for x in lines)
    assert not any("not shown" in x for x in lines)  # said when the second is over
    now[0] = 101.0
    p(DhcpPacket(service="dhcp", mac="52:54:00:00:00:99", msg_type="REQUEST"))
    lines = out.getvalue().splitlines()
    held = [x for x in lines if "not shown" in x]
    assert len(held) == 1
    assert "18 log lines not shown" in held[0] and "DhcpPacket 15" in held[0] and "LeaseGranted 3" in held[0]
    assert "log.rate 5/s" in held[0]
    assert lines[-1].endswith("REQUEST <- 52:54:00:00:00:99")  # the new second starts afresh
    # A stop in the same second still says what was held back.
    for _ in range(10):
        p(DhcpPacket(service="dhcp", mac="52:54:00:00:00:98", msg_type="REQUEST"))
    p.close()
    assert "6 log lines not shown" in out.getvalue().splitlines()[-1]


def test_printer_without_rate_shows_every_line():
    import io

    from pxetui.events import DhcpPacket
    from pxetui.logfmt import Printer

    out = io.StringIO()
    p = Printer(out, rate=0)
    for i in range(2000):
        p(DhcpPacket(service="dhcp", mac="52:54:00:00:00:01", msg_type="DISCOVER", xid=i))
    assert len(out.getvalue().splitlines()) == 2000


def test_log_rate_out_of_range_is_a_config_error():
    import pytest

    from pxetui.config import Config, ConfigError

    with pytest.raises(ConfigError, match=r"log.rate: -1 is outside 0\.\.10000000"):
        Config.from_dict({"interface": "eth0", "log": {"rate": -1}})
    with pytest.raises(ConfigError, match=r"events.packet_rate: -5 is outside 0\.\.10000000"):
        Config.from_dict({"interface": "eth0", "events": {"packet_rate": -5}})


# -- what a client sent, written to a terminal and engine.log (docs/SECURITY.md) -------------

def _one_safe_line(text: str) -> None:
    assert "\n" not in text and "\r" not in text
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or 0xD800 <= ord(ch) <= 0xDFFF
                   or ch in "\u2028\u2029" for ch in text), repr(text)


@pytest.mark.parametrize("ev", [
    # GET /%1b%5d0%3bOWNED%07%1b%5b2J: the percent-decoded path retitled and cleared the terminal
    {"type": "TransferFailed", "service": "http", "ip": "10.0.0.66", "protocol": "http",
     "path": "\x1b]0;OWNED\x07\x1b[2J", "reason": "control character in path"},
    # a TFTP file name forging a line of its own
    {"type": "TransferFailed", "service": "tftp", "ip": "10.0.0.66", "protocol": "tftp",
     "path": "x\n12:00:00 !! dhcp fake line\r", "reason": "file not found"},
    # a User-Agent (C1 CSI, NEL) and an undecodable file name byte (a lone surrogate)
    {"type": "TransferStarted", "service": "http", "ip": "10.0.0.66", "protocol": "http",
     "path": "a\udc9bb", "options": {"user-agent": "iPXE\x9b2J\x85x\u2028y\x7f"}},
    # option 67 of another DHCP server, from the wire
    {"type": "Alert", "service": "capture", "key": "foreign-dhcp:10.0.0.9", "severity": "warning",
     "message": "Another DHCP server ..., boot file \x1b[31mevil\x00.efi"},
    {"type": "Log", "service": "tftp\x1b[2J", "message": "tftp: request failed: \x1b]52;c;AAAA\x07"},
])
def test_client_strings_cannot_inject_terminal_escapes_or_lines(ev):
    text = line(ev)
    _one_safe_line(text)
    _one_safe_line(describe(ev))  # the UI's log (pxetui/state.py) and engine.log read this too
    assert "?" in describe(ev)  # visible, as client log lines (docs/CLIENT-LOGS.md)


def test_printer_writes_one_line_per_event_whatever_the_client_sent():
    import io

    from pxetui.events import TransferFailed
    from pxetui.logfmt import Printer

    out = io.StringIO()
    p = Printer(out)
    p(TransferFailed(service="tftp", ip="10.0.0.66", protocol="tftp",
                     path="x\n12:00:00 !! dhcp fake line", reason="file not found"))
    p(TransferFailed(service="http", ip="10.0.0.66", protocol="http",
                     path="\x1b]0;OWNED\x07\x1b[2J", reason="control character in path"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("tftp 10.0.0.66 x?12:00:00 !! dhcp fake line FAILED: file not found")
    assert lines[1].endswith("http 10.0.0.66 ?]0;OWNED??[2J FAILED: control character in path")
    for x in lines:
        _one_safe_line(x)


def test_printable_keeps_ordinary_text_and_turns_a_tab_into_a_space():
    from pxetui.logfmt import printable

    for ok in ("pxelinux.cfg/01-52-54-00-00-00-01", "Grüße/日本語.iso", "a\xa0b ~"):
        assert printable(ok) == ok
    assert printable("debconf:\tstep") == "debconf: step"
