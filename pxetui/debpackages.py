"""What each Debian package adds to pxetui, and whether it is installed: `pxetui doctor`.

pxetui installs as a Python tool (pipx, a wheel) and serves TFTP/HTTP/DHCP with nothing else;
the boot loaders, the lab's firmware and VM content come from Debian packages
(scripts/debian-packages.txt). A package counts as installed when a file it ships is there:
no dpkg needed, and a loader copied in by hand counts too. The loader packages' files are
pxetui/loaders.py's, the lab's are pxetui/lab's, so each path is written once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pxetui.lab.content import BUSYBOX, DI_ROOT, MEMTEST_ISO
from pxetui.lab.qemu import AAVMF_DIR, OVMF_DIR
from pxetui.loaders import DI_ARM64_PACKAGE, GRUB_EFI_MODULES, SPECS


@dataclass(frozen=True)
class Package:
    name: str
    adds: str  # what works once it is installed
    probes: tuple[str, ...]  # any one existing means installed


def _loader_files(package: str) -> tuple[str, ...]:
    return tuple(c for s in SPECS if s.package == package for c in s.candidates)


PACKAGES: tuple[Package, ...] = (
    Package("pxelinux", "BIOS clients boot PXELINUX (pxelinux.0; lpxelinux.0 fetches over HTTP)",
            _loader_files("pxelinux")),
    Package("syslinux-common", "PXELINUX's menu and modules (ldlinux.c32, menu.c32), memdisk for disk images",
            _loader_files("syslinux-common")),
    Package("ipxe", "iPXE for BIOS (undionly.kpxe) and x64 UEFI (ipxe.efi, snponly.efi): menus and "
            "kernels over HTTP, per-client scripts", _loader_files("ipxe")),
    Package("grub-efi-amd64-signed", "x64 UEFI clients boot Debian's signed GRUB, with shim under Secure Boot",
            _loader_files("grub-efi-amd64-signed")),
    Package("shim-signed", "Secure Boot clients: shimx64.efi (Microsoft-signed) and MokManager",
            _loader_files("shim-signed")),
    Package("grub-efi-amd64-bin", "an unsigned x64 UEFI GRUB built with grub-mkimage (needs grub-common) "
            "when the signed one is missing", (GRUB_EFI_MODULES + "/linux.mod",)),
    Package("qemu-system-x86", "`pxetui lab`: the virtual machine that boots from pxetui",
            ("/usr/bin/qemu-system-x86_64",)),
    Package("ovmf", "`pxetui lab --uefi` and `--secure-boot`: UEFI firmware for the lab VM",
            (str(OVMF_DIR / "OVMF_CODE_4M.fd"), str(OVMF_DIR / "OVMF_CODE.fd"))),
    Package("debian-installer-12-netboot-amd64", "the lab's kernel and `--content debian-installer`",
            (str(DI_ROOT),)),
    Package(DI_ARM64_PACKAGE, "ARM64 UEFI clients: Debian's signed arm64 shim (shimaa64.efi, "
            "bootnetaa64.efi) and GRUB (grubaa64.efi), the arm64 installer's kernel and initrd, "
            "`pxetui lab --arch arm64`", _loader_files(DI_ARM64_PACKAGE)),
    Package("qemu-system-arm", "`pxetui lab --arch arm64`: the ARM64 virtual machine (qemu-system-aarch64)",
            ("/usr/bin/qemu-system-aarch64",)),
    Package("qemu-efi-aarch64", "`pxetui lab --arch arm64`: AAVMF, the ARM64 UEFI firmware for the lab VM",
            (str(AAVMF_DIR / "AAVMF_CODE.fd"),)),
    Package("busybox-static", "the lab's default content: a busybox system that calls back when booted",
            (str(BUSYBOX),)),
    Package("memtest86+", "`pxetui lab --content memtest`, and a memtest entry to import",
            (str(MEMTEST_ISO),)),
    Package("gcc", "with python3-dev: the C pump for lock-step TFTP, built when pxetui is installed",
            ("/usr/bin/gcc",)),
    Package("tcpdump", "record or read what pxetui analyzes (`pxetui analyze FILE.pcap`)", ("/usr/bin/tcpdump",)),
)


def installed(pkg: Package, prefix: str | Path = "/") -> bool:
    root = Path(prefix)
    return any((root / p.lstrip("/")).exists() for p in pkg.probes)


def describe_lines(prefix: str | Path = "/") -> list[str]:
    """One line per package: installed or the apt-get line, and what it adds."""
    return [f"{p.name:34} {'installed' if installed(p, prefix) else 'missing  '}  {p.adds}"
            + ("" if installed(p, prefix) else f" (apt-get install {p.name})") for p in PACKAGES]
