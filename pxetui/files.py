"""Confined file lookup shared by TFTP and HTTP: real files under a root, virtual files
(generated menus, per-MAC configs) and byte ranges inside .iso images.

Resolution order (issue 6: an existing tree is served as it is):
  1. a real file under the root (after confinement checks);
  2. each virtual provider in turn (menus, ISO library).
Confinement: the request is normalised (backslashes to `/` for Windows boot files, leading `/`
dropped, `.` and empty parts removed); `..`, NUL and control characters are refused outright.
The file is then opened once beneath the root's directory fd without following any symlink
(pxetui.safeopen; docs/SECURITY.md, "Files cannot be swapped under us"), and the Source carries
that open fd: what was looked up is what is served, never a path opened a second time.

Ownership: a Source returned by `Resolver.resolve` owns its fd. The server either takes it
(`take_fd()`: the transfer closes it when it ends) or calls `close()` when it answers without
the file (HEAD, 304, a refused option).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pxetui.events import Event
from pxetui.safeopen import Opened, Refused, Root


class FileLookupError(Exception):
    """Base for lookup failures; `reason` is safe to show to the user and to log."""

    def __init__(self, path: str, reason: str, events: Sequence[Event] = ()) -> None:
        self.path = path
        self.reason = reason
        # Events the server should emit with its refusal (a changed ISO's Alert, raised once by
        # the provider that noticed): providers have no emit of their own.
        self.events = tuple(events)
        super().__init__(f"{path!r}: {reason}")


class NotFound(FileLookupError):
    pass


class Forbidden(FileLookupError):
    pass


@dataclass(eq=False)
class Source:
    """Something that can be sent: a file (or a byte range of one), or bytes in memory."""

    name: str  # the normalised request path
    size: int
    mtime: float
    path: str | None = None  # the file (the real file or the .iso), for display
    offset: int = 0  # where the content starts inside the file (ISO extents)
    data: bytes | None = None  # virtual content
    origin: str = "file"  # file | virtual | iso
    fd: int | None = None  # the open file; `size`/`mtime` are its fstat (or the ISO index's)

    def take_fd(self) -> int:
        """The open fd (callers use pread/sendfile with `offset`), handed over: the caller
        closes it."""
        fd = self.fd
        if fd is None:
            raise ValueError(f"{self.name}: no open file (virtual, or already taken)")
        self.fd = None
        return fd

    def close(self) -> None:
        """Close the fd unless it was taken; safe to call more than once."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a safety net only: every server closes explicitly
        if self.fd is not None:
            self.close()

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
        self.root = os.path.realpath(root)  # resolved once: the admin may name a symlink
        self.providers = list(providers)
        self.case_insensitive = case_insensitive
        self._dir: Root | None = None
        self._open_root()

    def _open_root(self) -> Root | None:
        """The root's directory fd, opened once; a root missing at start (HTTP serving only
        menus and ISOs) is tried again on later requests."""
        if self._dir is None:
            try:
                self._dir = Root(self.root, self.case_insensitive)
            except OSError:
                return None
            self.root = self._dir.path
        return self._dir

    def close(self) -> None:
        if self._dir is not None:
            self._dir.close()

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
        root = self._open_root()
        if root is None:
            return None
        try:
            opened: Opened = root.open(rel)
        except Refused as exc:
            raise Forbidden(rel, exc.reason) from None
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
                return None  # not a real file: the virtual providers may have it
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise Forbidden(rel, "not readable") from None
            raise Forbidden(rel, f"cannot open: {exc.strerror}") from None
        st = opened.st
        if not stat.S_ISREG(st.st_mode):  # a directory, a FIFO: not a file to send
            os.close(opened.fd)
            return None
        return Source(name=rel, size=st.st_size, mtime=st.st_mtime,
                      path=os.path.join(root.path, opened.rel), fd=opened.fd)


def virtual(name: str, data: bytes, mtime: float = 0.0) -> Source:
    return Source(name=name, size=len(data), mtime=mtime, data=data, origin="virtual")
