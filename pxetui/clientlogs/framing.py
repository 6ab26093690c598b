"""Syslog over TCP (RFC 6587): octet counting (`LEN SP MSG`) or, what rsyslog's forwarding
sends by default (Anaconda's inst.syslog, docs/CLIENT-LOGS.md), one message per LF-ended line.
The framing is chosen per message by its first byte, as RFC 6587 3.4.2 suggests receivers do."""

from __future__ import annotations


class FrameError(ValueError):
    """A stream that is not syslog framing; the connection is closed."""


class Framer:
    """Bytes of one connection in, whole messages out; no message held over `max_bytes` (a longer
    LF-framed line is cut there and the rest of it skipped)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.skipping = False  # inside the rest of a line already cut

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        while self.buf:
            if self.skipping:
                nl = self.buf.find(b"\n")
                if nl < 0:
                    self.buf.clear()
                    break
                del self.buf[:nl + 1]
                self.skipping = False
                continue
            if self.buf[:1].isdigit():
                sp = self.buf.find(b" ", 0, 12)
                if sp < 0:
                    if len(self.buf) >= 12:
                        raise FrameError(f"octet count {bytes(self.buf[:12])!r} has no space after it")
                    break
                if not self.buf[:sp].isdigit():
                    raise FrameError(f"bad octet count {bytes(self.buf[:sp])!r}")
                n = int(self.buf[:sp])
                if n > self.max_bytes:
                    raise FrameError(f"message of {n} bytes is over logs.max_line_bytes ({self.max_bytes})")
                if len(self.buf) < sp + 1 + n:
                    break
                out.append(bytes(self.buf[sp + 1:sp + 1 + n]))
                del self.buf[:sp + 1 + n]
                continue
            nl = self.buf.find(b"\n")
            if nl < 0:
                if len(self.buf) > self.max_bytes:
                    out.append(bytes(self.buf[:self.max_bytes]))
                    self.buf.clear()
                    self.skipping = True
                break
            line = bytes(self.buf[:nl])
            del self.buf[:nl + 1]
            if line.strip(b"\r\x00 "):
                out.append(line[:self.max_bytes])
        return out
