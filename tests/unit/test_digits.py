"""ascii_int: the one check every number from the wire goes through (HTTP Content-Length and
?arch=, TFTP options, capture's OACK and HTTP sizes, the doctor's OACK)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pxetui.digits import ascii_int


@pytest.mark.parametrize("text,expected", [
    ("0", 0), ("1468", 1468), ("000012", 12), ("9" * 18, int("9" * 18)),
    ("", None), ("\xb2", None), ("1\xb9", None), ("\u0663", None),  # '²', '¹', Arabic 3
    ("9" * 19, None), ("7" * 5000, None),  # int() refuses over 4,300 digits
    ("-1", None), ("+5", None), (" 5", None), ("5 ", None), ("1_000", None), ("0x10", None),
])
def test_hostile_numbers(text: str, expected: int | None) -> None:
    assert ascii_int(text, 18) == expected


@given(st.text(max_size=40), st.integers(min_value=1, max_value=20))
def test_never_raises_and_only_counts_ascii_digits(text: str, digits: int) -> None:
    value = ascii_int(text, digits)
    if value is None:
        assert not (0 < len(text) <= digits and all("0" <= c <= "9" for c in text))
    else:
        assert value == int(text) and len(text) <= digits
