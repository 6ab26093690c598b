"""Syslog messages: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`) and the BSD
format RFC 3164 describes (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`).

`parse` is total: any bytes give a `SyslogMessage` or raise `SyslogError` (a ValueError),
never anything else. What senders really send is looser than either RFC: busybox syslogd, the
Debian installer's (docs/CLIENT-LOGS.md), forwards `<PRI>Mmm dd hh:mm:ss TAG: MSG` without a
host name, so the host is only taken when the word after the time stamp is not the tag.
Control characters become `?`: the text ends up on a terminal (a UI pane), and an escape
sequence from the network must not drive it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PRI = 191  # facility 23 (local7) * 8 + severity 7 (RFC 5424 6.2.1)
DEFAULT_PRI = 13  # user.notice: what a relay assumes for a message without PRI (RFC 3164 4.3.3)
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
              "local3", "local4", "local5", "local6", "local7")
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

_PRI = re.compile(rb"<(0|[1-9][0-9]{0,2})>")
_BSD_TIME = re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-3][0-9] "
                       r"[0-2][0-9]:[0-5][0-9]:[0-6][0-9] ")
# TAG is at most 32 alphanumerics in RFC 3164 4.1.3; real tags have '-', '.', '/', '_'.
_TAG = re.compile(r"([A-Za-z0-9_./-]{1,64})(\[[^\]\s]{0,32}\])?:( |$)")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_BOM = "\ufeff"


class SyslogError(ValueError):
    """Bytes that are not a syslog message; the text says what is wrong."""


@dataclass(frozen=True)
class SyslogMessage:
    facility: int
    severity: int
    timestamp: str  # as sent ("" when none): senders' clocks are not ours to trust
    hostname: str
    app: str  # RFC 5424 APP-NAME, RFC 3164 TAG without [PID]
    procid: str
    msgid: str
    message: str
    format: str  # rfc5424 | rfc3164


def clean(text: str) -> str:
    """Printable text: control characters (tabs aside) as `?`, no trailing newline or NUL."""
    return _CONTROL.sub("?", text.rstrip("\r\n\x00"))


def parse(data: bytes) -> SyslogMessage:
    """One syslog datagram (or one framed TCP message)."""
    if not data.strip(b" \r\n\x00"):
        raise SyslogError("empty message")
    m = _PRI.match(data)
    if m is None:
        if data.startswith(b"<"):
            raise SyslogError(f"bad PRI in {data[:8]!r}: expected <0>..<191>")
        pri, rest = DEFAULT_PRI, data
    else:
        pri, rest = int(m.group(1)), data[m.end():]
        if pri > MAX_PRI:
            raise SyslogError(f"PRI {pri} is above {MAX_PRI}")
    if rest.startswith(b"1 "):
        return _rfc5424(pri, rest[2:])
    return _rfc3164(pri, rest.decode("utf-8", "replace"))


def _nil(field: str) -> str:
    return "" if field == "-" else clean(field)


def _rfc5424(pri: int, rest: bytes) -> SyslogMessage:
    parts = rest.split(b" ", 5)
    if len(parts) < 6:
        raise SyslogError("RFC 5424 header has fewer than TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA")
    stamp, host, app, procid, msgid = (p.decode("utf-8", "replace") for p in parts[:5])
    sd_and_msg = parts[5]
    end = _sd_end(sd_and_msg)
    msg = sd_and_msg[end:]
    if msg.startswith(b" "):
        msg = msg[1:]
    elif msg:
        raise SyslogError("RFC 5424: no space between STRUCTURED-DATA and MSG")
    text = msg.decode("utf-8", "replace")
    if text.startswith(_BOM):  # RFC 5424 6.4: UTF-8 MSG starts with a BOM
        text = text[1:]
    return SyslogMessage(facility=pri >> 3, severity=pri & 7, timestamp=_nil(stamp), hostname=_nil(host),
                         app=_nil(app), procid=_nil(procid), msgid=_nil(msgid), message=clean(text),
                         format="rfc5424")


def _sd_end(data: bytes) -> int:
    """Where STRUCTURED-DATA ends: `-`, or one or more `[...]` whose values escape `"`, `\\`
    and `]` with a backslash (RFC 5424 6.3.3)."""
    if data.startswith(b"-"):
        return 1
    i, n = 0, len(data)
    if not data.startswith(b"["):
        raise SyslogError("RFC 5424: STRUCTURED-DATA is neither '-' nor '[...]'")
    while i < n and data[i:i + 1] == b"[":
        i += 1
        quoted = False
        while True:
            if i >= n:
                raise SyslogError("RFC 5424: unterminated STRUCTURED-DATA element")
            c = data[i:i + 1]
            if quoted and c == b"\\":
                i += 2
                continue
            if c == b'"':
                quoted = not quoted
            elif c == b"]" and not quoted:
                i += 1
                break
            i += 1
    return i


def _rfc3164(pri: int, text: str) -> SyslogMessage:
    stamp = ""
    m = _BSD_TIME.match(text)
    if m is not None:
        stamp, text = m.group(0).strip(), text[m.end():]
    host = ""
    tag = _TAG.match(text)
    if tag is None and m is not None:
        # `HOST TAG: MSG`: the host is one word, the tag follows it.
        word, sep, after = text.partition(" ")
        tag_after = _TAG.match(after) if sep else None
        if tag_after is not None and word:
            host, text, tag = word, after, tag_after
    app = procid = ""
    if tag is not None:
        app, procid = tag.group(1), (tag.group(2) or "")[1:-1]
        text = text[tag.end():]
    return SyslogMessage(facility=pri >> 3, severity=pri & 7, timestamp=stamp, hostname=clean(host),
                         app=clean(app), procid=clean(procid), msgid="", message=clean(text),
                         format="rfc3164")
