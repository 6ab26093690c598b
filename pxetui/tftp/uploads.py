"""Optional uploads (WRQ) into their own directory, never over a served file.

Off unless `tftp.uploads_dir` is set (config refuses a directory inside the TFTP root). The
name is confined like a read (`files.normalize`: no `..`, NUL or control characters, `\\` as
`/`), every directory on the way must stay inside the uploads directory by realpath, the data
goes to a hidden temporary file, and only a complete upload is linked into place; an existing
file is never replaced (ERROR 6).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pxetui.files import Forbidden, normalize

MAX_UPLOAD = 4 << 30  # bytes; TFTP is for crash dumps and configs, not disk images


@dataclass
class Upload:
    name: str  # normalised request path
    final: str
    tmp: str
    fd: int
    closed: bool = field(default=False)

    def write(self, pos: int, data: memoryview) -> None:
        os.pwrite(self.fd, data, pos)

    def commit(self) -> None:
        """Link the finished file into place; FileExistsError if someone got there first."""
        self._close()
        try:
            os.link(self.tmp, self.final)  # atomic and never replaces
        finally:
            os.unlink(self.tmp)

    def discard(self) -> None:
        self._close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


class Uploads:
    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.root = os.path.realpath(directory)

    def open(self, request: str, tag: str) -> Upload:
        """A new upload; Forbidden (with the reason) or FileExistsError."""
        rel = normalize(request)
        final = os.path.join(self.root, rel)
        # Resolve before creating anything: makedirs through a symlink would build directories
        # outside the uploads root even though the upload itself is then refused.
        real_parent = os.path.realpath(os.path.dirname(final))
        if real_parent != self.root and not real_parent.startswith(self.root + os.sep):
            raise Forbidden(rel, "upload directory resolves outside the uploads root (symlink?)")
        os.makedirs(real_parent, exist_ok=True)
        final = os.path.join(real_parent, os.path.basename(final))
        if os.path.lexists(final):
            raise FileExistsError(final)
        tmp = os.path.join(real_parent, f".{os.path.basename(final)}.{tag}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        return Upload(rel, final, tmp, fd)
