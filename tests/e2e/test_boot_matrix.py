"""Real firmware in QEMU (TCG) network-booting from pxetui's services and menus on the lab
network (pxetui.lab). Each test asserts a marker printed by the booted system on the serial
console, and the client's timeline as the engine's tracker saw it.

Wall times of each boot are appended to /tmp/pxetui-e2e-times.jsonl (PXETUI_E2E_TIMES).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from labkit import Booted, boot
from netns import require

from pxetui.lab import content

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(420)]


def tftp_paths(b: Booted) -> list[str]:
    return [e["path"].lstrip("/") for e in b.of("TransferStarted", protocol="tftp", service="tftp")]


def http_paths(b: Booted) -> list[str]:
    return [e["path"].lstrip("/") for e in b.of("TransferStarted", protocol="http", service="http")]


def assert_busybox_booted(b: Booted) -> None:
    # The booted initrd got its own address from the lab's DHCP and called back over HTTP.
    assert content.CALLBACK_OK in b.console
    assert b.of("BootCallback", mac=b.mac, stage="booted")


def test_bios_ipxe_rom_pxelinux(tmp_path: Path) -> None:
    # SeaBIOS + the NIC's iPXE ROM is the PXE client; it gets PXELINUX, which reads pxetui's
    # generated menu and fetches the kernel and initrd over TFTP.
    b = boot(tmp_path, "bios-pxelinux", boot_files={"ipxe": "pxelinux.0"})
    assert_busybox_booted(b)
    paths = tftp_paths(b)
    assert paths[0] == "pxelinux.0" and "pxelinux.cfg/default" in paths
    assert {"lab/vmlinuz", "lab/initrd.gz"} <= set(paths)
    b.assert_timeline("bootloader", "menu")


def test_uefi_ovmf_pxe_grub_windowsize(tmp_path: Path) -> None:
    # OVMF's own PXE client (virtio-net without an option ROM) -> GRUB -> kernel + initrd.
    b = boot(tmp_path, "uefi-grub", firmware="uefi")
    assert_busybox_booted(b)
    grub = [e for e in b.of("TransferStarted", protocol="tftp", service="tftp")
            if e["path"] == "grubx64.efi"]
    assert grub, f"GRUB was not fetched over TFTP: {tftp_paths(b)}"
    # docs/FIELD-NOTES.md: EDK2 asks for windowsize 4; the server must accept it in its OACK.
    assert any(int(e["options"].get("windowsize", 0)) == 4 for e in grub), [e["options"] for e in grub]
    assert {"grub/grub.cfg", "lab/vmlinuz", "lab/initrd.gz"} <= set(tftp_paths(b))
    assert b.of("DhcpPacket", mac=b.mac, msg_type="DISCOVER", service="dhcp")[0]["arch"] == 7
    b.assert_timeline("bootloader", "menu")


IPXE_LKRN = Path("/usr/lib/ipxe/ipxe.lkrn")


def test_bios_chainloads_ipxe_then_http_script(tmp_path: Path) -> None:
    # A real chainload from BIOS: the ROM runs PXELINUX from a hand-built pxelinux.cfg/default
    # in the TFTP root (it wins over the generated one), which loads iPXE (ipxe.lkrn, package
    # ipxe) over TFTP with a script as its initrd (netboot.xyz's way); that iPXE asks DHCP again
    # and chains pxetui's per-client HTTP script, which fetches the kernel and initrd over HTTP.
    require(IPXE_LKRN.exists(), f"needs {IPXE_LKRN} (Debian package ipxe)")
    cfg = b"DEFAULT chain\nPROMPT 0\nTIMEOUT 1\nLABEL chain\n  KERNEL ipxe.lkrn\n  INITRD chain.ipxe\n"
    script = b"#!ipxe\ndhcp\nchain http://${next-server}/boot.ipxe?mac=${net0/mac}&arch=${buildarch}\n"
    b = boot(tmp_path, "bios-ipxe-chain", boot_files={"ipxe": "pxelinux.0"},
             root_files={"pxelinux.cfg/default": cfg, "chain.ipxe": script,
                         "ipxe.lkrn": IPXE_LKRN.read_bytes()})
    assert_busybox_booted(b)
    assert tftp_paths(b)[:1] == ["pxelinux.0"]
    assert {"pxelinux.cfg/default", "ipxe.lkrn", "chain.ipxe"} <= set(tftp_paths(b)), tftp_paths(b)
    assert not {"lab/vmlinuz", "lab/initrd.gz"} & set(tftp_paths(b))
    assert {"boot.ipxe", "lab/vmlinuz", "lab/initrd.gz"} <= set(http_paths(b)), http_paths(b)
    # the chained iPXE announced itself and got the script, not a boot loader again (no loop)
    assert [p for p in b.of("DhcpPacket", mac=b.mac, direction="in", service="dhcp") if p.get("ipxe")]
    b.assert_timeline("bootloader", "menu")


def test_uefi_secure_boot_shim_signed_grub(tmp_path: Path) -> None:
    # OVMF with Secure Boot enforced and Microsoft's keys: Debian's shim (signed by Microsoft)
    # -> Debian's signed GRUB -> Debian's signed kernel.
    b = boot(tmp_path, "secureboot-shim", firmware="secureboot")
    assert_busybox_booted(b)
    assert content.SECUREBOOT_ON in b.console, "the kernel did not report Secure Boot enabled"
    paths = tftp_paths(b)
    assert paths.index("shimx64.efi") < paths.index("grubx64.efi")
    b.assert_timeline("bootloader", "menu")


def test_bios_ipxe_http_script(tmp_path: Path) -> None:
    # The iPXE ROM is recognised as iPXE (user class): it gets pxetui's HTTP script, then the
    # kernel and initrd over HTTP.
    b = boot(tmp_path, "bios-ipxe-http")
    assert_busybox_booted(b)
    assert {"boot.ipxe", "lab/vmlinuz", "lab/initrd.gz"} <= set(http_paths(b))
    assert not {"lab/vmlinuz", "lab/initrd.gz"} & set(tftp_paths(b))
    b.assert_timeline("menu")


def test_uefi_chainload_ipxe_http_script(tmp_path: Path) -> None:
    # OVMF's PXE client loads iPXE (snponly.efi) over TFTP; iPXE asks DHCP again as iPXE and
    # gets the HTTP script: kernel and initrd over HTTP.
    b = boot(tmp_path, "uefi-ipxe-chain", firmware="uefi", boot_files={"uefi64": "snponly.efi"})
    assert_busybox_booted(b)
    assert tftp_paths(b)[0] == "snponly.efi"
    assert {"boot.ipxe", "lab/vmlinuz", "lab/initrd.gz"} <= set(http_paths(b))
    ipxe_dhcp = [e for e in b.of("DhcpPacket", mac=b.mac, service="dhcp", direction="in") if e.get("ipxe")]
    assert ipxe_dhcp, "iPXE's own DHCP request was not seen"
    b.assert_timeline("bootloader", "menu")


def test_proxydhcp_bios(tmp_path: Path) -> None:
    # A separate dnsmasq hands out the addresses (10.77.0.150-199); pxetui only adds the boot
    # information (proxyDHCP) and serves PXELINUX, its menu, kernel and initrd.
    b = boot(tmp_path, "proxy-bios", dhcp="proxy", boot_files={"ipxe": "pxelinux.0"})
    assert_busybox_booted(b)
    addr = b.console.split("PXETUI-LAB-ADDRESS ", 1)[1].split("/", 1)[0]
    assert addr.startswith("10.77.0.1") and 150 <= int(addr.rsplit(".", 1)[1]) <= 199, addr
    assert not b.of("LeaseGranted", service="dhcp"), "pxetui leased an address in proxy mode"
    assert {"pxelinux.0", "pxelinux.cfg/default", "lab/vmlinuz"} <= set(tftp_paths(b))
    # The iPXE ROM asks without the broadcast flag, so the site server's ACK is unicast and
    # never reaches pxetui's interface (as on a switch). The client's broadcast REQUEST
    # (option 50) ties its address to its MAC: the "ack" stage stands for it, and every TFTP
    # transfer is this client's.
    stages = b.assert_timeline("bootloader", "menu", "offer")
    assert stages == ["discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd", "booted"], stages
    ack = next(s for s in b.of("ClientUpdate", mac=b.mac)[-1]["stages"] if s["stage"] == "ack")
    assert ack["detail"].startswith(addr), ack  # the address the site server gave


def test_proxydhcp_uefi(tmp_path: Path) -> None:
    # OVMF under proxyDHCP: pxetui's policy chains iPXE (docs/FIELD-NOTES.md: GRUB 2.06 under
    # proxyDHCP looks for its config on the wrong server), then the HTTP script.
    b = boot(tmp_path, "proxy-uefi", firmware="uefi", dhcp="proxy")
    assert_busybox_booted(b)
    addr = b.console.split("PXETUI-LAB-ADDRESS ", 1)[1].split("/", 1)[0]
    assert 150 <= int(addr.rsplit(".", 1)[1]) <= 199, addr
    assert not b.of("LeaseGranted", service="dhcp"), "pxetui leased an address in proxy mode"
    assert tftp_paths(b)[0] in ("ipxe.efi", "snponly.efi")
    assert {"boot.ipxe", "lab/vmlinuz", "lab/initrd.gz"} <= set(http_paths(b))
    b.assert_timeline("bootloader", "menu")


def test_debian_installer_netboot_tree(tmp_path: Path) -> None:
    # The installer's netboot tree served as it is; pxetui's menu adds console=ttyS0. iPXE
    # fetches the 40 MB initrd over HTTP; the installer's first screen reaches the console.
    b = boot(tmp_path, "debian-installer", content_kind="debian-installer", memory_mb=512)
    assert content.INSTALLER_MARKER in b.console
    assert "Low memory" in b.console or "Select a language" in b.console
    assert {"debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz"} <= set(http_paths(b))
    b.assert_timeline("menu", "kernel", "initrd", booted=False)


def test_memtest_iso_imported(tmp_path: Path) -> None:
    # Debian's memtest86+ ISO imported with `pxetui import`: PXELINUX boots the entry pxetui
    # generated, its image served out of the .iso; memtest's own screen reaches the console.
    b = boot(tmp_path, "memtest-iso", content_kind="memtest", boot_files={"ipxe": "pxelinux.0"})
    assert content.MEMTEST_MARKER in b.console
    assert any(p.startswith("iso/memtest/") for p in tftp_paths(b)), tftp_paths(b)
    # memtest's image (boot/floppy.img in the .iso) is no kernel by name; the tracker knows it
    # is one from the menu entry pxetui generated.
    b.assert_timeline("bootloader", "menu", "kernel", booted=False)
    files = b.files()
    assert [f["kind"] for f in files if f["path"].lower().endswith("boot/floppy.img")][:1] == ["kernel"], files


def test_live_boot_iso_imported(tmp_path: Path) -> None:
    # A live-boot style ISO (live/vmlinuz, live/initrd.img, live/filesystem.squashfs) imported
    # with `pxetui import`: detected as Debian live, its generated entry boots through PXELINUX
    # with the kernel and the initrd read straight out of the .iso (no mount, no extraction).
    b = boot(tmp_path, "live-iso", content_kind="live-iso", boot_files={"ipxe": "pxelinux.0"})
    assert_busybox_booted(b)
    paths = tftp_paths(b)
    assert paths[0] == "pxelinux.0" and "pxelinux.cfg/default" in paths
    assert {"iso/live/live/vmlinuz", "iso/live/live/initrd.img"} <= set(paths), paths
    b.assert_timeline("bootloader", "menu")


def test_memtest_iso_imported_uefi(tmp_path: Path) -> None:
    # The same imported ISO on UEFI: pxetui's GRUB menu chains memtest's EFI binary, served out
    # of the .iso over TFTP (the VM has a display adapter: memtest's EFI build needs GOP).
    b = boot(tmp_path, "memtest-iso-uefi", firmware="uefi", content_kind="memtest")
    assert content.MEMTEST_MARKER in b.console
    paths = tftp_paths(b)
    assert paths[0] == "grubx64.efi"
    assert any(p.lower().startswith("iso/memtest/efi/boot/") for p in paths), paths
    b.assert_timeline("bootloader", "menu", booted=False)
