"""Linux netconsole payloads (the kernel's Documentation/networking/netconsole.rst).

A plain target sends the console text as is, one or more lines per datagram (a long message
may be split over datagrams); an extended target (`netconsole=+...`) sends one message per
datagram as `<level>,<seq>,<timestamp us>,<flags>[,ncfrag=<off>/<len>];<text>` followed by
optional `KEY=value` dictionary lines that start with a space. `parse` is total: any bytes give
lines (possibly none), never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pxetui.clientlogs.syslog import clean

_EXTENDED = re.compile(r"([0-9]{1,3}),([0-9]{1,20}),([0-9]{1,20}),([^;,]*)(,ncfrag=[0-9]+/[0-9]+)?;")


@dataclass(frozen=True)
class ConsoleLine:
    message: str
    facility: int | None = None  # known only from an extended target's level
    severity: int | None = None
    seq: int | None = None


def parse(data: bytes) -> list[ConsoleLine]:
    text = data.decode("utf-8", "replace")
    m = _EXTENDED.match(text)
    if m is not None:
        level = int(m.group(1))
        body = text[m.end():].split("\n")
        # Dictionary lines (` KEY=value`) follow the message: metadata, not console text.
        lines = [body[0], *(b for b in body[1:] if b and not b.startswith(" "))]
        return [ConsoleLine(message=clean(t), facility=level >> 3, severity=level & 7,
                            seq=int(m.group(2))) for t in lines if clean(t).strip()]
    return [ConsoleLine(message=clean(t)) for t in text.split("\n") if clean(t).strip()]
