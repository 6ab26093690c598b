"""Read and write cpio "newc" archives, the format of Linux initramfs images.

Only what the lab needs: list/extract members of an existing initrd (the Debian installer's,
for kernel modules that match its kernel) and write a new one. The newc layout: a 110-byte
ASCII header (magic 070701, 13 hex fields), the NUL-terminated name, padding to 4 bytes, the
data, padding to 4 bytes; the archive ends with a member named TRAILER!!!.
"""

from __future__ import annotations

import gzip
import io
import lzma
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TRAILER = "TRAILER!!!"
MAGICS = (b"070701", b"070702")


class CpioError(ValueError):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    mode: int
    data: bytes = b""

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def decompress(raw: bytes) -> bytes:
    """An initrd may be gzip, xz or plain; concatenated archives are handled by iter_members."""
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return raw


def iter_members(data: bytes) -> Iterator[Member]:
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # padding between concatenated archives
            pos += 1
            continue
        header = data[pos : pos + 110]
        if header[:6] not in MAGICS:
            raise CpioError(f"not a newc cpio member at offset {pos}")
        mode = int(header[14:22], 16)
        size = int(header[54:62], 16)
        namesize = int(header[94:102], 16)
        name = data[pos + 110 : pos + 110 + namesize - 1].decode("utf-8", "replace")
        start = _pad4(pos + 110 + namesize)
        pos = _pad4(start + size)
        if name == TRAILER:
            continue
        yield Member(name=name, mode=mode, data=data[start : start + size])


def read(path: Path) -> Iterator[Member]:
    return iter_members(decompress(path.read_bytes()))


class Writer:
    """Builds a newc archive in memory; `finish()` returns it gzip-compressed."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1
        self.dirs: set[str] = set()

    def _member(self, name: str, mode: int, data: bytes = b"") -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        self.ino += 1
        header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
        self.buf.write(header + name.encode() + b"\0")
        self.buf.write(b"\0" * (_pad4(self.buf.tell()) - self.buf.tell()))
        self.buf.write(data)
        self.buf.write(b"\0" * (_pad4(self.buf.tell()) - self.buf.tell()))

    def mkdir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._member(d, stat.S_IFDIR | 0o755)

    def _entry(self, name: str, mode: int, data: bytes) -> None:
        """A non-directory member, after its parent directories."""
        name = name.strip("/")
        if "/" in name:
            self.mkdir(name.rsplit("/", 1)[0])
        self._member(name, mode, data)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._member(TRAILER, 0)
        # level 6: the initrd is ~1 MB; max compression saves little and costs time
        return gzip.compress(self.buf.getvalue(), compresslevel=6, mtime=0)
