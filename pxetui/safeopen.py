"""Open files beneath a served root without following symlinks, and open pinned files.

docs/SECURITY.md, "Files cannot be swapped under us": a path is never checked and then opened
again by name. A file is opened once; what is served is what that open returned (`fstat` of
the descriptor), so a local user who swaps a file or a directory for a symlink between a check
and an open gains nothing.

Beneath a root (`Root.open`): `openat2(2)` with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS relative to the root's directory fd, where the kernel has it (Linux 5.6);
otherwise a walk one component at a time, each opened with O_NOFOLLOW relative to the
directory fd opened just before. Every symlink below the root is refused, also one that points
inside it (as a TFTP server that never follows links; copy the file, or point the root at the
real directory). The root itself is resolved once, when it is opened: it is the admin's choice.

Pinned files (`open_pinned`): an imported ISO is opened by its stored real path with
O_NOFOLLOW on the last component and the descriptor's device, inode, size and mtime must equal
the pin taken at import, or nothing is served from it.

Every open adds O_NONBLOCK | O_NOCTTY: a FIFO planted where a file was must not block the
service's event loop (regular files ignore O_NONBLOCK), and a terminal must not become ours.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import weakref
from dataclasses import dataclass

# Flags of the served file; directories on the way are O_PATH (no read permission needed).
FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_DIR_LIST = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW  # listdir needs a readable fd

# linux/openat2.h
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())

_open = os.open  # the walk's one way to open a component (tests interpose a swap here)

SYMLINK_REASON = "a symlink in the path: pxetui follows no symlink below the served root (docs/SECURITY.md)"


class Refused(Exception):
    """The path is there but must not be served; `reason` is safe to show and log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Openat2:
    """openat2(2) through libc's syscall(); `usable` turns False for good on ENOSYS."""

    def __init__(self) -> None:
        self.usable = _SYS_OPENAT2 is not None
        self._syscall = None
        self._how: dict[int, _OpenHow] = {}  # one struct per flag set: built once, not per call
        if self.usable:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fn = libc.syscall
                fn.restype = ctypes.c_long
                fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                               ctypes.POINTER(_OpenHow), ctypes.c_size_t]  # a struct passes by pointer
                self._syscall = fn
            except (OSError, AttributeError):
                self.usable = False

    def __call__(self, dirfd: int, rel: str, flags: int) -> int | None:
        """The fd, None when the kernel has no openat2 (fall back), OSError otherwise."""
        assert self._syscall is not None and _SYS_OPENAT2 is not None
        how = self._how.get(flags)
        if how is None:
            how = self._how[flags] = _OpenHow(flags, 0, _RESOLVE)
        name = os.fsencode(rel)
        for _ in range(3):
            fd = self._syscall(_SYS_OPENAT2, dirfd, name, how, _HOW_SIZE)
            if fd >= 0:
                return int(fd)
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err == errno.EAGAIN:  # a concurrent rename made the kernel unsure: ask again
                continue
            if err == errno.ENOSYS:
                self.usable = False
                return None
            raise OSError(err, os.strerror(err), rel)
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), rel)


_HOW_SIZE = ctypes.sizeof(_OpenHow)
openat2 = _Openat2()


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


@dataclass(frozen=True)
class Opened:
    fd: int  # owned by the caller from here on
    st: os.stat_result  # fstat of `fd`: size and mtime to announce are these
    rel: str  # the names actually opened (differs from the request in a case-insensitive match)


class Root:
    """A served directory opened once; `open(rel)` opens a file beneath it, never via a symlink.

    `rel` must already be normalised (files.normalize: no `..`, no empty parts); `..` is refused
    here too, by the kernel (openat2) or by the walk, never interpreted.
    """

    def __init__(self, path: str | os.PathLike[str], case_insensitive: bool = False,
                 use_openat2: bool | None = None) -> None:
        self.path = os.path.realpath(path)  # the admin's root may itself be a symlink: resolved once
        self.case_insensitive = case_insensitive
        self.use_openat2 = openat2.usable if use_openat2 is None else use_openat2
        self.fd = _open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._finalizer = weakref.finalize(self, _close_quietly, self.fd)

    def close(self) -> None:
        self._finalizer()

    def open(self, rel: str) -> Opened:
        """An open regular file or directory entry beneath the root.

        Raises Refused (a symlink on the way, `..`), FileNotFoundError / NotADirectoryError
        (nothing there), PermissionError (not readable), other OSError as the kernel says.
        The caller checks the file type on `Opened.st` and closes `Opened.fd`.
        """
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts):
            raise Refused("'..' or an empty component in path")
        try:
            return self._exact(rel, parts)
        except FileNotFoundError:
            if not self.case_insensitive:
                raise
        return self._walk(parts, casefold=True)

    def _exact(self, rel: str, parts: list[str]) -> Opened:
        if self.use_openat2 and openat2.usable:
            try:
                fd = openat2(self.fd, rel, FILE_FLAGS)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise Refused(SYMLINK_REASON) from None
                if exc.errno == errno.EXDEV:
                    raise Refused("resolves outside the served root") from None
                raise
            if fd is not None:
                return Opened(fd, _fstat(fd), rel)
            self.use_openat2 = False  # ENOSYS: this kernel has none; walk from now on
        return self._walk(parts, casefold=False)

    def _walk(self, parts: list[str], casefold: bool) -> Opened:
        """One component at a time, each opened relative to the directory fd before it with
        O_NOFOLLOW; with `casefold`, a missing name is matched case-insensitively (Windows
        clients ask for `Boot\\BCD` when the tree has `boot/bcd`)."""
        dirfd = _open(".", _DIR_LIST, dir_fd=self.fd) if casefold else self.fd
        names: list[str] = []
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                flags = (FILE_FLAGS | os.O_NOFOLLOW) if last else (_DIR_LIST if casefold else _DIR_PATH)
                try:
                    fd = _open_component(dirfd, part, flags)
                except FileNotFoundError:
                    if not casefold:
                        raise
                    part = _casefold_match(dirfd, part)  # FileNotFoundError when none matches
                    fd = _open_component(dirfd, part, flags)
                names.append(part)
                if dirfd != self.fd:
                    os.close(dirfd)
                dirfd = fd
            opened = dirfd
            dirfd = self.fd  # owned by the caller now
            return Opened(opened, _fstat(opened), "/".join(names))
        finally:
            if dirfd != self.fd:
                os.close(dirfd)


def _open_component(dirfd: int, name: str, flags: int) -> int:
    try:
        return _open(name, flags, dir_fd=dirfd)
    except OSError as exc:
        # O_NOFOLLOW on a symlink: ELOOP for the file, ENOTDIR with O_DIRECTORY. Tell a symlink
        # (refused) from a plain file where a directory was expected (not found).
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                raise exc from None
            if stat.S_ISLNK(st.st_mode):
                raise Refused(SYMLINK_REASON) from None
        raise


def _casefold_match(dirfd: int, name: str) -> str:
    low = name.lower()
    match = next((n for n in os.listdir(dirfd) if n.lower() == low), None)
    if match is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return match


def _fstat(fd: int) -> os.stat_result:
    try:
        return os.fstat(fd)
    except OSError:
        os.close(fd)
        raise


# -- pinned files (imported ISOs) ---------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    """What a file was when it was verified: a later open must find exactly this."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Pin:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def differs(self, st: os.stat_result) -> str | None:
        """What changed between the pin and `st`, or None when it is the same file."""
        if not stat.S_ISREG(st.st_mode):
            return "is no longer a regular file"
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            return (f"was replaced by another file (device {self.dev}, inode {self.ino} at import; "
                    f"now device {st.st_dev}, inode {st.st_ino})")
        if st.st_size != self.size:
            return f"changed size ({self.size} bytes at import, now {st.st_size})"
        if st.st_mtime_ns != self.mtime_ns:
            return "was modified after import (its modification time changed)"
        return None


class PinMismatch(Exception):
    """The file at the stored path is not the pinned one; `reason` says what changed."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path} {reason}")


def open_nofollow(path: str) -> tuple[int, os.stat_result]:
    """A regular file opened by absolute path with O_NOFOLLOW on its last component (an import
    opens the real path this way, then pins what the fd is). Refused for a symlink or anything
    but a regular file; OSError as the kernel says otherwise."""
    try:
        fd = os.open(path, FILE_FLAGS | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("is a symlink") from None
        raise
    st = _fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Refused("is not a regular file")
    return fd, st


def open_own_file(path: str | os.PathLike[str], flags: int, mode: int) -> tuple[int, os.stat_result]:
    """`path` opened with `flags` (created with `mode` when missing) only as a plain file of its
    own: not through a symlink in its place (O_NOFOLLOW), not a FIFO or a device, not a second
    hard link to another file. For what root opens in the state directory, which the
    unprivileged service user owns (docs/SECURITY.md, "Local users"). Refused says which;
    OSError as the kernel says otherwise. The caller owns the returned fd."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("is a symlink") from None
        if exc.errno == errno.ENXIO:  # O_NONBLOCK write open of a FIFO nobody reads
            raise Refused("is a FIFO") from None
        raise
    st = _fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise Refused("is not a regular file" if not stat.S_ISREG(st.st_mode) else "has another hard link")
    return fd, st


def open_pinned(path: str, pin: Pin) -> tuple[int, os.stat_result]:
    """`path` opened (O_NOFOLLOW on the last component) and checked against `pin` on the fd
    itself; PinMismatch names what changed. The caller owns the returned fd."""
    try:
        fd = os.open(path, FILE_FLAGS | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PinMismatch(path, "was replaced by a symlink") from None
        if exc.errno == errno.ENOENT:
            raise PinMismatch(path, "is gone (deleted or renamed)") from None
        raise PinMismatch(path, f"cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise PinMismatch(path, f"cannot be read: {exc.strerror}") from None
    why = pin.differs(st)
    if why is not None:
        os.close(fd)
        raise PinMismatch(path, why)
    return fd, st
