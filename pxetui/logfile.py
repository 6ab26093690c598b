"""Files that stay bounded (docs/SECURITY.md, "Bounded disk and memory"): the engine's log,
rotated by size, and the numbered-file shift it shares with the capture recording.

A rotation renames, it never truncates: NAME is the newest, NAME.1 the one before, ... and
the oldest beyond the count is deleted. The engine runs for months on a laptop left on a
customer's LAN; nothing it writes may grow without bound.
"""

from __future__ import annotations

import atexit
import errno
import io
import os
import sys
import threading
from pathlib import Path

from pxetui.config import ConfigError, LogConfig
from pxetui.safeopen import Refused, open_own_file

# Created private (the log names every client's MAC and address) and never through a link
# someone planted where the file goes.
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def open_emptied(path: Path) -> int:
    """`path` opened for writing from its start, private. Root writes it in the state directory,
    which belongs to the service user, so a symlink, a hard link or a FIFO left there is
    refused before anything is truncated (docs/SECURITY.md, "Local users")."""
    try:
        fd, _ = open_own_file(path, os.O_WRONLY, 0o600)
    except Refused as exc:
        raise OSError(errno.EPERM, f"{path} {exc.reason}: left alone") from None
    except OSError as exc:
        raise OSError(exc.errno, f"{path}: {exc.strerror}") from None
    try:
        os.ftruncate(fd, 0)
        os.fchmod(fd, 0o600)  # one made before: private too
    except BaseException:
        os.close(fd)
        raise
    return fd


def numbered(path: Path, n: int, suffix: str = "") -> Path:
    """`path` for 0, else NAME.n with `suffix` kept last: engine.log.1; boot.1.pcap."""
    if n == 0:
        return path
    base = path.name[: -len(suffix)] if suffix and path.name.endswith(suffix) else path.name
    return path.with_name(f"{base}.{n}{suffix}")


def _number(path: Path, entry: str, suffix: str) -> int | None:
    """n when `entry` is numbered(path, n, suffix), else None."""
    if entry == path.name:
        return 0
    head = numbered(path, 1, suffix).name
    prefix, tail = head[: head.rindex(".1")] + ".", suffix
    middle = entry[len(prefix): len(entry) - len(tail)] if entry.startswith(prefix) and entry.endswith(tail) else ""
    return int(middle) if middle.isdigit() else None


def shift(path: Path, keep: int, suffix: str = "") -> None:
    """Make room for a new `path`: rename each file one number up (`path` to number 1), so at
    most `keep` files (`path` included) remain once a new `path` is made. The oldest, and any
    numbered past `keep` (left from a larger count), are deleted."""
    found: list[int] = []
    with os.scandir(path.parent) as entries:
        for e in entries:
            n = _number(path, e.name, suffix)
            if n is not None:
                found.append(n)
    for n in sorted(found, reverse=True):
        if n >= keep - 1:
            numbered(path, n, suffix).unlink(missing_ok=True)
    for k in range(keep - 2, -1, -1):
        src = numbered(path, k, suffix)
        if src.exists() or src.is_symlink():
            os.replace(src, numbered(path, k + 1, suffix))  # a link is moved, never followed


def existing(path: Path, keep: int, suffix: str = "") -> list[Path]:
    """The files of a rotation that exist, newest first."""
    return [p for p in (numbered(path, n, suffix) for n in range(keep)) if p.exists()]


class RotatingLog(io.TextIOBase):
    """A text log that rotates by size: `path` grows to `max_bytes`, then becomes `path`.1
    (the older ones move up, at most `backups` kept) and a new `path` starts. Usable wherever
    a text stream is (print, sys.stderr, logging)."""

    def __init__(self, path: str | Path, max_bytes: int, backups: int) -> None:
        super().__init__()
        self.path = Path(path)
        self.max_bytes, self.backups = max_bytes, backups
        self.rotations = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = -1
        self._buf: list[bytes] = []
        self._line_start = True  # rotate between lines only (print writes a line, then its end)
        self._open()

    def _open(self) -> None:
        try:
            self._fd = os.open(self.path, _OPEN_FLAGS, 0o600)
        except OSError as exc:
            raise OSError(exc.errno, f"log file {self.path}: {exc.strerror}") from None
        self.size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        self._flush_locked()
        os.close(self._fd)
        shift(self.path, self.backups + 1)
        self._open()
        self.rotations += 1
        where = f"in {numbered(self.path, 1).name}" if self.backups else "dropped (log.backups = 0)"
        self._write_locked(f"(log rotated at log.max_bytes = {self.max_bytes}: the earlier lines are {where})\n"
                           .encode())

    def _write_locked(self, data: bytes) -> None:
        self._buf.append(data)
        self.size += len(data)

    def _flush_locked(self) -> None:
        if self._buf:
            data, self._buf = b"".join(self._buf), []
            while data:
                data = data[os.write(self._fd, data):]

    # -- the text stream ---------------------------------------------------------------------
    def write(self, text: str) -> int:
        if self.closed:
            raise ValueError("write to a closed log")
        data = text.encode("utf-8", "replace")
        with self._lock:
            if self._line_start and self.size and self.size + len(data) > self.max_bytes:
                self._rotate()
            self._write_locked(data)
            if text:
                self._line_start = text.endswith("\n")
            if text.endswith("\n") and len(self._buf) > 64:
                self._flush_locked()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._fd >= 0:
                self._flush_locked()

    def close(self) -> None:
        if self.closed:
            return
        with self._lock:
            if self._fd >= 0:
                self._flush_locked()
                os.close(self._fd)
                self._fd = -1
        super().close()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


def tail(paths: list[Path], lines: int) -> list[str]:
    """The last `lines` lines of what these files hold together (oldest file first)."""
    out: list[str] = []
    for p in paths:
        try:
            out += p.read_text(errors="replace").splitlines()
        except OSError:
            continue
    return out[-lines:]


def log_to_file(cfg: LogConfig) -> RotatingLog | None:
    """With log.file set (`pxetui serve --log-file`), the engine's stderr goes to a size-rotated
    file: its log lines, and a warning or traceback too, so nothing it writes grows unbounded.
    Without it, stderr stays as it is (under systemd, journald rotates)."""
    if not cfg.file:
        return None
    try:
        log = RotatingLog(cfg.file, cfg.max_bytes, cfg.backups)
    except OSError as exc:
        raise ConfigError([f"log.file: {exc.strerror or exc}"]) from None
    sys.stderr = log
    atexit.register(_restore, log)
    return log


def _restore(log: RotatingLog) -> None:
    if sys.stderr is log:
        sys.stderr = sys.__stderr__
    log.close()
