"""A live ISO in Fedora's layout for the lab, booted through dracut's real live path.

The image is what livemedia-creator makes for Fedora, RHEL, Rocky and Alma live media:
`LiveOS/squashfs.img` is a squashfs holding `LiveOS/rootfs.img` (an ext4 image, the root),
`images/pxeboot/vmlinuz` and `initrd.img`, a `.treeinfo`, and an El Torito boot catalog. The
kernel is the lab's (Debian's, package debian-installer-12-netboot-amd64; the same build as
linux-image-<version>, whose /lib/modules dracut needs); the initrd is made here by dracut
(Debian packages dracut-core, dracut-live, dracut-network) with dmsquash-live, livenet and
network-legacy. Given `root=live:<http URL of the squashfs> rd.live.image ip=dhcp`, livenet
fetches the squashfs with curl, dmsquash-live loop-mounts it, puts a dm snapshot over
`LiveOS/rootfs.img` as /dev/mapper/live-rw and switch_root runs the root's /sbin/init
(docs/FIELD-NOTES.md, "The dracut live path").

The root is busybox: its /sbin/init prints MARKER and its root device on the console, calls
back over the address dracut's DHCP gave (the network stays up across switch_root) and powers
off. It carries /etc/os-release: systemd's switch-root in a systemd initrd refuses a root
without one.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from pxetui.iso import testiso
from pxetui.lab import content
from pxetui.lab.network import LabError

DRACUT = Path("/usr/bin/dracut")
DRACUT_LIVE = Path("/usr/lib/dracut/modules.d/90dmsquash-live")
DRACUT_NETWORK = Path("/usr/lib/dracut/modules.d/90livenet")
MARKER = "PXETUI-DRACUT-LIVE-BOOTED"
ROOT_LINE = "PXETUI-DRACUT-LIVE-ROOT"  # followed by the root's /proc/mounts line
CMDLINE_LINE = "PXETUI-DRACUT-LIVE-CMDLINE"  # followed by the kernel command line it booted with
POWEROFF = "PXETUI-DRACUT-LIVE-POWEROFF"
VOLUME_ID = "Fedora-WS-Live-40-1-14"
# What the entry needs beyond pxetui's generated arguments: the console the test reads, no
# emergency shell waiting for a key on failure, and the callback /sbin/init makes.
EXTRA_ARGS = "console=ttyS0 rd.shell=0 pxetui_callback={callback}"

# dracut modules: the three the live path needs (their dependencies come along: network,
# url-lib with curl, dm, overlayfs, img-lib), bash for dracut's scripts. No systemd in the
# initrd (dracut's own init is smaller and faster to start under TCG), no plymouth.
MODULES = "bash dmsquash-live livenet network-legacy"
OMIT = "plymouth systemd systemd-initrd dracut-systemd i18n"
# The network module takes every wired NIC driver (35 MB of drivers/net/ethernet alone); the
# lab's VM has virtio-net. The root image's filesystem is a module in Debian's kernel.
OMIT_DRIVER_DIRS = ("drivers/net/ethernet", "drivers/net/usb", "drivers/net/phy", "drivers/thunderbolt",
                    "fs/dlm")
ADD_DRIVERS = "virtio_net virtio_pci ext4 isofs"

ROOT_INIT = f"""#!/bin/busybox sh
export PATH=/bin
busybox mount -t proc proc /proc
busybox mount -t sysfs sys /sys
echo "{MARKER} $(. /etc/os-release; echo "$PRETTY_NAME")"
echo "{ROOT_LINE} $(busybox grep ' / ' /proc/mounts | busybox tail -n 1)"
echo "{CMDLINE_LINE} $(busybox cat /proc/cmdline)"
cb=""
for arg in $(busybox cat /proc/cmdline); do
  case "$arg" in pxetui_callback=*) cb="${{arg#pxetui_callback=}}" ;; esac
done
{content.callback_function("busybox ")}# dracut's DHCP configured the interface; it stays up in the new root.
[ -n "$cb" ] && callback
echo "{POWEROFF}"
busybox poweroff -f
"""

OS_RELEASE = """NAME="pxetui dracut live"
ID=pxetui-live
ID_LIKE=fedora
VERSION_ID=1
PRETTY_NAME="pxetui dracut live test root"
"""


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what} took more than {timeout:.0f}s") from exc
    if r.returncode != 0:
        raise LabError(f"{what} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-1500:]}")


def missing() -> list[str]:
    """What is missing to build the image, each with its Debian package."""
    need = [(DRACUT, "dracut-core"), (DRACUT_LIVE, "dracut-live"), (DRACUT_NETWORK, "dracut-network"),
            (content.KERNEL, "debian-installer-12-netboot-amd64"), (content.BUSYBOX, "busybox-static")]
    out = [f"{p} (Debian package {pkg})" for p, pkg in need if not p.exists()]
    for tool, pkg in (("mksquashfs", "squashfs-tools"), ("mkfs.ext4", "e2fsprogs"), ("xorriso", "xorriso"),
                      ("curl", "curl"), ("dhclient", "isc-dhcp-client"), ("dmsetup", "dmsetup")):
        if shutil.which(tool) is None:
            out.append(f"{tool} (Debian package {pkg})")
    if not out:
        version = content.kernel_version()
        if not (content.MODULES_DIR / version / "modules.dep").exists():
            out.append(f"{content.MODULES_DIR / version} (Debian package linux-image-{version})")
    return out


def build_initrd(out: Path, version: str, timeout: float = 300) -> Path:
    """dracut's initrd for `version`: not host-only (a live image boots on any machine)."""
    kernel_dir = content.MODULES_DIR / version / "kernel"
    omit = sorted({p.name.split(".ko")[0] for d in OMIT_DRIVER_DIRS for p in (kernel_dir / d).rglob("*.ko*")})
    _run([str(DRACUT), "--quiet", "--force", "--no-hostonly", "--no-hostonly-cmdline", "--kver", version,
          "--modules", MODULES, "--omit", OMIT, "--omit-drivers", " ".join(omit),
          "--add-drivers", ADD_DRIVERS, "--compress", "gzip", str(out)], "dracut", timeout)
    return out


def build_squashfs(out: Path, work: Path, timeout: float = 120) -> Path:
    """LiveOS/squashfs.img holding LiveOS/rootfs.img: an ext4 image of the busybox root."""
    tree = work / "root"
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "run", "tmp"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(content.BUSYBOX, tree / "bin/busybox")
    (tree / "bin/busybox").chmod(0o755)
    (tree / "bin/sh").symlink_to("busybox")
    (tree / "sbin/init").write_text(ROOT_INIT)
    (tree / "sbin/init").chmod(0o755)
    (tree / "etc/os-release").write_text(OS_RELEASE)
    live = work / "squash/LiveOS"
    live.mkdir(parents=True)
    _run(["mkfs.ext4", "-q", "-F", "-L", "Anaconda", "-d", str(tree), str(live / "rootfs.img"), "16M"],
         "mkfs.ext4", timeout)
    _run(["mksquashfs", str(work / "squash"), str(out), "-noappend", "-no-progress", "-quiet"],
         "mksquashfs", timeout)
    return out


def treeinfo() -> bytes:
    """A productmd .treeinfo naming the pxeboot kernel and initrd (no stage 2: a live image)."""
    return "\n".join([
        "[header]", "type = productmd.treeinfo", "version = 1.2", "",
        "[release]", "name = Fedora", "short = Fedora", "version = 40", "",
        "[general]", "family = Fedora", "version = 40", "arch = x86_64", "variant = Workstation", "",
        "[tree]", "arch = x86_64", "platforms = x86_64", "variants = Workstation", "",
        "[images-x86_64]", "kernel = images/pxeboot/vmlinuz", "initrd = images/pxeboot/initrd.img", "",
        ""]).encode()


def build_iso(out: Path, timeout: float = 420) -> Path:
    """The whole image; LabError names what failed or is missing."""
    lacking = missing()
    if lacking:
        raise LabError("cannot build the dracut live image, missing: " + "; ".join(lacking))
    version = content.kernel_version()
    with tempfile.TemporaryDirectory(prefix="pxetui-dracut-") as tmp:
        work = Path(tmp)
        initrd = build_initrd(work / "initrd.img", version, timeout)
        squash = build_squashfs(work / "squashfs.img", work)
        files: dict[str, testiso.FileData] = {
            **testiso.layout("fedora-live"),  # the vendor's grub.cfg files, as the ISO has them
            "images/pxeboot/vmlinuz": content.KERNEL, "images/pxeboot/initrd.img": initrd,
            "LiveOS/squashfs.img": squash, ".treeinfo": treeinfo(),
        }
        return testiso.build(out, files, volid=VOLUME_ID, boot_image=testiso.BOOT_IMAGES["fedora-live"],
                             hybrid=True, timeout=120)
