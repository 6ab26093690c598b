"""HTTP semantics for one representation (RFC 9110): validators, conditional requests,
single byte ranges and content types. Pure functions; no I/O.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from email.utils import formatdate, parsedate_to_datetime

from pxetui.files import Source

# ASCII digits only (RFC 9110 14.1.1: 1*DIGIT): `\d` would take any Unicode decimal digit.
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# Past the end of anything we serve. A position of more digits saturates to it rather than go
# to int(), which raises past 4,300 digits (that escaped as an internal error, no response).
_BEYOND = 10**18


def _position(digits: str) -> int:
    """A range's byte position: at most _BEYOND, however many digits were sent."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _BEYOND

# Built-in table only (not /etc/mime.types) so answers do not depend on the host, plus the
# boot files the table does not know. Kernels and initrds have no suffix: octet-stream.
# UEFI HTTP boot (EDK2 HttpBootCheckImageType) goes by Content-Type first: application/efi is
# an EFI image; an unknown type falls back to the URL's .efi/.iso/.img extension.
_MIME = mimetypes.MimeTypes(filenames=())
_EXTRA = {
    ".ipxe": "text/plain; charset=utf-8",
    ".cfg": "text/plain; charset=utf-8",
    ".conf": "text/plain; charset=utf-8",
    ".ks": "text/plain; charset=utf-8",
    ".seed": "text/plain; charset=utf-8",
    ".iso": "application/x-iso9660-image",
    ".efi": "application/efi",
    ".squashfs": "application/octet-stream",
    ".img": "application/octet-stream",
    ".wim": "application/octet-stream",
}
_TEXT_NAMES = {"user-data", "meta-data", "vendor-data", "network-config", "default"}


class Unsatisfiable(Exception):
    """A syntactically valid range that starts past the end: answer 416."""


def content_type(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    if base in _TEXT_NAMES:
        return "text/plain; charset=utf-8"
    dot = base.rfind(".")
    ext = base[dot:].lower() if dot > 0 else ""
    if ext in _EXTRA:
        return _EXTRA[ext]
    guessed, _ = _MIME.guess_type(base, strict=False)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def parse_http_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def etag(src: Source) -> str:
    """A strong validator. Files: size, mtime (µs) and offset in the .iso (so two files of one
    image differ); in-memory content: a hash of the bytes."""
    if src.data is not None:
        return '"v' + hashlib.blake2b(src.data, digest_size=8).hexdigest() + '"'
    return f'"{src.size:x}-{int(src.mtime * 1_000_000):x}-{src.offset:x}"'


def last_modified(src: Source) -> str | None:
    return http_date(src.mtime) if src.mtime > 0 else None


def precondition_failed(headers: dict[str, str], tag: str, mtime: float) -> bool:
    """RFC 9110 13.2.2 steps 1-2: If-Match (strong comparison), else If-Unmodified-Since."""
    im = headers.get("if-match")
    if im is not None:
        return im.strip() != "*" and all(t.strip() != tag for t in im.split(","))
    ius = headers.get("if-unmodified-since")
    if ius is not None and mtime > 0:
        when = parse_http_date(ius)
        return when is not None and int(mtime) > when
    return False


def not_modified(headers: dict[str, str], tag: str, mtime: float) -> bool:
    """RFC 9110 13.2.2: If-None-Match (weak comparison) wins over If-Modified-Since."""
    inm = headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        ours = tag.removeprefix("W/")
        return any(t.strip().removeprefix("W/") == ours for t in inm.split(","))
    ims = headers.get("if-modified-since")
    if ims is not None and mtime > 0:
        when = parse_http_date(ims)
        return when is not None and int(mtime) <= when
    return False


def if_range_allows(value: str | None, tag: str, modified: str | None) -> bool:
    """RFC 9110 13.1.5: honour Range only if the validator still matches (strong comparison)."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return value == tag
    return modified is not None and value == modified


def byte_range(value: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one satisfiable range; None to ignore the header and send
    everything (absent, not bytes, several ranges, or malformed: RFC 9110 14.2 allows it);
    Unsatisfiable for a range that starts at or past the end."""
    if value is None:
        return None
    m = _RANGE.match(value.strip().replace(" ", ""))
    if not m:
        return None
    first_s, last_s = m.groups()
    if first_s == "":
        if last_s == "":
            return None
        suffix = _position(last_s)  # past the size: the whole representation (RFC 9110 14.1.3)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(value)
        return max(0, size - suffix), size - 1
    # A first position of 19+ digits is past the end: 416 (RFC 9110 15.5.17); a last one, the end.
    first = _position(first_s)
    last = _position(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # invalid: ignore (RFC 9110 14.1.1)
    if first >= size:
        raise Unsatisfiable(value)
    return first, min(last, size - 1)
