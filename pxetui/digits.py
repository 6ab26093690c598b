"""A number written in a packet, a header or a query: ASCII digits only, and not too many.

`str.isdigit()` also takes '²' and other Unicode digits, which `int()` refuses, and `int()`
refuses strings of more than 4,300 digits: either, unchecked, raised out of a parser on input
anyone on the segment can send (docs/SECURITY.md, "Numbers in requests")."""

from __future__ import annotations


def ascii_int(text: str, max_digits: int) -> int | None:
    """`text` as a number when it is 1..max_digits ASCII digits (0-9); else None."""
    return int(text) if 0 < len(text) <= max_digits and text.isascii() and text.isdigit() else None
