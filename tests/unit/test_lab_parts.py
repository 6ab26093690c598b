"""The lab's pure parts: the initramfs writer/reader and the QEMU command lines."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest
from netns import require

from pxetui.lab import content, cpio
from pxetui.lab.network import LabError
from pxetui.lab.qemu import Vm, VmSpec, command


def test_cpio_round_trip() -> None:
    w = cpio.Writer()
    w.file("bin/busybox", b"\x7fELF" + bytes(1001), 0o755)
    w.symlink("bin/sh", "busybox")
    w.file("init", b"#!/bin/sh\necho hi\n", 0o755)
    members = {m.name: m for m in cpio.iter_members(gzip.decompress(w.finish()))}
    assert set(members) == {"bin", "bin/busybox", "bin/sh", "init"}
    assert members["bin/busybox"].data == b"\x7fELF" + bytes(1001) and members["bin/busybox"].is_file
    assert members["bin/busybox"].mode & 0o777 == 0o755
    assert members["bin/sh"].data == b"busybox" and not members["bin/sh"].is_file


def test_cpio_rejects_garbage() -> None:
    with pytest.raises(cpio.CpioError, match="offset 0"):
        list(cpio.iter_members(b"not a cpio archive at all" * 10))


def test_busybox_initrd_has_init_and_matching_modules(tmp_path: Path) -> None:
    require(content.DI_INITRD.exists(), "needs debian-installer-12-netboot-amd64")
    require(content.BUSYBOX.exists(), "needs busybox-static")
    out = content.build_initrd(tmp_path)
    inode = out.stat().st_ino
    assert content.build_initrd(tmp_path) == out and out.stat().st_ino == inode  # cached, not rebuilt
    names = {m.name: m for m in cpio.read(out)}
    # the modules are the installer initrd's own, so they match its kernel
    di = {m.name.rsplit("/", 1)[-1]: m.data for m in cpio.read(content.DI_INITRD)
          if m.is_file and "/kernel/" in m.name}
    for m in content.MODULES:
        assert names[f"lib/modules/{m}.ko"].data == di[f"{m}.ko"], m
    init = names["init"].data.decode()
    assert content.MARKER in init and content.CALLBACK_OK in init and "__" not in init


def test_qemu_always_tcg_and_firmware_specific(tmp_path: Path) -> None:
    require(shutil.which("qemu-system-x86_64") is not None, "needs qemu-system-x86")
    con = tmp_path / "console.log"
    for fw in ("bios", "uefi", "uefi-ipxe", "secureboot"):
        cmd = command(VmSpec(firmware=fw), tmp_path / fw, con)
        assert cmd[cmd.index("-accel") + 1] == "tcg" and "kvm" not in " ".join(cmd)
        assert f"file:{con}" in cmd and "-no-reboot" in cmd
    uefi = " ".join(command(VmSpec(firmware="uefi"), tmp_path / "u", con))
    assert "romfile=," not in uefi and uefi.endswith("romfile=")  # OVMF's own PXE, no iPXE ROM
    sb = " ".join(command(VmSpec(firmware="secureboot"), tmp_path / "s", con))
    assert "OVMF_CODE_4M.secboot.fd" in sb and "vars-OVMF_VARS_4M.ms.fd" in sb and "smm=on" in sb


def test_vm_spec_refuses_unknown_firmware() -> None:
    with pytest.raises(LabError, match="firmware 'coreboot'"):
        VmSpec(firmware="coreboot")


def test_vm_wait_for_reads_the_console_until_the_marker_or_the_vm_ends(tmp_path: Path) -> None:
    """A plain process stands in for QEMU: wait_for needs only `proc` and the console file."""
    con = tmp_path / "console.log"
    vm = Vm(VmSpec(), con, tmp_path)
    con.write_text("SeaBIOS\nPXETUI-LAB-BOOTED\n")
    vm.proc = subprocess.Popen(["true"], start_new_session=True)  # as Namespace.popen
    vm.proc.wait()
    assert vm.wait_for("PXETUI-LAB-BOOTED", 5) >= 0  # written before the VM ended: found
    with pytest.raises(LabError, match=r"the VM exited \(exit code 0\) before 'never'"):
        vm.wait_for("never", 5)
    vm.proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        with pytest.raises(LabError, match=r"no 'never' on the VM console within 0s"):
            vm.wait_for("never", 0.3)
    finally:
        vm.stop()
    assert not vm.running
