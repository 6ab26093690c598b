"""Optional uploads (WRQ) into their own directory, never over a served file.

Off unless `tftp.uploads_dir` is set (config refuses a directory inside the TFTP root). The
name is confined like a read (`files.normalize`: no `..`, NUL or control characters, `\\` as
`/`). Every directory on the way is made and opened relative to the one before it with
O_NOFOLLOW (docs/SECURITY.md, "Files cannot be swapped under us"): a symlink planted anywhere in
the uploads tree is refused, and nothing is ever checked by one path and created by another. The
data goes to a hidden temporary file in the opened directory, and only a complete upload is
linked into place; an existing file is never replaced (ERROR 6).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from pxetui.files import Forbidden, normalize

MAX_UPLOAD = 4 << 30  # bytes; TFTP is for crash dumps and configs, not disk images


@dataclass
class Upload:
    name: str  # normalised request path
    dirfd: int  # the directory the upload lands in, opened without following links
    final: str  # its name in that directory
    tmp: str
    fd: int
    closed: bool = field(default=False)

    def write(self, pos: int, data: memoryview) -> None:
        os.pwrite(self.fd, data, pos)

    def commit(self) -> None:
        """Link the finished file into place; FileExistsError if someone got there first."""
        self._close()
        try:
            # atomic and never replaces; both names relative to the directory we opened
            os.link(self.tmp, self.final, src_dir_fd=self.dirfd, dst_dir_fd=self.dirfd)
        finally:
            os.unlink(self.tmp, dir_fd=self.dirfd)
            os.close(self.dirfd)

    def discard(self) -> None:
        was_open = not self.closed
        self._close()
        if not was_open:
            return
        try:
            os.unlink(self.tmp, dir_fd=self.dirfd)
        except FileNotFoundError:
            pass
        finally:
            os.close(self.dirfd)

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Uploads:
    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.root = os.path.realpath(directory)  # the admin's choice: resolved once, at start

    def _parent(self, rel: str, parts: list[str]) -> int:
        """The upload's directory, made and opened one component at a time beneath the root."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError:  # a symlink (O_NOFOLLOW|O_DIRECTORY: ENOTDIR) or a file in the way
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                    raise Forbidden(rel, f"upload directory {part!r} is {what}") from None
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open(self, request: str, tag: str) -> Upload:
        """A new upload; Forbidden (with the reason) or FileExistsError."""
        rel = normalize(request)
        *dirs, base = rel.split("/")
        dirfd = self._parent(rel, dirs)
        try:
            try:
                os.stat(base, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise FileExistsError(os.path.join(self.root, rel))
            tmp = f".{base}.{tag}.part"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644, dir_fd=dirfd)
        except BaseException:
            os.close(dirfd)
            raise
        return Upload(rel, dirfd, base, tmp, fd)
