"""What the wire says reaches a terminal only as printable text: `pxetui watch`, `analyze` and
`status` print capture timelines, alerts and another server's boot file; the doctor's TFTP
client reads numbers from whoever answers (docs/SECURITY.md, "What clients write to our
terminal")."""

from __future__ import annotations

import io

import pytest

from pxetui.commands.watch import Lines
from pxetui.doctor.tftpget import TftpFailed, _oack_numbers
from pxetui.logfmt import printable_lines

HOSTILE = "boot\x1b]0;owned\x07.efi\r\x9b2J"


def test_each_line_is_made_printable_and_the_lines_stay_lines() -> None:
    out = printable_lines(f"first {HOSTILE}\nsecond\tline\u2028third")
    assert out.split("\n") == ["first boot?]0;owned?.efi??2J", "second line?third"]
    assert printable_lines("plain\ntext") == "plain\ntext"


def test_watch_prints_no_control_character_from_the_wire() -> None:
    stream = io.StringIO()
    Lines(0, stream)(f"tftp 10.0.0.5 {HOSTILE} not found")
    text = stream.getvalue()
    assert "\x1b" not in text and "\x9b" not in text and "\r" not in text and "\x07" not in text
    assert text.endswith(" not found\n")


def test_the_self_test_refuses_an_oack_value_that_is_not_a_number() -> None:
    assert _oack_numbers("pxelinux.0", {b"BlkSize": b"1468", "tsize": "26"}) == {"blksize": 1468, "tsize": 26}
    for bad in ("\xb2", "1" * 5000, "-1", "12a"):
        with pytest.raises(TftpFailed, match="pxelinux.0: the server's OACK gives blksize"):
            _oack_numbers("pxelinux.0", {"blksize": bad})
