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


# Boot configuration files as each vendor's ISO has them (same paths, syntax and kernel
# arguments; written for these fixtures from the vendors' documented formats, trimmed to the
# entries that matter). Detection must pick the kernel and initrds these configs name.
_UBUNTU_GRUB = b"""set timeout=30

loadfont unicode

set menu_color_normal=white/black
set menu_color_highlight=black/light-gray

menuentry "Try or Install Ubuntu" {
	set gfxpayload=keep
	linux	/casper/vmlinuz  --- quiet splash
	initrd	/casper/initrd
}
menuentry "Ubuntu (safe graphics)" {
	set gfxpayload=keep
	linux	/casper/vmlinuz  nomodeset  --- quiet splash
	initrd	/casper/initrd
}
grub_platform
if [ "$grub_platform" = "efi" ]; then
menuentry 'Boot from next volume' {
	exit 1
}
fi
"""
_UBUNTU_SERVER_GRUB = b"""set timeout=30

loadfont unicode

set menu_color_normal=white/black
set menu_color_highlight=black/light-gray

menuentry "Try or Install Ubuntu Server" {
	set gfxpayload=keep
	linux	/casper/vmlinuz  ---
	initrd	/casper/initrd
}
menuentry "Ubuntu Server with the HWE kernel" {
	set gfxpayload=keep
	linux	/casper/hwe-vmlinuz  ---
	initrd	/casper/hwe-initrd
}
"""
_DEBIAN_LIVE_CFG = b"""label live-amd64
	menu label ^Live system (amd64)
	menu default
	linux /live/vmlinuz-6.1.0-18-amd64
	initrd /live/initrd.img-6.1.0-18-amd64
	append boot=live components quiet splash findiso=${iso_path}

label live-amd64-failsafe
	menu label Live system (amd64 fail-safe mode)
	linux /live/vmlinuz-6.1.0-18-amd64
	initrd /live/initrd.img-6.1.0-18-amd64
	append boot=live components memtest noapic noapm nodma nomce nosmp nosplash vga=788
"""
_DEBIAN_LIVE_GRUB = b"""source /boot/grub/config.cfg

menuentry "Live system (amd64)" --hotkey=l {
	linux	/live/vmlinuz-6.1.0-18-amd64 boot=live components quiet splash findiso=${iso_path}
	initrd	/live/initrd.img-6.1.0-18-amd64
}
"""
_DEBIAN_CD_TXT = b"""default install
label install
	menu label ^Install
	kernel /install.amd/vmlinuz
	append vga=788 initrd=/install.amd/initrd.gz --- quiet
"""


def _treeinfo(family: str, name: str, version: str, variants: tuple[str, ...], label: str) -> bytes:
    """productmd .treeinfo 1.2, as Pungi writes it for Fedora/RHEL/Rocky/Alma."""
    lines = ["[checksums]", "images/efiboot.img = sha256:" + "0" * 64,
             "images/install.img = sha256:" + "1" * 64,
             "images/pxeboot/initrd.img = sha256:" + "2" * 64,
             "images/pxeboot/vmlinuz = sha256:" + "3" * 64, "",
             "[general]", "arch = x86_64", f"family = {family}", f"name = {family} {version}",
             f"packagedir = {variants[0] + '/Packages' if variants[0] != '.' else 'Packages'}",
             "platforms = x86_64,xen", "timestamp = 1713225600", f"variant = {label}",
             f"version = {version}", "",
             "[header]", "type = productmd.treeinfo", "version = 1.2", "",
             "[images-x86_64]", "efiboot.img = images/efiboot.img",
             "initrd = images/pxeboot/initrd.img", "kernel = images/pxeboot/vmlinuz", "",
             "[images-xen]", "initrd = images/pxeboot/initrd.img", "kernel = images/pxeboot/vmlinuz", "",
             "[release]", f"name = {name}", f"short = {name.split()[0]}", f"version = {version}", "",
             "[stage2]", "mainimage = images/install.img", "",
             "[tree]", "arch = x86_64", "build_timestamp = 1713225600", "platforms = x86_64,xen",
             f"variants = {','.join(v if v != '.' else label for v in variants)}", ""]
    for v in variants:
        vid = v if v != "." else label
        lines += [f"[variant-{vid}]", f"id = {vid}", f"name = {vid}",
                  f"packages = {v}/Packages" if v != "." else "packages = Packages",
                  f"repository = {v}" if v != "." else "repository = .", "type = variant",
                  f"uid = {vid}", ""]
    return "\n".join(lines).encode()


def _anaconda_grub(title: str, volid: str, extra: str = "") -> bytes:
    return f"""set default="1"

function load_video {{
  insmod all_video
}}

load_video
set gfxpayload=keep
insmod gzio
insmod part_gpt
insmod ext2
insmod chain

set timeout=60
search --no-floppy --set=root -l '{volid}'

menuentry 'Install {title}' --class fedora --class gnu-linux --class gnu --class os {{
	linux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid}{extra} quiet
	initrd /images/pxeboot/initrd.img
}}
menuentry 'Test this media & install {title}' --class fedora --class gnu-linux --class gnu --class os {{
	linux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={volid}{extra} rd.live.check quiet
	initrd /images/pxeboot/initrd.img
}}
""".encode()


_FEDORA_LIVE_GRUB = b"""set default="0"
set timeout=10
search --no-floppy --set=root -l 'Fedora-WS-Live-40-1-14'

menuentry 'Start Fedora-Workstation-Live 40' --class fedora --class gnu-linux --class gnu --class os {
	linux /images/pxeboot/vmlinuz root=live:CDLABEL=Fedora-WS-Live-40-1-14  rd.live.image quiet rhgb
	initrd /images/pxeboot/initrd.img
}
menuentry 'Test this media & start Fedora-Workstation-Live 40' --class fedora --class gnu-linux --class gnu --class os {
	linux /images/pxeboot/vmlinuz root=live:CDLABEL=Fedora-WS-Live-40-1-14  rd.live.image rd.live.check quiet
	initrd /images/pxeboot/initrd.img
}
"""
_ARCH_SYS = b"""LABEL arch64
TEXT HELP
Boot the Arch Linux install medium on BIOS.
It allows you to install Arch Linux or perform system maintenance.
ENDTEXT
MENU LABEL Arch Linux install medium (x86_64, BIOS)
LINUX /arch/boot/x86_64/vmlinuz-linux
INITRD /arch/boot/intel-ucode.img,/arch/boot/amd-ucode.img,/arch/boot/x86_64/initramfs-linux.img
APPEND archisobasedir=arch archisosearchuuid=2024-06-01-10-20-30-00
"""
_ARCH_LOADER = b"""title    Arch Linux install medium (x86_64, UEFI)
sort-key 01
linux    /arch/boot/x86_64/vmlinuz-linux
initrd   /arch/boot/intel-ucode.img
initrd   /arch/boot/amd-ucode.img
initrd   /arch/boot/x86_64/initramfs-linux.img
options  archisobasedir=arch archisosearchuuid=2024-06-01-10-20-30-00
"""
_SYSRESCUE_SYS = b"""LABEL sysresccd
TEXT HELP
Boot the SystemRescue live medium.
ENDTEXT
MENU LABEL Boot SystemRescue using default options
LINUX /sysresccd/boot/x86_64/vmlinuz
INITRD /sysresccd/boot/intel_ucode.img,/sysresccd/boot/amd_ucode.img,/sysresccd/boot/x86_64/sysresccd.img
APPEND archisobasedir=sysresccd archisolabel=RESCUE1102 iomem=relaxed
"""
_ALPINE_SYSLINUX = b"""SERIAL 0 115200
TIMEOUT 10
PROMPT 1
DEFAULT lts

LABEL lts
MENU LABEL Linux lts
KERNEL /boot/vmlinuz-lts
INITRD /boot/initramfs-lts
FDTDIR /boot/dtbs-lts
APPEND modules=loop,squashfs,sd-mod,usb-storage quiet console=tty0 console=ttyS0,115200
"""
_SUSE_ISOLINUX = b"""default harddisk

# hard disk
label harddisk
  localboot -2

# install
label linux
  kernel linux
  append initrd=initrd splash=silent showopts

# rescue
label rescue
  kernel linux
  append initrd=initrd splash=silent rescue=1 showopts

implicit	1
display		message
prompt		1
timeout		600
"""
_SUSE_GRUB = b"""set btrfs_relative_path="y"
export btrfs_relative_path
default=1
timeout=60

menuentry 'Installation' --class opensuse --class gnu-linux --class gnu --class os {
  set gfxpayload=keep
  echo 'Loading kernel ...'
  linux /boot/x86_64/loader/linux splash=silent
  echo 'Loading initial ramdisk ...'
  initrd /boot/x86_64/loader/initrd
}
"""
_SUSE_ONLINE_GRUB = b"""set timeout=10
search --no-floppy --set=root --label Leap-16.0-online-installer-x86_64

menuentry "Install openSUSE Leap 16.0" --class os --unrestricted {
    set gfxpayload=keep
    echo Loading kernel...
    linux ($root)/boot/x86_64/loader/linux root=live:CDLABEL=Leap-16.0-online-installer-x86_64 rd.live.image splash=silent
    echo Loading initrd...
    initrd ($root)/boot/x86_64/loader/initrd
}
"""
_PVE_CD_INFO = b"""PRODUCT='pve'
PRODUCTLONG='Proxmox VE'
RELEASE='8.2'
ISORELEASE='2'
ISONAME='proxmox-ve'
"""
_PVE_GRUB = b"""insmod gzio
insmod iso9660
set timeout=10
menuentry 'Install Proxmox VE (Graphical)' --class debian --class gnu-linux --class gnu --class os {
    echo 'Loading Proxmox VE Installer ...'
    linux /boot/linux26 ro ramdisk_size=16777216 rw quiet splash=silent
    echo 'Loading initial ramdisk ...'
    initrd /boot/initrd.img
}
menuentry 'Install Proxmox VE (Terminal UI)' --class debian --class gnu-linux --class gnu --class os {
    echo 'Loading Proxmox VE Console Installer ...'
    linux /boot/linux26 ro ramdisk_size=16777216 rw quiet splash=silent proxtui vga=788
    echo 'Loading initial ramdisk ...'
    initrd /boot/initrd.img
}
"""
# ESXi 8.0: every module of the installer, as BOOT.CFG names them (files are upper case 8.3).
_ESXI_MODULES = ("jumpstrt.gz", "useropts.gz", "features.gz", "k.b00", "uc_intel.b00", "uc_amd.b00",
                 "uc_hygon.b00", "procfs.b00", "vmx.v00", "vim.v00", "tpm.v00", "sb.v00", "s.v00",
                 "bnxtnet.v00", "ne1000.v00", "nvme_pci.v00", "vmkusb.v00", "imgdb.tgz",
                 "basemisc.tgz", "resvibs.tgz", "esxiodpt.tgz", "imgpayld.tgz")


def _esxi_boot_cfg() -> bytes:
    """BOOT.CFG and EFI/BOOT/BOOT.CFG are the same text on ESXi 8 ISOs."""
    lines = ["bootstate=0", "title=Loading ESXi installer", "timeout=5", "prefix=",
             "kernel=/b.b00", "kernelopt=runweasel cdromBoot",
             "modules=" + " --- ".join(f"/{m}" for m in _ESXI_MODULES),
             "build=8.0.2-0.0.22380479", "updated=0"]
    return ("\n".join(lines) + "\n").encode()


_ESXI_ISOLINUX = b"""DEFAULT menu.c32
MENU TITLE ESXi-8.0U2-22380479-standard Boot Menu
NOHALT 1
PROMPT 0
TIMEOUT 80
LABEL install
  KERNEL mboot.c32
  APPEND -c boot.cfg
  MENU LABEL ESXi-8.0U2-22380479-standard ^Installer
LABEL hddboot
  LOCALBOOT 0x80
  MENU LABEL ^Boot from local disk
"""

_LAYOUTS: dict[str, dict[str, bytes]] = {
    "ubuntu-live": {  # 24.04 desktop: GRUB on BIOS and UEFI, layered squashfs images
        ".disk/info": b'Ubuntu 24.04 LTS "Noble Numbat" - Release amd64 (20240424)',
        "casper/vmlinuz": fake_kernel("ubuntu"), "casper/initrd": _blob("initrd"),
        "casper/minimal.squashfs": _blob("squashfs"),
        "casper/minimal.standard.squashfs": _blob("squashfs"),
        "casper/minimal.standard.live.squashfs": _blob("squashfs"),
        "casper/install-sources.yaml": b"- default: true\n  id: ubuntu-desktop\n",
        "boot/grub/grub.cfg": _UBUNTU_GRUB, "EFI/boot/bootx64.efi": b"MZ fake shim",
        "EFI/boot/grubx64.efi": b"MZ fake grub",
    },
    "ubuntu-server": {  # 24.04 live-server (subiquity)
        ".disk/info": b'Ubuntu-Server 24.04 LTS "Noble Numbat" - Release amd64 (20240423)',
        "casper/vmlinuz": fake_kernel("ubuntu"), "casper/initrd": _blob("initrd"),
        "casper/hwe-vmlinuz": fake_kernel("ubuntu-hwe"), "casper/hwe-initrd": _blob("initrd"),
        "casper/ubuntu-server-minimal.squashfs": _blob("squashfs"),
        "casper/ubuntu-server-minimal.ubuntu-server.squashfs": _blob("squashfs"),
        "casper/ubuntu-server-minimal.ubuntu-server.installer.squashfs": _blob("squashfs"),
        "boot/grub/grub.cfg": _UBUNTU_SERVER_GRUB, "EFI/boot/bootx64.efi": b"MZ fake shim",
    },
    "debian-live": {
        ".disk/info": b"Debian GNU/Linux 12 Live (standard)",
        "live/vmlinuz-6.1.0-18-amd64": fake_kernel("debian"),
        "live/initrd.img-6.1.0-18-amd64": _blob("initrd"),
        "live/filesystem.squashfs": _blob("squashfs"),
        "isolinux/isolinux.cfg": b"include menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n",
        "isolinux/menu.cfg": b"menu hshift 0\nmenu width 82\ninclude live.cfg\n",
        "isolinux/live.cfg": _DEBIAN_LIVE_CFG, "boot/grub/grub.cfg": _DEBIAN_LIVE_GRUB,
    },
    "debian-installer": {  # mini.iso: the netboot installer on a CD
        "linux": fake_kernel("d-i"), "initrd.gz": _blob("initrd"),
        "isolinux.cfg": b"default install\nlabel install\n\tkernel linux\n\tappend vga=788 initrd=initrd.gz --- quiet\n",
    },
    "debian-installer-cd": {
        ".disk/info": b"Debian GNU/Linux 12.5.0 \"Bookworm\" - Official amd64 NETINST",
        "install.amd/vmlinuz": fake_kernel("d-i"), "install.amd/initrd.gz": _blob("initrd"),
        "isolinux/txt.cfg": _DEBIAN_CD_TXT,
    },
    "fedora-installer": {  # Fedora 40 Everything netinst: stage 2 only, packages from a mirror
        ".treeinfo": _treeinfo("Fedora", "Fedora", "40", (".",), "Everything"),
        ".discinfo": b"1713225600.000000\n40\nx86_64\n",
        "images/pxeboot/vmlinuz": fake_kernel("fedora"), "images/pxeboot/initrd.img": _blob("initrd"),
        "images/install.img": _blob("stage2"), "images/eltorito.img": _blob("eltorito"),
        "EFI/BOOT/grub.cfg": _anaconda_grub("Fedora 40", "Fedora-E-dvd-x86_64-40"),
        "boot/grub2/grub.cfg": _anaconda_grub("Fedora 40", "Fedora-E-dvd-x86_64-40"),
    },
    "rocky-dvd": {  # Rocky Linux 9 DVD (RHEL and Alma have this layout): BaseOS + AppStream
        ".treeinfo": _treeinfo("Rocky Linux", "Rocky Linux", "9.4", ("AppStream", "BaseOS"), "BaseOS"),
        ".discinfo": b"1714867200.000000\n9.4\nx86_64\n",
        "images/pxeboot/vmlinuz": fake_kernel("rocky"), "images/pxeboot/initrd.img": _blob("initrd"),
        "images/install.img": _blob("stage2"),
        "BaseOS/repodata/repomd.xml": b"<repomd/>\n", "AppStream/repodata/repomd.xml": b"<repomd/>\n",
        "EFI/BOOT/grub.cfg": _anaconda_grub("Rocky Linux 9.4", "Rocky-9-4-x86_64-dvd"),
        "isolinux/isolinux.cfg": b"default vesamenu.c32\ntimeout 600\nlabel linux\n  menu label ^Install Rocky Linux 9.4\n"
                                 b"  kernel vmlinuz\n  append initrd=initrd.img inst.stage2=hd:LABEL=Rocky-9-4-x86_64-dvd quiet\n",
    },
    "fedora-live": {  # Fedora 40 Workstation Live
        "images/pxeboot/vmlinuz": fake_kernel("fedora"), "images/pxeboot/initrd.img": _blob("initrd"),
        "LiveOS/squashfs.img": _blob("squashfs"), "boot/grub2/grub.cfg": _FEDORA_LIVE_GRUB,
        "EFI/BOOT/grub.cfg": _FEDORA_LIVE_GRUB,
    },
    "arch": {
        "arch/boot/x86_64/vmlinuz-linux": fake_kernel("arch"),
        "arch/boot/x86_64/initramfs-linux.img": _blob("initramfs"),
        "arch/boot/intel-ucode.img": _blob("ucode"), "arch/boot/amd-ucode.img": _blob("ucode"),
        "arch/x86_64/airootfs.sfs": _blob("sfs"), "arch/x86_64/airootfs.sha512": b"0" * 128 + b"  airootfs.sfs\n",
        "arch/version": b"2024.06.01\n",
        "boot/syslinux/archiso_sys-linux.cfg": _ARCH_SYS,
        "loader/entries/01-archiso-x86_64-linux.conf": _ARCH_LOADER,
    },
    "systemrescue": {
        "sysresccd/boot/x86_64/vmlinuz": fake_kernel("sysrescue"),
        "sysresccd/boot/x86_64/sysresccd.img": _blob("initramfs"),
        "sysresccd/boot/intel_ucode.img": _blob("ucode"), "sysresccd/boot/amd_ucode.img": _blob("ucode"),
        "sysresccd/x86_64/airootfs.sfs": _blob("sfs"), "sysresccd/VERSION": b"11.02\n",
        "boot/syslinux/sysresccd_sys.cfg": _SYSRESCUE_SYS,
    },
    "alpine": {
        ".alpine-release": b"3.20.0\n", "boot/vmlinuz-lts": fake_kernel("alpine"),
        "boot/initramfs-lts": _blob("initramfs"), "boot/modloop-lts": _blob("modloop"),
        "boot/config-lts": _blob("config"), "apks/x86_64/APKINDEX.tar.gz": _blob("apkindex"),
        "apks/.boot_repository": b"", "boot/syslinux/syslinux.cfg": _ALPINE_SYSLINUX,
    },
    "opensuse-installer": {  # Leap 15.6 DVD / NET: linuxrc, the tree is the install source
        "boot/x86_64/loader/linux": fake_kernel("suse"), "boot/x86_64/loader/initrd": _blob("initrd"),
        "boot/x86_64/loader/isolinux.cfg": _SUSE_ISOLINUX, "EFI/BOOT/grub.cfg": _SUSE_GRUB,
        "media.1/media": b"openSUSE - openSUSE-Leap-15.6-DVD-x86_64-Build710.3-Media\nBuild710.3\n1\n",
        "media.1/products": b"/ openSUSE-Leap 15.6-0\n",
        "EFI/BOOT/bootx64.efi": b"MZ fake shim",
    },
    "opensuse-online": {  # Leap 16 online installer (Agama): a kiwi live image
        "boot/x86_64/loader/linux": fake_kernel("suse"), "boot/x86_64/loader/initrd": _blob("initrd"),
        "LiveOS/squashfs.img": _blob("squashfs"), "EFI/BOOT/grub.cfg": _SUSE_ONLINE_GRUB,
        "boot/grub2/grub.cfg": _SUSE_ONLINE_GRUB, "EFI/BOOT/bootx64.efi": b"MZ fake shim",
    },
    "proxmox": {  # Proxmox VE 8.2
        ".cd-info": _PVE_CD_INFO, ".pve-cd-id.txt": b"a1b2c3d4\n",
        "boot/linux26": fake_kernel("pve"), "boot/initrd.img": _blob("initrd"),
        "boot/grub/grub.cfg": _PVE_GRUB, "boot/memtest86+x64.bin": fake_kernel("memtest"),
        "pve-base.squashfs": _blob("squashfs"), "pve-installer.squashfs": _blob("squashfs"),
        "proxmox/packages/pve-manager_8.2.2_amd64.deb": _blob("deb"),
        "EFI/BOOT/BOOTX64.EFI": b"MZ fake shim",
    },
    "esxi": {  # ESXi 8.0U2: ISO9660 upper-case 8.3 names, no Rock Ridge (build it with those off)
        "BOOT.CFG": _esxi_boot_cfg(), "EFI/BOOT/BOOT.CFG": _esxi_boot_cfg(),
        "MBOOT.C32": b"\xb8\xfe\x4c\xcd\x21 fake mboot.c32", "MENU.C32": _blob("menu.c32"),
        "ISOLINUX.CFG": _ESXI_ISOLINUX, "EFI/BOOT/BOOTX64.EFI": b"MZ fake mboot.efi",
        "EFI/BOOT/CRYPTO64.EFI": b"MZ fake crypto", "B.B00": _blob("vmkernel"),
        **{m.upper(): _blob(m) for m in _ESXI_MODULES},
    },
    "memtest86+": {
        "boot/memtest.bin": fake_kernel("memtest"), "EFI/BOOT/BOOTX64.EFI": b"MZ fake memtest efi",
    },
    "windows": {
        "bootmgr": _blob("bootmgr"), "bootmgr.efi": b"MZ fake bootmgr.efi", "boot/bcd": _blob("bcd"),
        "boot/boot.sdi": _blob("sdi"), "boot/etfsboot.com": _blob("etfsboot"),
        "efi/microsoft/boot/bcd": _blob("bcd"), "sources/boot.wim": _blob("wim"),
        "efi/boot/bootx64.efi": b"MZ fake bootmgfw", "setup.exe": b"MZ fake setup",
    },
    "unknown": {
        "isolinux/isolinux.cfg": b"DEFAULT tool\nLABEL tool\n  KERNEL /tool/kernel\n  APPEND quiet\n",
        "tool/kernel": fake_kernel("tool"),
    },
}
# Volume ids as the vendors set them (ISO9660 allows 32 characters; Joliet, on the UDF
# Windows image, 16).
VOLUME_IDS: dict[str, str] = {
    "ubuntu-live": "Ubuntu 24.04 LTS amd64", "ubuntu-server": "Ubuntu-Server 24.04 LTS amd64",
    "debian-live": "d-live 12.5.0 st amd64", "debian-installer": "ISOIMAGE",
    "debian-installer-cd": "Debian 12.5.0 amd64 n", "fedora-installer": "Fedora-E-dvd-x86_64-40",
    "rocky-dvd": "Rocky-9-4-x86_64-dvd", "fedora-live": "Fedora-WS-Live-40-1-14",
    "arch": "ARCH_202406", "systemrescue": "RESCUE1102", "alpine": "alpine-std 3.20.0 x86_64",
    "opensuse-installer": "openSUSE-Leap-15.6-DVD-x86_64710", "opensuse-online": "Leap-16.0-online-installer-x86",
    "proxmox": "PVE", "esxi": "ESXI-8.0U2-22380479-STANDARD", "memtest86+": "MT86PLUS_64",
    "windows": "CCCOMA_X64FRE_EN", "unknown": "TOOLDISK",
}
# The El Torito image each vendor's ISO boots on BIOS (what `build_family` makes bootable).
BOOT_IMAGES: dict[str, str] = {
    "ubuntu-live": "boot/grub/i386-pc/eltorito.img", "ubuntu-server": "boot/grub/i386-pc/eltorito.img",
    "fedora-installer": "images/eltorito.img", "fedora-live": "images/eltorito.img",
    "arch": "boot/syslinux/isolinux.bin", "systemrescue": "boot/syslinux/isolinux.bin",
    "alpine": "boot/syslinux/isolinux.bin", "opensuse-installer": "boot/x86_64/loader/isolinux.bin",
    "opensuse-online": "boot/x86_64/loader/eltorito.img", "proxmox": "boot/grub/i386-pc/eltorito.img",
    "esxi": "ISOLINUX.BIN",
}
FAMILIES = tuple(_LAYOUTS)


def layout(family: str) -> dict[str, bytes]:
    return dict(_LAYOUTS[family])


def build_family(out: str | Path, family: str) -> Path:
    """The family's test image as its vendor builds it: its El Torito image path, UDF for
    Windows, plain ISO9660 (no Rock Ridge or Joliet) for ESXi."""
    files = layout(family)
    volid = VOLUME_IDS.get(family, "PXETUI_TEST")
    if family == "windows":
        return build_udf(out, files, volid=volid)
    boot = BOOT_IMAGES.get(family, BOOT_IMAGE)
    if family == "esxi":
        return build(out, files, volid=volid, boot_image=boot, joliet=False, rock_ridge=False)
    return build(out, files, volid=volid, boot_image=boot)


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
