"""Boot loaders installed on this machine, by the name a client asks for.

Each served name maps to the files Debian packages install (first existing wins) and the package
to install when none exists. x64 UEFI GRUB: Debian's signed network image (grubnetx64, prefix
`/grub`, so it reads `(tftp,<server>)/grub/grub.cfg`); without it, one is built with
`grub-mkimage` from grub-efi-amd64-bin into the state dir. shim loads `grubx64.efi` from next to
itself, named by the BOOTP file field (docs/FIELD-NOTES.md: shim reads only the field).

ARM64 UEFI: Debian ships no arm64 shim or GRUB for an amd64 machine, but the
architecture-independent debian-installer-12-netboot-arm64 holds a complete arm64 netboot tree:
its signed shim (bootnetaa64.efi, served as both `shimaa64.efi`, the arm64 default, and its own
name), `grubaa64.efi` at the root (shim asks for it by bare name, docs/FIELD-NOTES.md "ARM64
UEFI"), and the installer's kernel and initrd at the paths that tree's GRUB and pxetui's arm64
menu name (`debian-installer/arm64/...`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

SYSLINUX_BIOS = "/usr/lib/syslinux/modules/bios"
GRUB_EFI_MODULES = "/usr/lib/grub/x86_64-efi"
# The text installer's arm64 netboot tree (its gtk/ twin boots the graphical one).
DI_ARM64_ROOT = "/usr/lib/debian-installer/images/12/arm64/text"
DI_ARM64 = f"{DI_ARM64_ROOT}/debian-installer/arm64"
DI_ARM64_PACKAGE = "debian-installer-12-netboot-arm64"
# Served under these names (relative to the TFTP/HTTP root) from DI_ARM64.
ARM64_KERNEL = "debian-installer/arm64/linux"
ARM64_INITRD = "debian-installer/arm64/initrd.gz"
# Enough for network boot of Linux and EFI images; `(tftp)` is the server that sent GRUB.
GRUB_MODULES = ("tftp", "http", "efinet", "net", "normal", "linux", "configfile", "echo", "test",
                "chain", "efi_gop", "efi_uga", "all_video", "gfxterm", "serial", "terminal",
                "part_gpt", "part_msdos", "fat", "ext2", "iso9660", "search", "ls", "cat",
                "reboot", "halt", "sleep")


@dataclass(frozen=True)
class Spec:
    name: str  # what clients ask for, at the TFTP root
    purpose: str
    candidates: tuple[str, ...]
    package: str  # Debian package that installs it ("" = not packaged in Debian)
    hint: str = ""


SPECS: tuple[Spec, ...] = (
    Spec("pxelinux.0", "BIOS PXE boot loader", ("/usr/lib/PXELINUX/pxelinux.0",), "pxelinux"),
    Spec("lpxelinux.0", "BIOS PXE boot loader with HTTP", ("/usr/lib/PXELINUX/lpxelinux.0",), "pxelinux"),
    Spec("ldlinux.c32", "PXELINUX core module", (f"{SYSLINUX_BIOS}/ldlinux.c32",), "syslinux-common"),
    Spec("menu.c32", "PXELINUX text menu", (f"{SYSLINUX_BIOS}/menu.c32",), "syslinux-common"),
    Spec("vesamenu.c32", "PXELINUX graphical menu", (f"{SYSLINUX_BIOS}/vesamenu.c32",), "syslinux-common"),
    Spec("libutil.c32", "PXELINUX menu library", (f"{SYSLINUX_BIOS}/libutil.c32",), "syslinux-common"),
    Spec("libcom32.c32", "PXELINUX module library", (f"{SYSLINUX_BIOS}/libcom32.c32",), "syslinux-common"),
    Spec("memdisk", "boots whole disk/ISO images from RAM (BIOS)",
         ("/usr/lib/syslinux/memdisk",), "syslinux-common"),
    Spec("grubx64.efi", "GRUB network image for x64 UEFI (signed, for Secure Boot)",
         ("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",), "grub-efi-amd64-signed",
         "or grub-efi-amd64-bin, from which pxetui builds one with grub-mkimage"),
    Spec("shimx64.efi", "shim for Secure Boot (loads grubx64.efi)",
         ("/usr/lib/shim/shimx64.efi.signed", "/usr/lib/shim/shimx64.efi"), "shim-signed"),
    Spec("mmx64.efi", "MokManager (shim runs it when a signature is refused)",
         ("/usr/lib/shim/mmx64.efi.signed", "/usr/lib/shim/mmx64.efi"), "shim-signed"),
    Spec("undionly.kpxe", "iPXE for BIOS (uses the NIC's PXE stack)",
         ("/usr/lib/ipxe/undionly.kpxe",), "ipxe"),
    Spec("ipxe.efi", "iPXE for x64 UEFI (own drivers)", ("/usr/lib/ipxe/ipxe.efi", "/boot/ipxe.efi"), "ipxe"),
    Spec("snponly.efi", "iPXE for x64 UEFI (uses the firmware's network stack)",
         ("/usr/lib/ipxe/snponly.efi",), "ipxe"),
    Spec("shimaa64.efi", "shim for ARM64 UEFI, signed (loads grubaa64.efi)",
         ("/usr/lib/shim/shimaa64.efi.signed", f"{DI_ARM64}/bootnetaa64.efi"), DI_ARM64_PACKAGE),
    Spec("bootnetaa64.efi", "the same arm64 shim under the installer tree's name",
         (f"{DI_ARM64}/bootnetaa64.efi",), DI_ARM64_PACKAGE),
    Spec("grubaa64.efi", "GRUB network image for ARM64 UEFI (signed; reads debian-installer/arm64/grub/grub.cfg)",
         (f"{DI_ARM64}/grubaa64.efi",), DI_ARM64_PACKAGE),
    Spec(ARM64_KERNEL, "the Debian installer's arm64 kernel (for the arm64 menu)",
         (f"{DI_ARM64}/linux",), DI_ARM64_PACKAGE),
    Spec(ARM64_INITRD, "the Debian installer's arm64 initrd (for the arm64 menu)",
         (f"{DI_ARM64}/initrd.gz",), DI_ARM64_PACKAGE),
    Spec("wimboot", "Windows PE boot loader for iPXE", ("/usr/lib/ipxe/wimboot", "/usr/share/wimboot/wimboot"),
         "", "not packaged in Debian: put https://github.com/ipxe/wimboot/releases/latest/download/wimboot "
             "in the TFTP root"),
)
REQUIRED = ("pxelinux.0", "ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32", "grubx64.efi",
            "shimx64.efi", "undionly.kpxe", "ipxe.efi", "snponly.efi")


@dataclass
class Found:
    spec: Spec
    path: str | None

    def remedy(self) -> str:
        """What to install to get it (shown when it is missing)."""
        if self.spec.package:
            extra = f" ({self.spec.hint})" if self.spec.hint else ""
            return f"apt-get install {self.spec.package}{extra}"
        return self.spec.hint

    def describe(self, width: int = 14) -> str:
        if self.path:
            return f"{self.spec.name:{width}} {self.path}"
        return f"{self.spec.name:{width}} missing: {self.remedy()}"


@dataclass
class Loaders:
    found: dict[str, Found]
    modules_dir: str | None = None  # every *.c32 here is served at the root too
    built: list[str] = field(default_factory=list)

    def path(self, name: str) -> str | None:
        f = self.found.get(name)
        if f is not None:
            return f.path
        if self.modules_dir and name.endswith(".c32") and "/" not in name:
            p = os.path.join(self.modules_dir, name)
            return p if os.path.isfile(p) else None
        return None

    def missing(self, required: tuple[str, ...] = REQUIRED) -> list[Found]:
        return [self.found[n] for n in required if n in self.found and not self.found[n].path]

    def describe_lines(self) -> list[str]:
        width = max((len(n) for n in self.found), default=14)
        return [f.describe(width) for f in self.found.values()]

    def names(self) -> list[str]:
        return [n for n, f in self.found.items() if f.path]

    def layout(self, dest: str | Path) -> list[str]:
        """Copy the found loaders into `dest` (a TFTP root built by hand). Copies, not symlinks:
        the file server refuses symlinks that leave its root."""
        out = []
        d = Path(dest)
        d.mkdir(parents=True, exist_ok=True)
        for name in self.names():
            src = self.found[name].path
            assert src is not None
            target = d / name
            target.parent.mkdir(parents=True, exist_ok=True)  # debian-installer/arm64/...
            tmp = target.with_name(target.name + ".pxetui-new")
            shutil.copyfile(src, tmp)
            tmp.replace(target)
            out.append(name)
        return out


def find_loaders(prefix: str | Path = "/", state_dir: str | Path | None = None,
                 build_grub: bool = False) -> Loaders:
    """Look under `prefix` (tests point it at a fake tree). With `state_dir`, a GRUB image built
    earlier (or now, with `build_grub`) stands in for the signed one when that is missing."""
    root = Path(prefix)

    def under(p: str) -> Path:
        return root / p.lstrip("/")

    found: dict[str, Found] = {}
    for spec in SPECS:
        path = next((str(under(c)) for c in spec.candidates if under(c).is_file()), None)
        found[spec.name] = Found(spec, path)
    built: list[str] = []
    if found["grubx64.efi"].path is None and state_dir is not None:
        image = Path(state_dir) / "loaders" / "grubx64.efi"
        if not image.is_file() and build_grub:
            try:
                build_grub_image(image, modules_dir=under(GRUB_EFI_MODULES))
                built.append("grubx64.efi")
            except GrubBuildError:
                pass
        if image.is_file():
            found["grubx64.efi"] = Found(found["grubx64.efi"].spec, str(image))
    mods = under(SYSLINUX_BIOS)
    return Loaders(found, str(mods) if mods.is_dir() else None, built)


class GrubBuildError(RuntimeError):
    pass


def build_grub_image(out: str | Path, modules_dir: str | Path = GRUB_EFI_MODULES,
                     prefix: str = "(tftp)/grub", timeout: float = 60) -> Path:
    """An unsigned x64 UEFI network GRUB (grub-efi-amd64-bin) reading `<prefix>/grub.cfg`."""
    tool = shutil.which("grub-mkimage")
    if tool is None:
        raise GrubBuildError("grub-mkimage not found: apt-get install grub-common grub-efi-amd64-bin")
    if not Path(modules_dir, "normal.mod").is_file():
        raise GrubBuildError(f"{modules_dir}: no GRUB x86_64-efi modules: apt-get install grub-efi-amd64-bin")
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name of its own: the TFTP and HTTP services each build at start, maybe at
    # the same moment; each renames a complete image into place, never a half-written one.
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.building")
    mods = [m for m in GRUB_MODULES if Path(modules_dir, f"{m}.mod").is_file()]
    cmd = [tool, "-O", "x86_64-efi", "-d", str(modules_dir), "-p", prefix, "-o", str(tmp), *mods]
    try:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise GrubBuildError(f"grub-mkimage took over {timeout:.0f} s") from None
        if res.returncode != 0:
            raise GrubBuildError(f"grub-mkimage failed: {res.stderr.strip()[:500]}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
