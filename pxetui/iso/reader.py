"""Index an ISO image with pycdlib: every file with its byte extent inside the .iso.

No mounting, no extraction, no root: the image is opened read-only and each file's data is
located with `get_file_byte_extents()`, so TFTP/HTTP can later serve it straight from the .iso
(pread/sendfile at the stored offset).

Names come from the richest namespace: Rock Ridge (real names, case, long), else Joliet, else
UDF (Windows images keep everything in UDF), else plain ISO9660 (`NAME.EXT;1` cleaned up).
Files over 4 GiB are split into several ISO9660 directory records; pycdlib's Rock Ridge path
then returns only the last extent (docs/FIELD-NOTES.md, "Library evidence: pycdlib"), so their extents
are taken from the Joliet or UDF view of the same data, matched by where the data ends.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from pxetui.safeopen import Pin, PinMismatch, Refused, open_nofollow, open_pinned

Progress = Callable[[str, int, int], None]  # (step, done, total)
BLOCK = 2048
FOUR_GIB = 1 << 32
# pycdlib trusts on-disk structures; garbage in them surfaces as these.
_GARBAGE = (ValueError, IndexError, KeyError, UnicodeError, struct.error)


class IsoError(Exception):
    """The image cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class IsoFile:
    path: str  # inside the image, no leading '/'
    offset: int  # byte offset of the first extent inside the .iso
    size: int  # total length in bytes
    extents: tuple[tuple[int, int], ...] = ()  # only when the data is not one contiguous run

    @property
    def contiguous(self) -> bool:
        return not self.extents

    @property
    def runs(self) -> tuple[tuple[int, int], ...]:
        """(offset, length) of each piece of the data, in order."""
        return self.extents or ((self.offset, self.size),)


@dataclass
class IsoIndex:
    iso_path: str
    iso_size: int
    iso_mtime: float
    volume_id: str
    namespace: str  # rockridge | joliet | udf | iso9660
    el_torito: bool
    files: dict[str, IsoFile] = field(default_factory=dict)
    # What the image was when it was indexed (docs/SECURITY.md, "Files cannot be swapped under
    # us"): every later open must find this very file at `iso_path`.
    pin: Pin | None = None

    def get(self, path: str) -> IsoFile | None:
        """Exact path, else a case-insensitive match (ISO9660 names are upper case)."""
        f = self.files.get(path.strip("/"))
        if f is not None:
            return f
        low = path.strip("/").lower()
        return next((v for k, v in self.files.items() if k.lower() == low), None)

    def read(self, path: str, limit: int = 1 << 20) -> bytes:
        """The first `limit` bytes of a file in the image (for detection: .disk/info, headers)."""
        f = self.get(path)
        if f is None:
            raise KeyError(path)
        out = bytearray()
        if self.pin is not None:  # the indexed file itself, not whatever the path names now
            try:
                fd, _ = open_pinned(self.iso_path, self.pin)
            except PinMismatch as exc:
                raise IsoError(f"{exc.path} {exc.reason} while it was being imported") from None
        else:
            fd = os.open(self.iso_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for off, length in f.runs:
                if len(out) >= limit:
                    break
                out += os.pread(fd, min(length, limit - len(out)), off)
        finally:
            os.close(fd)
        return bytes(out)


def _clean_iso9660(name: str) -> str:
    """`VMLINUZ.;1` -> `VMLINUZ`: drop the version and an empty extension."""
    base = name.split(";", 1)[0]
    return base[:-1] if base.endswith(".") else base


def _walk(iso: pycdlib.PyCdlib, kind: str) -> Iterator[str]:
    """Absolute file paths in one namespace (pycdlib yields each multi-extent file once)."""
    for dirpath, _dirs, files in iso.walk(**{kind: "/"}):
        base = dirpath.rstrip("/")
        for name in files:
            yield f"{base}/{name}"


def _extents(iso: pycdlib.PyCdlib, kind: str, path: str) -> list[tuple[int, int]]:
    try:
        return [(int(o), int(n)) for o, n in iso.get_file_byte_extents(**{kind: path})]
    except PyCdlibException:
        return []  # symlinks, boot catalogs: no data of their own


def _namespaces(iso: pycdlib.PyCdlib) -> list[str]:
    kinds = []
    if iso.has_rock_ridge():
        kinds.append("rr_path")
    if iso.has_joliet():
        kinds.append("joliet_path")
    if iso.has_udf():
        kinds.append("udf_path")
    kinds.append("iso_path")
    return kinds


_NS_NAME = {"rr_path": "rockridge", "joliet_path": "joliet", "udf_path": "udf", "iso_path": "iso9660"}


def index_pycdlib(iso: pycdlib.PyCdlib, iso_path: str, iso_size: int, iso_mtime: float = 0.0,
                  progress: Progress | None = None) -> IsoIndex:
    """Index an opened PyCdlib object (tests use this with images built by pycdlib itself)."""
    kinds = _namespaces(iso)
    listing = {k: list(_walk(iso, k)) for k in kinds}
    # Windows images carry a token ISO9660 tree (a README) and the real one in UDF: name files
    # from the richest namespace (RR, Joliet, UDF, ISO9660 in that order) that sees at least
    # half as many files as the fullest one.
    most = max(len(v) for v in listing.values())
    primary = next(k for k in kinds if len(listing[k]) * 2 >= most)
    # Whole extents of big files, from the namespaces that report every extent. Only an image
    # over 4 GiB can hold a file over 4 GiB, so smaller ones skip this second pass.
    full: dict[int, list[tuple[int, int]]] = {}
    for k in ("joliet_path", "udf_path", "iso_path"):
        if k == primary or k not in listing or iso_size <= FOUR_GIB:
            continue
        for p in listing[k]:
            ext = _extents(iso, k, p)
            if len(ext) > 1 or sum(n for _, n in ext) >= FOUR_GIB:
                full[ext[-1][0] + ext[-1][1]] = ext
    names = listing[primary]
    out: dict[str, IsoFile] = {}
    total = len(names)
    for i, p in enumerate(names):
        if progress is not None and (i % 500 == 0 or i + 1 == total):
            progress("indexing files", i + 1, total)
        ext = _extents(iso, primary, p)
        if ext:
            ext = full.get(ext[-1][0] + ext[-1][1], ext)
        rel = p.lstrip("/")
        if primary == "iso_path":
            rel = "/".join(_clean_iso9660(part) for part in rel.split("/"))
        if not ext:
            if _is_empty_file(iso, primary, p):
                out[rel] = IsoFile(rel, 0, 0)
            continue
        out[rel] = _file(rel, ext)
    vol = iso.pvd.volume_identifier.decode("ascii", "replace").strip()
    return IsoIndex(iso_path=iso_path, iso_size=iso_size, iso_mtime=iso_mtime, volume_id=vol,
                    namespace=_NS_NAME[primary],
                    el_torito=iso.eltorito_boot_catalog is not None, files=out)


def _is_empty_file(iso: pycdlib.PyCdlib, kind: str, path: str) -> bool:
    """A zero-length regular file (kept in the index) vs a symlink or the boot catalog."""
    try:
        rec = iso.get_record(**{kind: path})
    except PyCdlibException:
        return False
    is_symlink = getattr(rec, "is_symlink", None)
    if callable(is_symlink) and is_symlink():
        return False
    return int(rec.get_data_length()) == 0


def _file(rel: str, ext: list[tuple[int, int]]) -> IsoFile:
    size = sum(n for _, n in ext)
    # ISO9660 multi-extent parts are written back to back; merge when nothing lies between.
    contiguous = all(ext[i][0] + ext[i][1] == ext[i + 1][0] for i in range(len(ext) - 1))
    return IsoFile(rel, ext[0][0], size, () if contiguous else tuple(ext))


def read_index(path: str | Path, progress: Progress | None = None) -> IsoIndex:
    """Open and index an image; IsoError for anything that is not a complete, readable ISO.

    A symlink is resolved once, here: the index names the real file, opened once with
    O_NOFOLLOW and indexed through that descriptor, and carries its pin (device, inode, size,
    mtime) so every later open can prove it is still the same file (docs/SECURITY.md)."""
    p = str(path)
    real = os.path.realpath(p)
    try:
        fd, st = open_nofollow(real)
    except FileNotFoundError:
        raise IsoError(f"{p}: no such file") from None
    except Refused as exc:  # a directory, a device; or swapped for a symlink since realpath
        raise IsoError(f"{p}: {exc.reason}") from None
    except OSError as exc:
        raise IsoError(f"{p}: cannot read: {exc.strerror}") from None
    pin = Pin.of(st)
    fh = os.fdopen(fd, "rb")  # noqa: SIM115 - closed below, after pycdlib is done with it
    with fh:
        if st.st_size < 17 * BLOCK:
            raise IsoError(f"{p}: not an ISO image ({st.st_size} bytes is smaller than the system "
                           "area and volume descriptors, 34816 bytes): truncated or another format")
        try:
            fh.seek(16 * BLOCK)
            head = fh.read(6)
        except OSError as exc:
            raise IsoError(f"{p}: cannot read: {exc.strerror}") from None
        if head[1:6] != b"CD001":
            raise IsoError(f"{p}: not an ISO 9660 image (no CD001 volume descriptor at byte 32768)")
        if progress is not None:
            progress("opening image", 0, 1)
        iso = pycdlib.PyCdlib()
        try:
            iso.open_fp(fh)
        except PyCdlibException as exc:
            raise IsoError(f"{p}: corrupt or truncated ISO: {exc}") from None
        except OSError as exc:
            if exc.errno == errno.EIO:
                raise IsoError(f"{p}: I/O error while reading (bad medium?)") from None
            raise IsoError(f"{p}: cannot read: {exc.strerror or exc}") from None
        except _GARBAGE as exc:
            raise IsoError(f"{p}: corrupt ISO (unreadable directory structures: {exc})") from None
        try:
            declared = int(iso.pvd.space_size) * int(iso.logical_block_size)
            if declared > st.st_size:
                raise IsoError(f"{p}: truncated: the volume declares {declared} bytes but the "
                               f"file has only {st.st_size}")
            try:
                index = index_pycdlib(iso, real, st.st_size, st.st_mtime, progress)
            except PyCdlibException as exc:
                raise IsoError(f"{p}: corrupt ISO: {exc}") from None
            except _GARBAGE as exc:
                raise IsoError(f"{p}: corrupt ISO (unreadable directory structures: {exc})") from None
        finally:
            try:
                iso.close()
            except PyCdlibException:
                pass
        changed = pin.differs(os.fstat(fh.fileno()))
        if changed is not None:  # written to while we read it: the extents may be stale
            raise IsoError(f"{p}: changed while it was being indexed ({changed}); import it again")
    for f in index.files.values():
        end = max(o + n for o, n in f.runs)
        if end > st.st_size:
            raise IsoError(f"{p}: truncated: {f.path} ends at byte {end} but the file has only "
                           f"{st.st_size}")
    index.pin = pin
    return index
