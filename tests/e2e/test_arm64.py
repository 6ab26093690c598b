"""ARM64 UEFI end to end: AAVMF (qemu-efi-aarch64) on `qemu-system-aarch64 -M virt` under TCG
network-boots from pxetui with nothing copied into the served root: Debian's signed arm64 shim,
its GRUB, and the installer's kernel and initrd all come from debian-installer-12-netboot-arm64
where the package installs them (pxetui.loaders). One boot: ARM64 TCG is slow
(docs/FIELD-NOTES.md "ARM64 UEFI").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from labkit import boot

from pxetui.lab import content
from pxetui.library.provider import ARM64_GRUB_CFG
from pxetui.loaders import ARM64_INITRD, ARM64_KERNEL

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(480)]

KERNEL_LINE = "Booting Linux on physical CPU"  # the arm64 kernel's first line (ttyAMA0)


def test_aavmf_pxe_shim_grub_installer(tmp_path: Path) -> None:
    b = boot(tmp_path, "arm64-installer", firmware="aavmf", content_kind="debian-installer",
             memory_mb=1024, timeout=360)
    # The installer's kernel ran on the PL011 console and its first screen was drawn there.
    assert KERNEL_LINE in b.console
    assert content.INSTALLER_MARKER in b.console
    assert "Select a language" in b.console or "Low memory" in b.console
    assert b.console.index(KERNEL_LINE) < b.console.index(content.INSTALLER_MARKER)
    # AAVMF said it is an ARM64 UEFI PXE client; the policy's arm64 default is the shim.
    discover = b.of("DhcpPacket", mac=b.mac, msg_type="DISCOVER", service="dhcp")
    assert discover and discover[0]["arch"] == 11, discover[:1]
    decisions = [e for e in b.of("BootDecision", mac=b.mac) if e.get("boot_file")]
    assert decisions and decisions[0]["boot_file"] == "shimaa64.efi", decisions[:1]
    # shim -> grubaa64.efi by bare name -> the arm64 menu at that GRUB's prefix -> kernel, initrd
    done = [e["path"].lstrip("/") for e in b.of("TransferFinished", protocol="tftp", service="tftp")]
    chain = ["shimaa64.efi", "grubaa64.efi", ARM64_GRUB_CFG, ARM64_KERNEL, ARM64_INITRD]
    assert all(p in done for p in chain), done
    assert [done.index(p) for p in chain] == sorted(done.index(p) for p in chain), done
    # served from the package, not from a copy in the root
    assert not (tmp_path / "lab" / "root" / "debian-installer").exists()
    b.assert_timeline("bootloader", "menu", "kernel", "initrd", booted=False)


# EDK2's switches for its network boot options (fw_cfg): only "UEFI HTTPv4" is left.
HTTP_ONLY = ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
             "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
GRUB_WELCOME = "Welcome to GRUB!"


def test_aavmf_http_boot_shim_loads_grub_over_http(tmp_path: Path) -> None:
    # AAVMF offers UEFI HTTP boot: option 93 = 19 with vendor class HTTPClient gets the arm64
    # shim as a URL, and shim fetches grubaa64.efi by bare name from the same server over HTTP.
    # Debian 12's GRUB goes no further on an HTTP-booted device (docs/FIELD-NOTES.md "ARM64
    # UEFI"), so this boot ends at GRUB's banner.
    b = boot(tmp_path, "arm64-http-boot", firmware="aavmf", content_kind="debian-installer",
             memory_mb=1024, timeout=240, marker=GRUB_WELCOME, vm_args=HTTP_ONLY)
    assert GRUB_WELCOME in b.console
    discover = b.of("DhcpPacket", mac=b.mac, msg_type="DISCOVER", service="dhcp")
    assert discover and discover[0]["arch"] == 19, discover[:1]
    assert discover[0]["vendor_class"].startswith("HTTPClient"), discover[0]
    decisions = [e for e in b.of("BootDecision", mac=b.mac) if e.get("boot_file")]
    assert decisions and decisions[0]["boot_file"].endswith("/shimaa64.efi"), decisions[:1]
    assert decisions[0]["boot_file"].startswith("http://"), decisions[0]
    done = [e["path"].lstrip("/") for e in b.of("TransferFinished", protocol="http", service="http")]
    assert "shimaa64.efi" in done and "grubaa64.efi" in done, done
    assert done.index("shimaa64.efi") < done.index("grubaa64.efi"), done
    assert not b.of("TransferStarted", protocol="tftp", service="tftp"), "HTTP boot used TFTP"
    b.assert_timeline("offer", "bootloader", booted=False)
