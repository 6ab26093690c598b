"""Option negotiation: RFC 2347 (OACK), 2348 (blksize), 2349 (timeout, tsize), 7440 (windowsize).

The OACK carries only options the client asked for, in the order it asked (some PXE ROMs are
strict about both). Values outside what the link or the client's receive buffer can take are
lowered, which RFC 2348/7440 allow the server to do; a value no server could honour is refused
with ERROR 8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pxetui.config import Config
from pxetui.digits import ascii_int

BLKSIZE_MIN, BLKSIZE_MAX = 8, 65464  # RFC 2348
WINDOWSIZE_MAX = 64  # our cap; RFC 7440 allows 65535 but nothing gains past a few dozen
HEADERS = 32  # IPv4 20 + UDP 8 + TFTP 4: a block of MTU - 32 bytes needs no IP fragmentation
# A window must fit the client's socket receive buffer or its tail is dropped every time.
# atftp keeps the default (net.core.rmem_default, 208 KiB), which the kernel charges per
# datagram as payload plus ~1 KiB of skb overhead; stay well under it.
WINDOW_BYTES = 128 * 1024
SKB_OVERHEAD = 1024


class OptionRefused(Exception):
    """Answer with ERROR 8 (RFC 2347); the message names the option."""


@dataclass(frozen=True)
class Limits:
    blksize_max: int = BLKSIZE_MAX
    windowsize_max: int = WINDOWSIZE_MAX
    window_bytes: int = WINDOW_BYTES

    @classmethod
    def from_config(cls, cfg: Config) -> Limits:
        return cls(blksize_max=max(BLKSIZE_MIN, min(cfg.tftp.blksize_max, cfg.mtu - HEADERS, BLKSIZE_MAX)),
                   windowsize_max=max(1, min(cfg.tftp.windowsize_max, WINDOWSIZE_MAX)))


@dataclass(frozen=True)
class Negotiated:
    blksize: int = 512
    windowsize: int = 1
    timeout: int | None = None  # seconds, as agreed with the client
    tsize: int | None = None
    oack: dict[str, str | int] = field(default_factory=dict)  # empty: no OACK, plain RFC 1350


def _int(value: str) -> int | None:
    # packets.parse() decodes values as ASCII, but negotiate() is not to rely on its caller for that.
    return ascii_int(value.strip(), 12)


def negotiate(requested: dict[str, str], size: int | None, limits: Limits,
              upload: bool = False) -> Negotiated:
    """Agree on options for one transfer. `size` is the file size for a read (tsize reply)."""
    blksize, windowsize, timeout, tsize = 512, 1, None, None
    oack: dict[str, str | int] = {}
    for name, raw in requested.items():
        value = _int(raw)
        if value is None:
            continue  # unparsable: ignore the option, as RFC 2347 allows
        if name == "blksize":
            if value < BLKSIZE_MIN:
                raise OptionRefused(f"blksize {value} is below {BLKSIZE_MIN} (RFC 2348)")
            blksize = min(value, limits.blksize_max)
            oack[name] = blksize
        elif name == "windowsize" and not upload:
            if value < 1:
                raise OptionRefused("windowsize 0 is not allowed (RFC 7440)")
            windowsize = min(value, limits.windowsize_max)
            oack[name] = windowsize
        elif name == "timeout":
            if 1 <= value <= 255:  # RFC 2349; outside it the option is ignored
                timeout = value
                oack[name] = value
        elif name == "tsize":
            if upload:
                tsize = value  # the client tells us the size; echo it
            elif size is not None:
                tsize = size
            else:
                continue
            oack[name] = tsize
    if "windowsize" in oack:
        fit = max(1, limits.window_bytes // (blksize + SKB_OVERHEAD))
        windowsize = min(windowsize, fit)
        oack["windowsize"] = windowsize
    return Negotiated(blksize, windowsize, timeout, tsize, oack)
