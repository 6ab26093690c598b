"""Confined file lookup shared by TFTP and HTTP: real files under a root, virtual files
(generated menus, per-MAC configs) and byte ranges inside .iso images.

Resolution order (issue 6: an existing tree is served as it is):
  1. a real file under the root (after confinement checks);
  2. each virtual provider in turn (menus, ISO library).
Confinement: the request is normalised (backslashes to `/` for Windows boot files, leading `/`
dropped, `.` and empty parts removed); `..`, NUL and control characters are refused outright;
the final path must stay inside the root by realpath, so a symlink pointing out is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class FileLookupError(Exception):
    """Base for lookup failures; `reason` is safe to show to the user and to log."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path!r}: {reason}")


class NotFound(FileLookupError):
    pass


class Forbidden(FileLookupError):
    pass


@dataclass(frozen=True)
class Source:
    """Something that can be sent: a file (or a byte range of one), or bytes in memory."""

    name: str  # the normalised request path
    size: int
    mtime: float
    path: str | None = None  # file to open (the real file or the .iso)
    offset: int = 0  # where the content starts inside `path` (ISO extents)
    data: bytes | None = None  # virtual content
    origin: str = "file"  # file | virtual | iso

    def open_fd(self) -> int:
        """An fd positioned at the content start (callers use pread/sendfile with offset)."""
        if self.path is None:
            raise ValueError("virtual source has no file")
        return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self, fd: int | None, pos: int, length: int) -> bytes:
        """`length` bytes at `pos` of the content (short at the end)."""
        if self.data is not None:
            return self.data[pos : pos + length]
        assert fd is not None
        length = max(0, min(length, self.size - pos))
        return os.pread(fd, length, self.offset + pos)


@dataclass(frozen=True)
class Client:
    """Who is asking: lets providers render per-client files (per-MAC menus)."""

    ip: str | None = None
    mac: str | None = None
    arch: int | None = None


class Provider(Protocol):
    """A source of virtual files. Return None when the path is not yours."""

    def lookup(self, path: str, client: Client) -> Source | None: ...


def normalize(request: str) -> str:
    """The request as a relative POSIX path, or Forbidden naming what is wrong."""
    if "\x00" in request:
        raise Forbidden(request, "NUL byte in path")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in request):
        raise Forbidden(request, "control character in path")
    p = request.replace("\\", "/")  # Windows boot files: boot\x64\wdsnbp.com
    parts: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue  # leading '/' (GRUB asks for /grub/grub.cfg), '//' and '.'
        if part == "..":
            raise Forbidden(request, "'..' in path")
        parts.append(part)
    if not parts:
        raise NotFound(request, "empty path")
    return "/".join(parts)


class Resolver:
    def __init__(self, root: str | Path, providers: Sequence[Provider] = (),
                 case_insensitive: bool = False) -> None:
        self.root = os.path.realpath(root)
        self.providers = list(providers)
        self.case_insensitive = case_insensitive

    def resolve(self, request: str, client: Client | None = None) -> Source:
        rel = normalize(request)
        client = client or Client()
        src = self._real(rel)
        if src is not None:
            return src
        for prov in self.providers:
            src = prov.lookup(rel, client)
            if src is not None:
                return src
        raise NotFound(rel, "file not found")

    def _real(self, rel: str) -> Source | None:
        candidate = os.path.join(self.root, rel)
        if not os.path.lexists(candidate) and self.case_insensitive:
            candidate = self._casefold(rel) or candidate
        try:
            real = os.path.realpath(candidate, strict=True)
        except (OSError, RuntimeError):
            return None
        if real != self.root and not real.startswith(self.root + os.sep):
            raise Forbidden(rel, "resolves outside the served root (symlink?)")
        try:
            st = os.stat(real)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        if not os.access(real, os.R_OK):
            raise Forbidden(rel, "not readable")
        return Source(name=rel, size=st.st_size, mtime=st.st_mtime, path=real)

    def _casefold(self, rel: str) -> str | None:
        """Walk the root matching each component case-insensitively (Windows clients)."""
        cur = self.root
        for part in rel.split("/"):
            try:
                names = os.listdir(cur)
            except OSError:
                return None
            if part in names:
                cur = os.path.join(cur, part)
                continue
            low = part.lower()
            match = next((n for n in names if n.lower() == low), None)
            if match is None:
                return None
            cur = os.path.join(cur, match)
        return cur


def virtual(name: str, data: bytes, mtime: float = 0.0) -> Source:
    return Source(name=name, size=len(data), mtime=mtime, data=data, origin="virtual")
