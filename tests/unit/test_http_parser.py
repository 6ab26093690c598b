"""Request heads: the request line, header fields, limits and once-only percent-decoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxetui.http.parser import (
    MAX_HEAD,
    MAX_REQUEST_LINE,
    HttpError,
    body_length,
    head_end,
    parse_head,
    skip_empty_lines,
    split_target,
)


def status_of(head: bytes) -> int:
    with pytest.raises(HttpError) as info:
        end = head_end(head)
        assert end is not None, "head incomplete"
        parse_head(head[:end])
    return info.value.status


def test_parses_a_request_with_query_and_headers():
    head = b"GET /iso/u%20b/casper/vmlinuz?mac=52:54:00:12:34:56&arch=x86_64 HTTP/1.1\r\n" \
           b"Host: 10.0.0.1\r\nUser-Agent: iPXE/1.21.1\r\nRange: bytes=0-9\r\n\r\n"
    end = head_end(head + b"GET / HTTP/1.1\r\n")
    assert end == len(head)
    req = parse_head(head)
    assert (req.method, req.version) == ("GET", (1, 1))
    assert req.path == "/iso/u b/casper/vmlinuz"
    assert req.query == {"mac": "52:54:00:12:34:56", "arch": "x86_64"}
    assert req.header("user-agent") == "iPXE/1.21.1"
    assert req.header("range") == "bytes=0-9"
    assert req.keep_alive


def test_bare_lf_line_ends_and_leading_empty_lines():
    buf = bytearray(b"\r\nGET /a HTTP/1.0\nHost: x\n\n")
    skip_empty_lines(buf)
    end = head_end(buf)
    assert end == len(buf)
    req = parse_head(bytes(buf))
    assert req.path == "/a" and not req.keep_alive


@pytest.mark.parametrize("version, connection, keep", [
    ("1.1", None, True), ("1.1", "close", False), ("1.0", None, False),
    ("1.0", "keep-alive", True), ("1.1", "Keep-Alive, Close", False),
])
def test_keep_alive_rules(version, connection, keep):
    extra = f"Connection: {connection}\r\n" if connection else ""
    req = parse_head(f"GET / HTTP/{version}\r\nHost: h\r\n{extra}\r\n".encode())
    assert req.keep_alive is keep


def test_percent_decoding_happens_exactly_once():
    # %252e must become the literal "%2e", never ".", or a second decode would walk up.
    path, _ = split_target("/%252e%252e/etc")
    assert path == "/%2e%2e/etc"
    path, _ = split_target("/%2e%2e/%2E%2E%2fetc")
    assert path == "/../../etc"  # the Resolver refuses this one


def test_absolute_form_target_uses_its_path():
    assert split_target("http://10.0.0.1:8080/boot.ipxe?mac=x")[0] == "/boot.ipxe"
    assert split_target("http://10.0.0.1")[0] == "/"


def test_ipv6_authority_in_brackets():
    """RFC 3986 3.2.2: an IPv6 literal is bracketed in Host and in an absolute-form target; its
    colons are not a port or a path (docs/IPV6.md "TFTP and HTTP")."""
    assert split_target("http://[fd99::1]:8080/boot.ipxe?mac=x") == ("/boot.ipxe", {"mac": "x"})
    assert split_target("http://[fd99::1]")[0] == "/"
    req = parse_head(b"GET /vmlinuz HTTP/1.1\r\nHost: [fd99::1]:8080\r\n\r\n")
    assert req.path == "/vmlinuz" and req.header("host") == "[fd99::1]:8080"


@pytest.mark.parametrize("head, status", [
    (b"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400),  # malformed escape
    (b"GET /%ff%fe HTTP/1.1\r\nHost: h\r\n\r\n", 400),  # not UTF-8
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host (RFC 9112 3.2)
    (b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400),  # control byte in the target
    (b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    (b"GET / HTTP/x\r\nHost: h\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),  # HTTP/0.9
    (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),  # space before the colon
    (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\x00x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
])
def test_malformed_heads_get_the_right_status(head, status):
    assert status_of(head) == status


def test_over_long_request_line_is_414_before_the_line_ends():
    with pytest.raises(HttpError) as info:
        head_end(b"GET /" + b"a" * (MAX_REQUEST_LINE + 10))
    assert info.value.status == 414


def test_over_large_head_is_431_before_it_ends():
    partial = b"GET / HTTP/1.1\r\n" + b"X-A: " + b"b" * 100 + b"\r\n"
    with pytest.raises(HttpError) as info:
        head_end(partial * (MAX_HEAD // len(partial) + 2))
    assert info.value.status == 431


def test_head_end_in_a_buffer_of_pipelined_heads():
    crlf = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    lf = b"GET /b HTTP/1.0\n\n"
    assert head_end(crlf + lf + crlf * 50) == len(crlf)
    assert head_end(lf + crlf * 50) == len(lf)
    assert head_end(b"GET /c HTTP/1.1\r\nHost: h\r\n\n" + crlf) == len(crlf) - 1  # CRLF then bare LF


def test_head_ending_exactly_at_the_limit_is_accepted():
    line = b"GET / HTTP/1.1\r\nHost: h\r\n"
    pad = b"X-P: " + b"p" * (MAX_HEAD - len(line) - 9) + b"\r\n"
    head = line + pad + b"\r\n"
    assert len(head) == MAX_HEAD
    assert head_end(head + b"GET / HTTP/1.1\r\n" * 10) == MAX_HEAD
    with pytest.raises(HttpError) as info:
        head_end(line + b"X" + pad + b"\r\n")
    assert info.value.status == 431


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b"a", b": "]), max_size=40))
def test_head_end_is_just_past_the_first_empty_line(pieces: list[bytes]):
    buf = b"GET / HTTP/1.1" + b"".join(pieces)
    ends = [i + 4 for i in range(len(buf)) if buf[i:i + 4] == b"\r\n\r\n"]
    ends += [i + 2 for i in range(len(buf)) if buf[i:i + 2] == b"\n\n"]
    assert head_end(buf) == min(ends, default=None)


def test_bodies():
    req = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
    assert body_length(req) == 5
    # '\xb2' is '²' in latin-1: str.isdigit() took it, int() raised ValueError, not HttpError
    for bad, status in ((b"Transfer-Encoding: chunked", 501), (b"Content-Length: -1", 400),
                        (b"Content-Length: \xb2", 400), (b"Content-Length: 1\xb9", 400),
                        (b"Content-Length: " + b"9" * 19, 400), (b"Content-Length: " + b"1" * 5000, 400),
                        (b"Content-Length: 5, 5", 400), (b"Content-Length: +5", 400)):
        req = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n" + bad + b"\r\n\r\n")
        with pytest.raises(HttpError) as info:
            body_length(req)
        assert info.value.status == status


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_http_error(data: bytes):
    """Fuzz: a head is a Request or an HttpError with a 4xx/5xx status; nothing else escapes."""
    buf = bytearray(b"GET /" + data + b"\r\n\r\n")
    try:
        skip_empty_lines(buf)
        end = head_end(buf)
        assert end is not None  # the buffer ends in an empty line: the head is complete
        req = parse_head(bytes(buf[:end]))
        assert req.path.startswith("/") or req.path == ""
    except HttpError as err:
        assert 400 <= err.status < 600 and err.reason


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80))
def test_any_visible_target_splits_or_raises_http_error(target: str):
    try:
        path, query = split_target("/" + target)
    except HttpError as err:
        assert err.status == 400
    else:
        assert isinstance(path, str) and isinstance(query, dict)
