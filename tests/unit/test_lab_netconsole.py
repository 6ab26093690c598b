"""The lab initrd's optional netconsole piece (pxetui/lab/content.py, docs/CLIENT-LOGS.md): the
kernel's version read from the installer initrd, the modules found under /lib/modules/<version>
(plain or compressed), and an initrd built with them or, when absent, without them."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest

from pxetui.lab import content, cpio
from pxetui.lab.network import LabError

VERSION = "6.1.0-99-amd64"


def _di_initrd(path: Path, version: str | None = VERSION) -> Path:
    """An installer-like initrd: the NIC modules the lab takes, under lib/modules/<version>."""
    w = cpio.Writer()
    w.file("init", b"#!/bin/sh\n", 0o755)
    if version is not None:
        for m in content.MODULES:
            w.file(f"lib/modules/{version}/kernel/drivers/net/{m}.ko", f"module {m}".encode())
    path.write_bytes(w.finish())
    return path


def _modules(root: Path, netconsole: bytes | None, configfs: bytes | None, xz: bool = False) -> None:
    base = root / VERSION / "kernel"
    for rel, data in ((content.NETCONSOLE_MODULES["netconsole"], netconsole),
                      (content.NETCONSOLE_MODULES["configfs"], configfs)):
        if data is None:
            continue
        p = base / (rel + (".xz" if xz else ""))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(lzma.compress(data, format=lzma.FORMAT_XZ) if xz else data)


@pytest.fixture
def lab_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(content, "DI_INITRD", _di_initrd(tmp_path / "initrd.gz"))
    monkeypatch.setattr(content, "MODULES_DIR", tmp_path / "modules")
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF busybox")
    monkeypatch.setattr(content, "BUSYBOX", busybox)
    return tmp_path


def test_kernel_version_from_the_installer_initrd(lab_sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert content.kernel_version() == VERSION
    monkeypatch.setattr(content, "DI_INITRD", _di_initrd(lab_sources / "bare.gz", version=None))
    with pytest.raises(LabError, match="no lib/modules"):
        content.kernel_version()


def test_modules_found_plain_or_xz_and_both_needed(lab_sources: Path) -> None:
    mods = lab_sources / "modules"
    assert content.netconsole_modules(VERSION) == {}
    _modules(mods, b"netconsole", None)  # netconsole without configfs, its dependency: unusable
    assert content.netconsole_modules(VERSION) == {}
    shutil.rmtree(mods)
    _modules(mods, b"NC-ELF", b"CFS-ELF", xz=True)
    found = content.netconsole_modules(VERSION)
    assert list(found) == ["configfs", "netconsole"]  # load order: the dependency first
    assert all(p.suffix == ".xz" for p in found.values())
    assert content._module_bytes(found["netconsole"]) == b"NC-ELF"  # busybox insmod takes no .xz


def test_initrd_carries_them_only_when_present(lab_sources: Path) -> None:
    def names(initrd: Path) -> dict[str, bytes]:
        return {m.name: m.data for m in cpio.read(initrd) if m.is_file}

    without = names(content.build_initrd(lab_sources / "cache"))
    assert "lib/modules/netconsole.ko" not in without and "lib/modules/virtio_net.ko" in without
    # /init loads it only when it is there and the menu put netconsole= on the command line
    assert "[ -e /lib/modules/netconsole.ko ]" in without["init"].decode()
    assert content.NETCONSOLE in without["init"].decode() and "__NETCONSOLE__" not in without["init"].decode()
    _modules(lab_sources / "modules", b"NC-ELF", b"CFS-ELF")
    with_them = names(content.build_initrd(lab_sources / "cache"))  # a new fingerprint: rebuilt
    assert with_them["lib/modules/netconsole.ko"] == b"NC-ELF"
    assert with_them["lib/modules/configfs.ko"] == b"CFS-ELF"
