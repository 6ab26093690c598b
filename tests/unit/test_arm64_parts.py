"""ARM64 UEFI without a VM: the arm64 netboot tree found where Debian installs it (or the package
named), served under fixed names only, the boot policy for option 93 = 11 and 19, the arm64
GRUB menu where Debian's netboot GRUB reads it, and the lab's AAVMF command line and options.
The boots themselves are tests/e2e/test_arm64.py."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
from netns import require
from services import base_config

from pxetui import debpackages, store
from pxetui.commands import lab as lab_cli
from pxetui.config import Config
from pxetui.dhcp.policy import BootPolicy, ClientFacts
from pxetui.files import Client
from pxetui.lab import content
from pxetui.lab.network import LabError
from pxetui.lab.qemu import VmSpec, command
from pxetui.lab.run import LabOptions
from pxetui.library import provider
from pxetui.loaders import ARM64_INITRD, ARM64_KERNEL, DI_ARM64, DI_ARM64_PACKAGE, find_loaders
from pxetui.menus import model, render_grub
from pxetui.menus.model import Entry, Menu

MAC = "52:54:00:aa:00:01"
ARM64_NAMES = ("shimaa64.efi", "bootnetaa64.efi", "grubaa64.efi", ARM64_KERNEL, ARM64_INITRD)


def fake_tree(prefix: Path) -> None:
    d = prefix / DI_ARM64.lstrip("/")
    d.mkdir(parents=True)
    for f in ("bootnetaa64.efi", "grubaa64.efi", "linux", "initrd.gz"):
        (d / f).write_bytes(f.encode())


def test_arm64_tree_found_where_the_package_installs_it(tmp_path: Path) -> None:
    fake_tree(tmp_path)
    ld = find_loaders(prefix=tmp_path)
    base = tmp_path / DI_ARM64.lstrip("/")
    assert ld.path("shimaa64.efi") == ld.path("bootnetaa64.efi") == str(base / "bootnetaa64.efi")
    assert ld.path("grubaa64.efi") == str(base / "grubaa64.efi")
    assert ld.path(ARM64_KERNEL) == str(base / "linux") and ld.path(ARM64_INITRD) == str(base / "initrd.gz")
    # Only these fixed names: nothing else under the tree is reachable through the loaders.
    assert ld.path("debian-installer/arm64/grub/font.pf2") is None
    assert ld.path("debian-installer/arm64/../../etc/passwd") is None
    # laid out by hand (pxetui export's cp lines), directories included
    out = tmp_path / "root"
    assert set(ARM64_NAMES) <= set(ld.layout(out))
    assert (out / ARM64_KERNEL).read_bytes() == b"linux"


def test_missing_arm64_tree_names_its_package(tmp_path: Path) -> None:
    ld = find_loaders(prefix=tmp_path)
    for name in ARM64_NAMES:
        assert ld.path(name) is None
        assert f"apt-get install {DI_ARM64_PACKAGE}" in ld.found[name].describe(), name
    # all names line up in doctor's list though some are longer than the x86 ones
    lines = ld.describe_lines()
    assert len({line.index(" missing:") for line in lines if " missing:" in line}) == 1


def facts(arch: int, vc: str) -> ClientFacts:
    return ClientFacts(MAC, arch, vc, False)


def test_arm64_pxe_gets_shim_and_http_boot_gets_it_as_a_url(tmp_path: Path) -> None:
    p = BootPolicy(base_config(tmp_path))
    pxe = p.decide(facts(11, "PXEClient:Arch:00011:UNDI:003000"))[0]
    assert (pxe.kind, pxe.boot_file, pxe.vendor_class) == ("arm64", "shimaa64.efi", "PXEClient")
    http = p.decide(facts(19, "HTTPClient:Arch:00019:UNDI:003000"))[0]
    assert http.boot_file == "http://10.99.0.1/shimaa64.efi" and http.vendor_class == "HTTPClient"
    assert "over HTTP" in http.reason
    # x64 HTTP boot is unchanged: an x64 binary
    assert p.decide(facts(16, "HTTPClient:Arch:00016"))[0].boot_file.endswith((".efi",))
    assert "aa64" not in (p.decide(facts(16, "HTTPClient:Arch:00016"))[0].boot_file or "")


def test_boot_file_arm64_applies_to_pxe_and_http_boot(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, dhcp={"boot_files": {"arm64": "bootnetaa64.efi",
                                                      "http64": "http://10.0.0.9/ipxe.efi"}})
    p = BootPolicy(cfg)
    assert p.decide(facts(11, "PXEClient:Arch:00011"))[0].boot_file == "bootnetaa64.efi"
    assert p.decide(facts(19, "HTTPClient:Arch:00019"))[0].boot_file == "http://10.99.0.1/bootnetaa64.efi"
    assert p.decide(facts(16, "HTTPClient:Arch:00016"))[0].boot_file == "http://10.0.0.9/ipxe.efi"
    url = BootPolicy(base_config(tmp_path / "u", dhcp={"boot_files": {"arm64": "http://10.0.0.9/a.efi"}}))
    assert url.decide(facts(19, "HTTPClient:Arch:00019"))[0].boot_file == "http://10.0.0.9/a.efi"


def test_arm64_grub_menu_has_linux_and_initrd_and_no_serial_setup(tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    text = render_grub.render(content.lab_menu(content.arm64_installer_entry()), cfg, "arm64")
    assert f"  linux /{ARM64_KERNEL} console=ttyAMA0,115200 priority=high ---" in text
    assert f"  initrd /{ARM64_INITRD}" in text
    assert "linuxefi" not in text and "serial" not in text and "terminal_output" not in text
    # x64 GRUB keeps its serial terminal
    x64 = Menu()
    x64.add(Entry(id="x", label="x", kernel="k", initrds=["i"], archs=["uefi64"]))
    x64.serial = "0 115200"
    assert "serial --unit=0 --speed=115200" in render_grub.render(x64, cfg, "uefi64")


def saved(cfg: Config, menu: Menu) -> None:
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    conn = store.connect(cfg.db_path)
    try:
        with conn:
            model.save_menu(conn, menu)
    finally:
        conn.close()


def test_netboot_grubs_config_path_gets_the_arm64_menu(tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    menu = content.lab_menu(content.arm64_installer_entry())
    menu.add(Entry(id="x64", label="x64 only", kernel="vmlinuz", archs=["uefi64"]))
    saved(cfg, menu)
    menus = provider.MenuProvider(provider.state_for(cfg))
    # whatever arch the requester was attributed (none here): that GRUB only runs on arm64
    src = menus.lookup(provider.ARM64_GRUB_CFG, Client(ip="10.99.0.50"))
    assert src is not None
    text = src.data.decode() if src.data is not None else ""
    assert ARM64_KERNEL in text and "vmlinuz" not in text
    # grub/grub.cfg follows the client's arch: arm64 for 11, x64 for 7
    arm = menus.lookup("grub/grub.cfg", Client(ip="10.99.0.50", arch=11))
    x64 = menus.lookup("grub/grub.cfg", Client(ip="10.99.0.51", arch=7))
    assert arm is not None and x64 is not None and arm.data is not None and x64.data is not None
    assert ARM64_KERNEL in arm.data.decode() and "vmlinuz" in x64.data.decode()
    assert provider.ARM64_GRUB_CFG in provider.effective_sources(cfg)


def test_installed_arm64_files_are_served_by_their_fixed_names(tmp_path: Path) -> None:
    require(Path(DI_ARM64, "linux").exists(), f"needs {DI_ARM64_PACKAGE}")
    loaders = provider.LoaderProvider(base_config(tmp_path))
    for name in ARM64_NAMES:
        src = loaders.lookup(name, Client())
        assert src is not None, name
        assert src.path is not None and src.path.startswith(DI_ARM64)
        assert src.fd is not None
        src.close()
    assert loaders.lookup("debian-installer/arm64/grub/grub.cfg", Client()) is None


def test_aavmf_command_is_aarch64_virt_tcg_with_firmware_pxe(tmp_path: Path) -> None:
    require(shutil.which("qemu-system-aarch64") is not None, "needs qemu-system-arm")
    require(Path("/usr/share/AAVMF/AAVMF_CODE.fd").exists(), "needs qemu-efi-aarch64")
    con = tmp_path / "console.log"
    cmd = command(VmSpec(firmware="aavmf", memory_mb=1024), tmp_path / "vm", con)
    line = " ".join(cmd)
    assert cmd[0].endswith("qemu-system-aarch64")
    assert cmd[cmd.index("-accel") + 1] == "tcg" and "kvm" not in line
    assert cmd[cmd.index("-machine") + 1] == "virt" and cmd[cmd.index("-cpu") + 1] == "cortex-a57"
    assert f"file:{con}" in cmd and "-no-reboot" in cmd
    assert "AAVMF_CODE.fd" in line and (tmp_path / "vm" / "vars-AAVMF_VARS.fd").exists()
    assert line.endswith("romfile=")  # AAVMF's own PXE client, no option ROM


def test_arm64_lab_options(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="no arm64 build"):
        LabOptions(state_dir=tmp_path, firmware="aavmf", content="busybox")
    with pytest.raises(LabError, match="full DHCP only"):
        LabOptions(state_dir=tmp_path, firmware="aavmf", content="debian-installer", dhcp="proxy")
    ns = argparse.Namespace(arch="arm64", uefi=False, secure_boot=False, ipxe=False, proxy=False,
                            content=None, state_dir=str(tmp_path), http_port=80)
    opts = lab_cli.options_from(ns)
    assert (opts.firmware, opts.content, opts.memory_mb) == ("aavmf", "debian-installer", 1024)
    x86 = lab_cli.options_from(argparse.Namespace(**{**vars(ns), "arch": "x86_64"}))
    assert (x86.firmware, x86.content) == ("bios", "busybox")


def test_lab_cli_refuses_x86_flags_with_arm64(capsys: pytest.CaptureFixture[str]) -> None:
    require(__import__("os").geteuid() == 0, "pxetui lab checks root first")
    ns = argparse.Namespace(arch="arm64", uefi=True, secure_boot=False, ipxe=False, proxy=True,
                            content=None, state_dir=None, http_port=80, headless=True, timeout=1.0)
    assert lab_cli.cmd_lab(ns) == 2
    assert "drop --uefi --proxy" in capsys.readouterr().err


def test_doctor_names_the_arm64_packages(tmp_path: Path) -> None:
    lines = {line.split()[0]: line for line in debpackages.describe_lines(tmp_path)}
    for pkg in (DI_ARM64_PACKAGE, "qemu-system-arm", "qemu-efi-aarch64"):
        assert "missing" in lines[pkg] and f"(apt-get install {pkg})" in lines[pkg], lines[pkg]
    assert "--arch arm64" in lines["qemu-efi-aarch64"] and "ARM64 UEFI clients" in lines[DI_ARM64_PACKAGE]
    fake_tree(tmp_path)
    lines = {line.split()[0]: line for line in debpackages.describe_lines(tmp_path)}
    assert "installed" in lines[DI_ARM64_PACKAGE] and "missing" in lines["qemu-efi-aarch64"]
