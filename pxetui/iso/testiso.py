"""Small ISO images in the layout of each family, for tests and the lab.

`layout(family)` gives the files (tiny fake kernels and initrds unless real ones are passed in);
`build()` writes an image with xorriso (Rock Ridge + Joliet, El Torito, optionally hybrid: an MBR
and an appended EFI partition, as distribution ISOs have); `build_udf()` writes one with pycdlib
where UDF carries the tree (xorriso cannot write UDF; Windows images look like this).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pycdlib

BOOT_IMAGE = "isolinux/isolinux.bin"
FileData = bytes | str | Path


def fake_kernel(tag: str = "pxetui") -> bytes:
    """A blob with the x86 Linux boot header magic (`HdrS` at 0x202), like a bzImage."""
    head = bytearray(0x400)
    head[0x1FE:0x200] = b"\x55\xaa"
    head[0x202:0x206] = b"HdrS"
    return bytes(head) + f"fake kernel {tag}\n".encode()


def _blob(tag: str) -> bytes:
    return f"fake {tag}\n".encode()


_LAYOUTS: dict[str, dict[str, bytes]] = {
    "ubuntu-live": {
        ".disk/info": b'Ubuntu 24.04 LTS "Noble Numbat" - Release amd64 (20240424)',
        "casper/vmlinuz": fake_kernel("ubuntu"), "casper/initrd": _blob("initrd"),
        "casper/minimal.squashfs": _blob("squashfs"), "boot/grub/grub.cfg": b"set timeout=5\n",
    },
    "ubuntu-server": {
        ".disk/info": b'Ubuntu-Server 24.04 LTS "Noble Numbat" - Release amd64 (20240423)',
        "casper/vmlinuz": fake_kernel("ubuntu"), "casper/initrd": _blob("initrd"),
        "casper/ubuntu-server-minimal.squashfs": _blob("squashfs"),
    },
    "debian-live": {
        ".disk/info": b"Debian GNU/Linux 12 Live (standard)",
        "live/vmlinuz-6.1.0-18-amd64": fake_kernel("debian"),
        "live/initrd.img-6.1.0-18-amd64": _blob("initrd"),
        "live/filesystem.squashfs": _blob("squashfs"),
        "isolinux/isolinux.cfg": b"default live\nlabel live\n  kernel /live/vmlinuz-6.1.0-18-amd64\n",
    },
    "debian-installer": {  # mini.iso: the netboot installer on a CD
        "linux": fake_kernel("d-i"), "initrd.gz": _blob("initrd"),
        "isolinux.cfg": b"default install\n",
    },
    "debian-installer-cd": {
        ".disk/info": b"Debian GNU/Linux 12.5.0 \"Bookworm\" - Official amd64 NETINST",
        "install.amd/vmlinuz": fake_kernel("d-i"), "install.amd/initrd.gz": _blob("initrd"),
    },
    "fedora-installer": {
        ".treeinfo": b"[general]\nfamily = Fedora\nversion = 40\n\n[release]\nname = Fedora\nversion = 40\n",
        "images/pxeboot/vmlinuz": fake_kernel("fedora"), "images/pxeboot/initrd.img": _blob("initrd"),
        "images/install.img": _blob("stage2"),
    },
    "fedora-live": {
        "images/pxeboot/vmlinuz": fake_kernel("fedora"), "images/pxeboot/initrd.img": _blob("initrd"),
        "LiveOS/squashfs.img": _blob("squashfs"),
    },
    "arch": {
        "arch/boot/x86_64/vmlinuz-linux": fake_kernel("arch"),
        "arch/boot/x86_64/initramfs-linux.img": _blob("initramfs"),
        "arch/boot/intel-ucode.img": _blob("ucode"), "arch/boot/amd-ucode.img": _blob("ucode"),
        "arch/x86_64/airootfs.sfs": _blob("sfs"),
    },
    "systemrescue": {
        "sysresccd/boot/x86_64/vmlinuz": fake_kernel("sysrescue"),
        "sysresccd/boot/x86_64/sysresccd.img": _blob("initramfs"),
        "sysresccd/boot/intel_ucode.img": _blob("ucode"), "sysresccd/boot/amd_ucode.img": _blob("ucode"),
        "sysresccd/x86_64/airootfs.sfs": _blob("sfs"),
    },
    "alpine": {
        ".alpine-release": b"3.20.0\n", "boot/vmlinuz-lts": fake_kernel("alpine"),
        "boot/initramfs-lts": _blob("initramfs"), "boot/modloop-lts": _blob("modloop"),
        "apks/x86_64/APKINDEX.tar.gz": _blob("apkindex"),
    },
    "memtest86+": {
        "boot/memtest.bin": fake_kernel("memtest"), "EFI/BOOT/BOOTX64.EFI": b"MZ fake memtest efi",
    },
    "windows": {
        "bootmgr": _blob("bootmgr"), "boot/bcd": _blob("bcd"), "boot/boot.sdi": _blob("sdi"),
        "sources/boot.wim": _blob("wim"), "efi/boot/bootx64.efi": b"MZ fake bootmgfw",
    },
    "unknown": {
        "isolinux/isolinux.cfg": b"DEFAULT tool\nLABEL tool\n  KERNEL /tool/kernel\n  APPEND quiet\n",
        "tool/kernel": fake_kernel("tool"),
    },
}
FAMILIES = tuple(_LAYOUTS)


def layout(family: str) -> dict[str, bytes]:
    return dict(_LAYOUTS[family])


def live_iso(out: str | Path, kernel: FileData, initrd: FileData, squashfs: FileData = b"fake squashfs\n",
             hybrid: bool = True) -> Path:
    """A live-boot (Debian live) style image around a real kernel and initrd: imported, it
    becomes a `debian-live` entry whose kernel and initrd are served from inside the .iso."""
    files: dict[str, FileData] = {
        ".disk/info": b"pxetui live test image",
        "live/vmlinuz": kernel, "live/initrd.img": initrd, "live/filesystem.squashfs": squashfs,
    }
    return build(out, files, volid="PXETUI_LIVE", hybrid=hybrid)


def _stage(files: Mapping[str, FileData], dest: Path) -> None:
    for rel, data in files.items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            shutil.copyfile(data, p)


def build(out: str | Path, files: Mapping[str, FileData], volid: str = "PXETUI_TEST",
          boot_image: str | None = BOOT_IMAGE, joliet: bool = True, rock_ridge: bool = True,
          hybrid: bool = False, timeout: float = 60) -> Path:
    """An image made by xorriso; `boot_image` (a fake one is added when absent) makes it El
    Torito bootable; `hybrid` adds an MBR and an appended EFI system partition."""
    xorriso = shutil.which("xorriso")
    if xorriso is None:
        raise RuntimeError("xorriso not found (Debian package xorriso)")
    dest = Path(out)
    with tempfile.TemporaryDirectory(prefix="pxetui-iso-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        content = dict(files)
        if boot_image and boot_image not in content:
            content[boot_image] = b"\xfa" + bytes(2047)  # a no-emulation boot image: 4 sectors
        _stage(content, tree)
        # xorriso writes Rock Ridge unless told not to, even in mkisofs emulation without -R.
        cmd = [xorriso, *([] if rock_ridge else ["-rockridge", "off"]), "-as", "mkisofs",
               "-quiet", "-V", volid, "-o", str(dest)]
        cmd += ["-R"] if rock_ridge else []
        cmd += ["-J", "-joliet-long"] if joliet else []
        if boot_image:
            cmd += ["-b", boot_image, "-c", "boot.cat", "-no-emul-boot", "-boot-load-size", "4"]
        if hybrid:
            mbr = Path(tmp) / "mbr.bin"
            mbr.write_bytes(bytes(446) + bytes(64) + b"\x55\xaa")
            esp = Path(tmp) / "efi.img"
            esp.write_bytes(bytes(64 * 1024))
            cmd += ["-G", str(mbr), "-append_partition", "2", "0xef", str(esp), "-partition_cyl_align", "all"]
        cmd.append(str(tree))
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"xorriso failed: {res.stderr.strip()[:800]}")
    return dest


def build_udf(out: str | Path, files: Mapping[str, FileData], volid: str = "PXETUI_UDF",
              iso9660_too: bool = False, joliet: bool = True) -> Path:
    """An image whose tree is in UDF (and Joliet), with an ISO9660 tree holding only a README
    unless `iso9660_too`: the shape of Windows installation media."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3 if joliet else None, udf="2.60", vol_ident=volid)
    dirs: set[str] = set()
    try:
        iso.add_fp(io.BytesIO(b"This disc contains a UDF file system\n"), 37, "/README.TXT;1")
        for rel, data in sorted(files.items()):
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    iso.add_directory(f"/{d.upper()}" if iso9660_too else None,
                                      joliet_path=f"/{d}" if joliet else None, udf_path=f"/{d}")
            blob = data if isinstance(data, bytes) else Path(data).read_bytes()
            kw = {"joliet_path": f"/{rel}" if joliet else None, "udf_path": f"/{rel}"}
            iso_path = f"/{rel.upper()};1" if iso9660_too else None
            iso.add_fp(io.BytesIO(blob), len(blob), iso_path, **kw)
        tmp = Path(str(out) + ".tmp")
        iso.write(str(tmp))
        os.replace(tmp, out)
    finally:
        iso.close()
    return Path(out)
