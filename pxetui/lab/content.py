"""Boot content for the lab, built from Debian packages only.

`busybox`: the Debian installer's kernel (package debian-installer-12-netboot-amd64) with a
small initrd built here: static busybox (busybox-static), the NIC modules taken from the
installer's own initrd (so they match that kernel), and an /init that prints MARKER on the
serial console, gets an address with udhcpc, calls `<callback>/booted` (the per-boot callback
URL its menu put on the kernel command line, docs/SECURITY.md) and powers off. Built once per source version into a cache directory.

Also here: the Debian installer netboot tree (copied as it is), the memtest86+ ISO's path, and
the menu entries the lab puts into pxetui's own menu model. Boot loaders are not copied:
pxetui.loaders serves them from their Debian packages.
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pxetui.lab import cpio
from pxetui.lab.network import LabError
from pxetui.loaders import ARM64_INITRD, ARM64_KERNEL, DI_ARM64, DI_ARM64_PACKAGE
from pxetui.menus.model import Entry, Menu

DI_ROOT = Path("/usr/lib/debian-installer/images/12/amd64/text")
DI_ARCH = DI_ROOT / "debian-installer/amd64"
KERNEL = DI_ARCH / "linux"
DI_INITRD = DI_ARCH / "initrd.gz"
BUSYBOX = Path("/bin/busybox")
MEMTEST_ISO = Path("/usr/lib/memtest86+/memtest86+x64.iso")

MARKER = "PXETUI-LAB-BOOTED"
CALLBACK_OK = "PXETUI-LAB-CALLBACK-OK"
SECUREBOOT_ON = "PXETUI-LAB-SECUREBOOT-ON"
NETCONSOLE = "PXETUI-LAB-NETCONSOLE"  # written to /dev/kmsg once netconsole is loaded
POWEROFF = "PXETUI-LAB-POWEROFF"  # the last line /init prints: everything before it is final
# The booted system's "booted" callback: tries of at most this many seconds each. The lab's
# tests wait CALLBACK_WAIT for POWEROFF after the marker, which covers every try.
CALLBACK_TRIES, CALLBACK_TRY_SECONDS = 3, 20
CALLBACK_WAIT = CALLBACK_TRIES * CALLBACK_TRY_SECONDS + 30
# The title prefix of the installer's first screen as its newt frontend draws it on the serial
# console: "[!!] Select a language", or "[!!] Low memory" below ~780 MB of RAM.
INSTALLER_MARKER = "[!!] "
# memtest86+ 6 mirrors its screen on the serial console given console=ttyS0 (its ISO entry).
MEMTEST_MARKER = "Memtest86+ v"  # its own header (the menu label is plain "Memtest86+")
INSTALLER_ENTRY, PRESEED = "debian-installer", "preseed.cfg"  # the lab's d-i entry and its seed

# netconsole for the lab kernel (optional, netconsole_modules): configfs first, its dependency.
MODULES_DIR = Path("/lib/modules")
NETCONSOLE_MODULES = {"configfs": "fs/configfs/configfs.ko", "netconsole": "drivers/net/netconsole.ko"}
# Load order matters (insmod does no dependency resolution): virtio core, then the PCI
# transport, then failover before virtio_net. e1000 for QEMU's default NIC.
MODULES = ("virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
           "virtio_pci", "failover", "net_failover", "virtio_net", "e1000")

# The boot loaders the lab's boot paths need; pxetui.loaders serves them from their packages.
LOADERS = ("pxelinux.0", "ldlinux.c32", "menu.c32", "libutil.c32", "grubx64.efi", "shimx64.efi",
           "snponly.efi")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in __MODULES__; do insmod /lib/modules/$m.ko 2>/dev/null; done
echo "__MARKER__"
# The kernel logs this when the firmware booted it with Secure Boot enforced.
dmesg | grep -q "Secure boot enabled" && echo "__SECUREBOOT_ON__"
cb=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in pxetui_callback=*) cb="${arg#pxetui_callback=}" ;; esac
done
__CALLBACK__i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
if udhcpc -i eth0 -n -q -t 5 -T 2 -s /udhcpc.script; then
  echo "PXETUI-LAB-ADDRESS $(ip -4 -o addr show dev eth0 | awk '{print $4}')"
  # Debian builds netconsole as a module (docs/CLIENT-LOGS.md): load it with the netconsole=
  # value the menu put on the command line; the console level lets KERN_INFO lines out.
  nc=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^netconsole=//p')
  if [ -n "$nc" ] && [ -e /lib/modules/netconsole.ko ]; then
    dmesg -n 7
    insmod /lib/modules/configfs.ko 2>/dev/null
    insmod /lib/modules/netconsole.ko "netconsole=$nc" && echo "<6>__NETCONSOLE__ $nc" > /dev/kmsg
  fi
  [ -n "$cb" ] && callback
elif [ "${cb#http://[}" != "$cb" ]; then
  # An IPv6-only segment (`pxetui lab --ipv6`, docs/IPV6.md): no DHCPv6 client in busybox, but
  # the link-local address reaches the server on the prefix its RA marks on-link.
  callback
fi
echo "__POWEROFF__"
poweroff -f
"""

def callback_function(busybox: str = "") -> str:
    """The shell function `callback` the booted system runs (`$cb` set): its "booted" callback,
    CALLBACK_TRIES tries of CALLBACK_TRY_SECONDS each, as under TCG on a loaded host the guest
    can stall for half a minute mid-request. `busybox` ("busybox ") where its applets are not
    installed (the dracut test root, pxetui/lab/dracut.py). No wget -T: it crashes busybox 1.35
    (Debian 12) when the connection is refused."""
    tries = " ".join(str(i + 1) for i in range(CALLBACK_TRIES))
    return (f"callback() {{\n  for try in {tries}; do\n"
            f'    if {busybox}timeout {CALLBACK_TRY_SECONDS} {busybox}wget -q -O /dev/null "$cb/booted"; then\n'
            f'      echo "{CALLBACK_OK}"; return 0\n    fi\n  done\n  return 1\n}}\n')


UDHCPC_SCRIPT = r"""#!/bin/busybox sh
case "$1" in
  bound|renew) ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up ;;
esac
"""


@dataclass(frozen=True)
class Busybox:
    kernel: str  # paths relative to the served root
    initrd: str

    # console=ttyS0: the marker must reach the serial console the lab records. pxetui_callback
    # (no dot: not a module parameter) is read by /init from /proc/cmdline; `{callback}` is
    # filled in by pxetui's menu renderer with this boot's callback URL and token (empty for a
    # machine it cannot attribute: /init then does not call back).
    args: str = "console=ttyS0 loglevel=3 pxetui_callback={callback}"


def _need(path: Path, package: str) -> Path:
    if not path.exists():
        raise LabError(f"{path} is missing: install the Debian package {package}")
    return path


def kernel_version() -> str:
    """The installer kernel's version, from its initrd's module tree (lib/modules/<version>/):
    read once per initrd file (it decompresses the whole initrd)."""
    initrd = _need(DI_INITRD, "debian-installer-12-netboot-amd64")
    return _kernel_version(initrd, initrd.stat().st_mtime_ns)


@functools.cache
def _kernel_version(initrd: Path, mtime_ns: int) -> str:
    for member in cpio.read(initrd):
        parts = member.name.lstrip("./").split("/")
        if len(parts) > 3 and parts[:2] == ["lib", "modules"]:
            return parts[2]
    raise LabError(f"{initrd} has no lib/modules/<version>/: cannot tell its kernel's version")


def netconsole_modules(version: str) -> dict[str, Path]:
    """configfs and netconsole for the lab kernel, from /lib/modules/<version> (the Debian
    package linux-image-<version>): Debian builds both as modules (CONFIG_NETCONSOLE=m,
    netconsole needs configfs) and the installer's initrd carries neither. {} when absent:
    the lab initrd is then built without them and netconsole= stays inert."""
    base = MODULES_DIR / version / "kernel"
    found: dict[str, Path] = {}
    for name, rel in NETCONSOLE_MODULES.items():
        path = next((p for p in (base / f"{rel}{ext}" for ext in ("", ".xz", ".zst")) if p.exists()), None)
        if path is None:
            return {}
        found[name] = path
    return found


def _module_bytes(path: Path) -> bytes:
    """A module as insmod takes it: busybox's insmod reads neither .xz nor .zst."""
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    if path.suffix == ".zst":
        if shutil.which("zstd") is None:
            raise LabError(f"{path} is zstd-compressed: install the Debian package zstd")
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True, timeout=60).stdout
    return path.read_bytes()


def _fingerprint(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(INIT.encode() + UDHCPC_SCRIPT.encode() + " ".join(MODULES).encode())
    h.update(callback_function().encode())
    return h.hexdigest()[:16]


def build_initrd(cache_dir: Path) -> Path:
    """The busybox initrd (gzip newc), rebuilt only when a source or the script changes."""
    _need(BUSYBOX, "busybox-static")
    _need(DI_INITRD, "debian-installer-12-netboot-amd64")
    netconsole = netconsole_modules(kernel_version())
    out = cache_dir / f"lab-initrd-{_fingerprint(BUSYBOX, DI_INITRD, *netconsole.values())}.gz"
    if out.exists():
        return out
    wanted = {f"{m}.ko": m for m in MODULES}
    found: dict[str, bytes] = {}
    for member in cpio.read(DI_INITRD):
        base = member.name.rsplit("/", 1)[-1]
        if member.is_file and base in wanted and "/kernel/" in member.name:
            found[wanted[base]] = member.data
    missing = [m for m in MODULES if m not in found]
    if missing:
        raise LabError(f"{DI_INITRD} lacks kernel modules {', '.join(missing)}")
    w = cpio.Writer()
    for d in ("proc", "sys", "dev", "tmp", "lib/modules", "usr/share"):
        w.mkdir(d)
    w.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    w.symlink("bin/sh", "busybox")
    for m in MODULES:
        w.file(f"lib/modules/{m}.ko", found[m])
    for m, path in netconsole.items():
        w.file(f"lib/modules/{m}.ko", _module_bytes(path))
    init = (INIT.replace("__MODULES__", " ".join(MODULES)).replace("__MARKER__", MARKER)
            .replace("__CALLBACK_OK__", CALLBACK_OK).replace("__SECUREBOOT_ON__", SECUREBOOT_ON)
            .replace("__POWEROFF__", POWEROFF).replace("__NETCONSOLE__", NETCONSOLE)
            .replace("__CALLBACK__", callback_function()))
    w.file("init", init.encode(), 0o755)
    w.file("udhcpc.script", UDHCPC_SCRIPT.encode(), 0o755)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(w.finish())
    tmp.replace(out)
    return out


def _copy(src: Path, dst: Path) -> None:
    """Hard link when possible (same filesystem, no copy), else copy. Never a symlink: the
    servers refuse symlinks that lead out of their root."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def install_busybox(root: Path, cache_dir: Path) -> Busybox:
    """Kernel and initrd under `root/lab/`."""
    initrd = build_initrd(cache_dir)
    _copy(_need(KERNEL, "debian-installer-12-netboot-amd64"), root / "lab/vmlinuz")
    _copy(initrd, root / "lab/initrd.gz")
    return Busybox(kernel="lab/vmlinuz", initrd="lab/initrd.gz")


def install_debian_installer(root: Path) -> None:
    """The netboot tree as it is (files, not symlinks, so confinement keeps them). The tree's
    top-level `pxelinux.cfg` is a symlink to a directory and is not copied: pxetui renders
    pxelinux.cfg/default from its menu model instead."""
    _need(DI_ROOT, "debian-installer-12-netboot-amd64")
    for dirpath, _dirs, files in os.walk(DI_ROOT):
        for f in files:
            src = Path(dirpath) / f
            rel = src.relative_to(DI_ROOT)
            if src.is_symlink() and not src.resolve().is_relative_to(DI_ROOT.resolve()):
                continue
            _copy(src.resolve(), root / rel)


def busybox_menu(bb: Busybox) -> Menu:
    entry = Entry(id="lab-busybox", label="pxetui lab: kernel + busybox initrd", kernel=bb.kernel,
                  initrds=[bb.initrd], args=bb.args, archs=["bios", "uefi64"])
    return lab_menu(entry)


def installer_menu() -> Menu:
    """The installer tree's kernel and initrd with `console=ttyS0`, so its first screen is
    drawn on the serial console (its own menu sends it to the VGA screen). A preseed stored
    for the entry (pxetui.menus.seeds, `preseed.cfg`) adds d-i's automatic mode with its URL,
    which carries this boot's seed token (docs/SECURITY.md)."""
    entry = Entry(id=INSTALLER_ENTRY, label="Debian installer (netboot tree)",
                  kernel="debian-installer/amd64/linux", initrds=["debian-installer/amd64/initrd.gz"],
                  args="console=ttyS0,115200 priority=high ---", archs=["bios", "uefi64"],
                  seed_args=f"auto=true priority=critical url={{http}}/seed/{INSTALLER_ENTRY}/{PRESEED}")
    return lab_menu(entry)


def installer_menu_arm64() -> Menu:
    """The arm64 installer's kernel and initrd, served straight from the Debian package
    (pxetui.loaders; nothing is copied), with the console on the virt board's PL011 UART so its
    first screen reaches the serial console. Booted by shim -> grubaa64.efi, which reads this
    menu at debian-installer/arm64/grub/grub.cfg."""
    for f in ("bootnetaa64.efi", "grubaa64.efi", "linux", "initrd.gz"):
        _need(Path(DI_ARM64) / f, DI_ARM64_PACKAGE)
    return lab_menu(arm64_installer_entry())


def arm64_installer_entry() -> Entry:
    return Entry(id="debian-installer-arm64", label="Debian installer (arm64, netboot package)",
                 kernel=ARM64_KERNEL, initrds=[ARM64_INITRD],
                 args="console=ttyAMA0,115200 priority=high ---", archs=["arm64"])


def lab_menu(entry: Entry, menu: Menu | None = None) -> Menu:
    """`entry` as the default with a 1 s timeout (0 would wait for a key), menus on serial."""
    menu = menu or Menu()
    if menu.get(entry.id) is None:
        menu.add(entry)
    menu.default, menu.timeout, menu.serial = entry.id, 1, "0 115200"
    return menu
