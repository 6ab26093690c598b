"""Write captured frames to a pcap file, and read pcap/pcapng files (ours or tcpdump's).

Classic pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html) is written and read here
directly; pcapng (tcpdump -w on newer builds, Wireshark) is read through scapy. The engine's
recording rotates (RotatingPcapWriter): bounded in size and count, and a restart starts a new
file rather than truncating the last one (docs/SECURITY.md, "Bounded disk and memory").
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pxetui.capture.packets import LINKTYPE_ETHERNET
from pxetui.logfile import numbered, shift

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
PCAPNG = b"\x0a\x0d\x0d\x0a"
HEADER_BYTES, RECORD_BYTES = 24, 16  # the file header, and each frame's record header


class PcapError(ValueError):
    """The file is not a readable capture."""


class PcapWriter:
    """Appends frames to a classic pcap file; flushes every `flush_every` frames."""

    def __init__(self, path: str | Path, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 65535,
                 flush_every: int = 16, exclusive: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.snaplen = snaplen
        self.flush_every = flush_every
        self._n = 0
        # exclusive: never open a file that exists (nor a link planted in its place)
        self._fh: BinaryIO = open(self.path, "xb" if exclusive else "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(struct.pack("<IHHiIII", MAGIC_US, 2, 4, 0, 0, snaplen, linktype))
        self._fh.flush()

    def write(self, data: bytes, ts: float) -> None:
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        cap = data[: self.snaplen]
        self._fh.write(struct.pack("<IIII", sec, usec, len(cap), len(data)))
        self._fh.write(cap)
        self._n += 1
        if self._n % self.flush_every == 0:
            self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pcap_name(path: Path, n: int) -> Path:
    """boot.pcap, boot.1.pcap, boot.2.pcap ...: older recordings keep the extension."""
    return numbered(path, n, path.suffix)


class RotatingPcapWriter:
    """A recording of at most `files` files of at most `max_bytes` each: `path` is the newest,
    NAME.1.pcap the one before, and so on; the oldest is deleted. A new file starts when the
    next frame would pass `max_bytes`, and at every start (the supervisor restarts the capture
    service): an earlier recording is never truncated. `rotated` counts the rotations."""

    def __init__(self, path: str | Path, max_bytes: int, files: int, linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = 65535, flush_every: int = 16) -> None:
        self.path = Path(path)
        self.max_bytes, self.files = max_bytes, files
        self.linktype, self.snaplen, self.flush_every = linktype, snaplen, flush_every
        self.rotated = 0
        self._w = self._new()

    def _new(self) -> PcapWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shift(self.path, self.files, self.path.suffix)
        self.size = HEADER_BYTES
        return PcapWriter(self.path, self.linktype, self.snaplen, self.flush_every, exclusive=True)

    def write(self, data: bytes, ts: float) -> bool:
        """Record one frame; True when this frame started a new file."""
        rec = RECORD_BYTES + min(len(data), self.snaplen)
        rotate = self.size > HEADER_BYTES and self.size + rec > self.max_bytes
        if rotate:
            self._w.close()
            self._w = self._new()
            self.rotated += 1
        self._w.write(data, ts)
        self.size += rec
        return rotate

    def close(self) -> None:
        self._w.close()

    def __enter__(self) -> RotatingPcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_pcap(path: str | Path) -> tuple[int, Iterator[tuple[float, bytes]]]:
    """(linktype, iterator of (timestamp, frame)). Raises PcapError naming what is wrong."""
    p = Path(path)
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed by the iterator
    except OSError as exc:
        raise PcapError(f"{p}: cannot open: {exc.strerror}") from None
    head = fh.read(24)
    if head[:4] == PCAPNG:
        fh.close()
        return _read_pcapng(p)
    if len(head) < 24:
        fh.close()
        raise PcapError(f"{p}: too short to be a pcap file")
    for endian in ("<", ">"):
        magic = struct.unpack(endian + "I", head[:4])[0]
        if magic in (MAGIC_US, MAGIC_NS):
            break
    else:
        fh.close()
        raise PcapError(f"{p}: not a pcap or pcapng file (magic {head[:4].hex()})")
    linktype = struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF
    div = 1e9 if magic == MAGIC_NS else 1e6

    def frames() -> Iterator[tuple[float, bytes]]:
        with fh:
            while True:
                rec = fh.read(16)
                if len(rec) < 16:
                    return
                sec, frac, caplen, _ = struct.unpack(endian + "IIII", rec)
                data = fh.read(caplen)
                if len(data) < caplen:
                    return  # a capture cut short (tcpdump killed): keep what is whole
                yield sec + frac / div, data

    return linktype, frames()


def _read_pcapng(p: Path) -> tuple[int, Iterator[tuple[float, bytes]]]:
    from scapy.utils import RawPcapNgReader

    try:
        reader = RawPcapNgReader(str(p))
    except Exception as exc:  # scapy raises plain Exception subclasses for bad files
        raise PcapError(f"{p}: not a readable pcapng file: {exc}") from None
    # pcapng names the link type per interface: take the first packet's (one capture, one wire).
    it = iter(reader)
    try:
        head: tuple[bytes, Any] | None = next(it)
    except StopIteration:
        head = None
    except Exception as exc:  # scapy raises plain Exception subclasses for bad blocks
        reader.close()
        raise PcapError(f"{p}: not a readable pcapng file: {exc}") from None
    linktype = int(getattr(head[1], "linktype", LINKTYPE_ETHERNET)) if head else LINKTYPE_ETHERNET

    def ts_of(meta: Any) -> float:
        res = getattr(meta, "tsresol", 1_000_000) or 1_000_000
        return float(((meta.tshigh << 32) | meta.tslow) / res)

    def frames() -> Iterator[tuple[float, bytes]]:
        with reader:
            if head is not None:
                yield ts_of(head[1]), head[0]
            for data, meta in it:
                yield ts_of(meta), data

    return linktype, frames()
