"""HTTP/1.1 request heads (RFC 9112): request line, header fields, their limits, and the
target's path and query, each percent-decoded exactly once.

Nothing here touches a socket: the server feeds bytes in and gets a `Request` or an
`HttpError` carrying the status to answer with (400, 414, 431, 505).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_to_bytes

from pxetui.digits import ascii_int

MAX_REQUEST_LINE = 8192  # longer: 414 URI Too Long (nginx's large_client_header_buffers is 8k)
MAX_HEAD = 32768  # request line + all header fields: longer is 431
MAX_FIELD = 8192  # one header line: longer is 431
MAX_FIELDS = 100  # header count: more is 431
MAX_QUERY_FIELDS = 64

# RFC 9110 5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(rb"^HTTP/(\d)\.(\d)$")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Visible ASCII only in a request target (RFC 9112 3.2); controls, spaces and 8-bit bytes are 400.
_TARGET = re.compile(rb"^[\x21-\x7e]+$")
# Field values: visible ASCII, space, tab and obs-text (RFC 9110 5.5); NUL, CR, LF are not.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Content-Length = 1*DIGIT (RFC 9110 8.6), DIGIT being ASCII 0-9 (RFC 5234 B.1); 18 digits is
# past any body we could be sent.
LENGTH_DIGITS = 18


class HttpError(Exception):
    """A request we answer with `status` and close; `reason` is safe to log and to send."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}")


@dataclass
class Request:
    method: str
    target: str  # as sent (ASCII), for logs
    version: tuple[int, int]
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    path: str = "/"  # percent-decoded once
    query: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def keep_alive(self) -> bool:
        """RFC 9112 9.3: 1.1 persists unless `close`; 1.0 only with `keep-alive`."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens


def skip_empty_lines(buf: bytearray) -> None:
    """RFC 9112 2.2: ignore empty lines before a request line (some clients send a stray CRLF)."""
    i = 0
    while i < len(buf) and buf[i] in (0x0D, 0x0A) and i < 8:
        i += 1
    if i:
        del buf[:i]


def head_end(buf: bytes | bytearray) -> int | None:
    """Index just past the empty line that ends the head, or None if not there yet.

    Raises HttpError as soon as the partial head is over a limit, so a client cannot make us
    buffer more than MAX_HEAD bytes. Bare LF line ends are accepted (RFC 9112 2.2 allows it).
    Both searches stop at MAX_HEAD, and the bare-LF one at the CRLF end: a buffer of pipelined
    requests is not scanned to its end for every head it holds.
    """
    crlf = buf.find(b"\r\n\r\n", 0, MAX_HEAD)
    lf = buf.find(b"\n\n", 0, crlf + 3 if crlf >= 0 else MAX_HEAD)
    end = lf + 2 if lf >= 0 else crlf + 4 if crlf >= 0 else None
    first_nl = buf.find(b"\n", 0, MAX_REQUEST_LINE + 2)
    if first_nl < 0 and len(buf) > MAX_REQUEST_LINE + 1:
        raise HttpError(414, f"request line longer than {MAX_REQUEST_LINE} bytes")
    if (end is None and len(buf) > MAX_HEAD) or (end is not None and end > MAX_HEAD):
        raise HttpError(431, f"request header fields larger than {MAX_HEAD} bytes")
    return end


def parse_head(head: bytes) -> Request:
    """Parse one complete head (request line + fields + empty line)."""
    lines = head.split(b"\n")
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise HttpError(400, "empty request")
    method, target, version = _request_line(lines[0])
    fields = lines[1:]
    if len(fields) > MAX_FIELDS:
        raise HttpError(431, f"more than {MAX_FIELDS} header fields")
    headers: dict[str, str] = {}
    for ln in fields:
        if len(ln) > MAX_FIELD:
            raise HttpError(431, f"a header field is longer than {MAX_FIELD} bytes")
        if ln[:1] in (b" ", b"\t"):
            raise HttpError(400, "obsolete header line folding")  # RFC 9112 5.2
        name, sep, value = ln.partition(b":")
        if not sep or not _TOKEN.match(name):
            # RFC 9112 5.1: no whitespace between field name and colon
            raise HttpError(400, f"malformed header field {ln[:40]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise HttpError(400, f"control character in header {name.decode()!r}")
        key = name.decode("ascii").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    req = Request(method=method, target=target, version=version, headers=headers)
    if version >= (1, 1) and "host" not in headers:
        raise HttpError(400, "HTTP/1.1 request without a Host header")  # RFC 9112 3.2
    req.path, req.query = split_target(target)
    return req


def _request_line(line: bytes) -> tuple[str, str, tuple[int, int]]:
    if len(line) > MAX_REQUEST_LINE:
        raise HttpError(414, f"request line longer than {MAX_REQUEST_LINE} bytes")
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line (expected METHOD TARGET HTTP/x.y)")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise HttpError(400, "malformed method")
    if not _TARGET.match(target):
        raise HttpError(400, "request target holds spaces, control or non-ASCII bytes")
    m = _VERSION.match(version)
    if not m:
        raise HttpError(400, f"malformed HTTP version {version[:16]!r}")
    ver = (int(m.group(1)), int(m.group(2)))
    if ver[0] != 1:
        raise HttpError(505, f"HTTP/{ver[0]}.{ver[1]} is not supported")
    return method.decode("ascii"), target.decode("ascii"), ver


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """Path (decoded once) and query of an origin-form or absolute-form target (RFC 9112 3.2)."""
    if target.startswith("/"):
        raw = target
    elif target[:7].lower() == "http://" or target[:8].lower() == "https://":
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        raw = rest[slash:] if slash >= 0 else "/"
    else:
        raise HttpError(400, "request target is not a path")
    raw_path, _, raw_query = raw.partition("?")
    return percent_decode(raw_path), parse_query(raw_query)


def percent_decode(raw: str) -> str:
    """Decode %XX once. A malformed escape or bytes that are not UTF-8 is a 400: guessing
    would let `%2e%2e` style tricks through a second decode somewhere downstream."""
    if _BAD_PERCENT.search(raw):
        raise HttpError(400, "malformed percent-encoding in path")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "path is not UTF-8 after percent-decoding") from None


def parse_query(raw: str) -> dict[str, str]:
    if not raw:
        return {}
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS,
                          errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "malformed query string") from None
    return dict(pairs)


def body_length(req: Request) -> int:
    """Bytes of request body to skip (GET/HEAD carry none in practice); HttpError if unframeable."""
    if "transfer-encoding" in req.headers:
        # RFC 9112 6.1: a server that does not understand it answers 501; refusing also
        # closes the door on CL/TE request smuggling.
        raise HttpError(501, "Transfer-Encoding in a request is not supported")
    cl = req.headers.get("content-length")
    if cl is None:
        return 0
    length = ascii_int(cl, LENGTH_DIGITS)
    if length is None:  # RFC 9112 6.3: an invalid Content-Length is a 400
        raise HttpError(400, "invalid Content-Length")
    return length
