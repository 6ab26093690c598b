"""pycdlib index of ISO images: byte extents that read back the exact file content, on real
Debian ISOs and on images built here (Rock Ridge, Joliet, plain ISO9660, UDF, hybrid, >4 GiB),
and clear errors for what is not a usable ISO."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pycdlib
import pytest
from netns import require_tool

from pxetui.iso import reader, testiso
from pxetui.iso.reader import IsoError, IsoIndex, index_pycdlib, read_index
from pxetui.safeopen import Pin

MEMTEST = "/usr/lib/memtest86+/memtest86+x64.iso"
IPXE = "/usr/lib/ipxe/ipxe.iso"
GRUB_RESCUE = "/usr/lib/grub-rescue/grub-rescue-cdrom.iso"
REAL = [(MEMTEST, "memtest86+"), (IPXE, "ipxe"), (GRUB_RESCUE, "grub-rescue-pc")]


def pread(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(size)


def pycdlib_content(iso: pycdlib.PyCdlib, kind: str, path: str) -> bytes:
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, **{kind: path})
    return out.getvalue()


@pytest.mark.parametrize(("iso", "package"), REAL)
def test_real_iso_extents_match_pycdlib_extraction(iso: str, package: str) -> None:
    require_tool(iso, package=package)
    idx = read_index(iso)
    assert idx.el_torito and idx.namespace == "rockridge"
    assert idx.iso_size == os.path.getsize(iso)
    assert idx.files and all(f.contiguous for f in idx.files.values())
    checked = 0
    extractor = pycdlib.PyCdlib()
    extractor.open(iso)  # once per image, not once per file
    try:
        for f in list(idx.files.values())[:40]:  # grub-rescue has ~290 modules: a sample is enough
            want = pycdlib_content(extractor, "rr_path", "/" + f.path)
            assert pread(iso, f.offset, f.size) == want, f.path
            checked += 1
    finally:
        extractor.close()
    assert checked >= 2


def test_memtest_iso_holds_the_kernel_that_memtest_ships() -> None:
    # The package ships the kernels beside the image: the checks below always run.
    shipped, shipped_bin = Path("/boot/memtest86+x64.efi"), Path("/boot/memtest86+x64.bin")
    require_tool(MEMTEST, str(shipped), str(shipped_bin), package="memtest86+")
    idx = read_index(MEMTEST)
    assert set(idx.files) == {"boot/floppy.img", "EFI/BOOT/bootx64.efi"}
    efi, floppy = idx.files["EFI/BOOT/bootx64.efi"], idx.files["boot/floppy.img"]
    assert pread(MEMTEST, efi.offset, efi.size) == shipped.read_bytes()
    kernel = shipped_bin.read_bytes()  # the floppy image is memtest86+x64.bin padded with zeros
    image = pread(MEMTEST, floppy.offset, floppy.size)
    assert image[: len(kernel)] == kernel and not image[len(kernel):].strip(b"\0")
    assert idx.read("boot/floppy.img", 0x206)[0x202:0x206] == b"HdrS"


def _check_all(iso: Path, files: dict[str, bytes]) -> IsoIndex:
    """Index the image once; every file reads back its exact content. Returns the index."""
    idx = read_index(iso)
    for rel, data in files.items():
        f = idx.get(rel)
        assert f is not None, f"{rel} missing from {sorted(idx.files)}"
        assert pread(str(iso), f.offset, f.size) == data, rel
    return idx


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("xorriso")
    return tmp_path_factory.mktemp("isos")


def test_rock_ridge_and_joliet(built: Path) -> None:
    files = testiso.layout("debian-live")
    iso = testiso.build(built / "rrj.iso", files)
    assert _check_all(iso, files).namespace == "rockridge"


def test_joliet_only_keeps_case_and_long_names(built: Path) -> None:
    files = testiso.layout("arch")
    iso = testiso.build(built / "joliet.iso", files, rock_ridge=False)
    idx = _check_all(iso, files)
    assert idx.namespace == "joliet"
    assert "arch/boot/x86_64/initramfs-linux.img" in idx.files


def test_plain_iso9660_names_are_cleaned(built: Path) -> None:
    iso = testiso.build(built / "plain.iso", {"BOOT/KERNEL.BIN": b"k" * 5000}, rock_ridge=False,
                        joliet=False)
    idx = read_index(iso)
    assert idx.namespace == "iso9660"
    assert "BOOT/KERNEL.BIN" in idx.files  # no ";1"
    assert idx.get("boot/kernel.bin") is idx.files["BOOT/KERNEL.BIN"]
    f = idx.files["BOOT/KERNEL.BIN"]
    assert pread(str(iso), f.offset, f.size) == b"k" * 5000


def test_hybrid_image_with_mbr_and_appended_partition(built: Path) -> None:
    files = testiso.layout("ubuntu-live")
    iso = testiso.build(built / "hybrid.iso", files, hybrid=True)
    head = pread(str(iso), 0, 512)
    assert head[510:512] == b"\x55\xaa"  # an MBR: dd-able to a USB stick, like distro ISOs
    assert _check_all(iso, files).el_torito


def test_udf_only_tree_like_windows_media(built: Path) -> None:
    files = testiso.layout("windows")
    iso = testiso.build_udf(built / "udf.iso", files, joliet=False)
    idx = _check_all(iso, files)
    assert idx.namespace == "udf"
    assert "README.TXT" not in idx.files  # the token ISO9660 tree is not the one used


def test_udf_with_joliet_prefers_joliet_names(built: Path) -> None:
    files = testiso.layout("alpine")
    iso = testiso.build_udf(built / "udfj.iso", files, iso9660_too=True)
    assert _check_all(iso, files).namespace == "joliet"


class _Zeros(io.RawIOBase):
    """A file of n zero bytes that takes no memory."""

    def __init__(self, n: int) -> None:
        self.n, self.pos = n, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, off: int, whence: int = 0) -> int:
        self.pos = off if whence == 0 else self.pos + off if whence == 1 else self.n + off
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        k = max(0, min(len(b), self.n - self.pos))
        b[:k] = bytes(k)
        self.pos += k
        return k


def test_file_over_4gib_gets_every_extent_not_only_the_rock_ridge_last_one() -> None:
    # docs/FIELD-NOTES.md: the Rock Ridge path of a >4 GiB file returns only its last extent.
    size = 5 << 30
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3)
    iso.add_fp(_Zeros(size), size, "/BIG.;1", rr_name="big.img", joliet_path="/big.img")
    iso.add_fp(io.BytesIO(b"x" * 10), 10, "/SMALL.;1", rr_name="small", joliet_path="/small")
    rr = iso.get_file_byte_extents(rr_path="/big.img")
    assert sum(n for _, n in rr) < size  # the quirk this guards against
    idx = index_pycdlib(iso, "big.iso", size + (1 << 20))
    big = idx.files["big.img"]
    assert idx.namespace == "rockridge"
    assert big.size == size
    assert big.offset == iso.get_file_byte_extents(joliet_path="/big.img")[0][0]
    assert big.contiguous  # the two ISO9660 extents are back to back: one byte range
    assert idx.files["small"].size == 10
    iso.close()


# -- errors --------------------------------------------------------------------------------


def test_not_an_iso(tmp_path: Path) -> None:
    p = tmp_path / "random.iso"
    p.write_bytes(os.urandom(64 * 1024))
    with pytest.raises(IsoError, match="not an ISO 9660 image"):
        read_index(p)


def test_tiny_file(tmp_path: Path) -> None:
    p = tmp_path / "tiny.iso"
    p.write_bytes(b"hello")
    with pytest.raises(IsoError, match="not an ISO image"):
        read_index(p)


def test_truncated_iso(built: Path, tmp_path: Path) -> None:
    whole = testiso.build(built / "whole.iso", {"big.bin": os.urandom(600 * 1024)})
    cut = tmp_path / "cut.iso"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(IsoError, match="truncated"):
        read_index(cut)


def test_corrupt_directory_records(built: Path, tmp_path: Path) -> None:
    whole = testiso.build(built / "tocorrupt.iso", testiso.layout("alpine"))
    data = bytearray(whole.read_bytes())
    # Root directory record in the PVD (offset 156): point its extent far past the end.
    pvd = 16 * 2048
    data[pvd + 156 + 2: pvd + 156 + 6] = (0x7FFFFFF0).to_bytes(4, "little")
    data[pvd + 156 + 6: pvd + 156 + 10] = (0x7FFFFFF0).to_bytes(4, "big")
    bad = tmp_path / "corrupt.iso"
    bad.write_bytes(bytes(data))
    with pytest.raises(IsoError, match="corrupt|truncated"):
        read_index(bad)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(IsoError, match="no such file"):
        read_index(tmp_path / "nope.iso")
    with pytest.raises(IsoError, match="not a regular file"):
        read_index(tmp_path)


def test_unreadable(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    iso = testiso.build(built / "unreadable.iso", {"a": b"a"})

    def denied(*a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reader, "open_nofollow", denied)
    with pytest.raises(IsoError, match="cannot read: Permission denied"):
        read_index(iso)


def test_symlink_is_resolved_once_and_the_index_pins_the_real_file(built: Path, tmp_path: Path) -> None:
    iso = testiso.build(built / "pinned.iso", {"a": b"a"})
    link = tmp_path / "link.iso"
    link.symlink_to(iso)
    idx = read_index(link)
    st = iso.stat()
    assert idx.iso_path == str(iso)
    assert idx.pin == Pin(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def test_written_to_while_indexed(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    iso = testiso.build(built / "busy.iso", {"a": b"a"})
    real_index = reader.index_pycdlib

    def touch_meanwhile(*a: object, **k: object) -> IsoIndex:
        out = real_index(*a, **k)  # type: ignore[arg-type]
        os.utime(iso, ns=(0, iso.stat().st_mtime_ns + 5_000_000_000))
        return out

    monkeypatch.setattr(reader, "index_pycdlib", touch_meanwhile)
    with pytest.raises(IsoError, match="changed while it was being indexed"):
        read_index(iso)


def test_progress_reports_indexing(built: Path) -> None:
    iso = testiso.build(built / "progress.iso", testiso.layout("arch"))
    seen: list[tuple[str, int, int]] = []
    read_index(iso, progress=lambda step, done, total: seen.append((step, done, total)))
    steps = [s for s, _, _ in seen]
    assert "opening image" in steps and "indexing files" in steps
    last = [x for x in seen if x[0] == "indexing files"][-1]
    assert last[1] == last[2] > 0


def test_damaged_images_fail_with_iso_error_only(built: Path, tmp_path: Path) -> None:
    """Random damage to the descriptors and directories: a clean IsoError or a usable index,
    never another exception (seeded, so a failure reproduces)."""
    data = testiso.build(built / "fuzz.iso", testiso.layout("debian-live")).read_bytes()
    rng = random.Random(6)
    bad = tmp_path / "damaged.iso"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(60):
        d = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            d[rng.randrange(16 * 2048, 40 * 2048)] = rng.randrange(256)
        bad.write_bytes(bytes(d))
        try:
            read_index(bad)
            outcomes["ok"] += 1
        except IsoError:
            outcomes["error"] += 1
    assert outcomes["error"] > 0
