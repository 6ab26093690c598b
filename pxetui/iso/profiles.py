"""Distribution detection and kernel arguments, from an ISO's file index.

One function per family; each recognises its layout and returns menu entries whose paths are
served paths (`iso/<name>/...`) and whose arguments are `{http}` templates. Entries boot on
BIOS and x64 UEFI (the model's default `archs`) unless they name others. The families and
their arguments follow docs/FIELD-NOTES.md, "Booting ISO-derived content over HTTP (kernel arguments
by family)".
"""

from __future__ import annotations

import configparser
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from pxetui.iso.reader import IsoIndex
from pxetui.menus.model import Entry


@dataclass
class Detection:
    family: str  # ubuntu-live | ubuntu-server | debian-live | debian-installer | fedora-installer
    #              fedora-live | arch | systemrescue | alpine | memtest86+ | windows | unknown | data
    label: str
    entries: list[Entry] = field(default_factory=list)
    root_fs: str | None = None  # the squashfs / install image the kernel fetches, when there is one
    notes: list[str] = field(default_factory=list)


class _Iso:
    """Case-insensitive lookups over the index, and served paths for a library name."""

    def __init__(self, index: IsoIndex, name: str) -> None:
        self.index, self.name = index, name
        self.lower = {p.lower(): p for p in index.files}

    def has(self, path: str) -> str | None:
        return self.lower.get(path.lower())

    def glob(self, pattern: str) -> list[str]:
        pat = pattern.lower()
        return sorted(p for low, p in self.lower.items() if fnmatch.fnmatchcase(low, pat))

    def served(self, path: str) -> str:
        return f"iso/{self.name}/{path}"

    @property
    def tree(self) -> str:
        return f"{{http}}/iso/{self.name}"

    @property
    def whole(self) -> str:
        return f"{{http}}/iso/{self.name}.iso"

    def text(self, path: str, limit: int = 65536) -> str:
        real = self.has(path)
        if real is None:
            return ""
        try:
            return self.index.read(real, limit).decode("utf-8", "replace")
        except OSError:
            return ""

    def size(self, path: str) -> int:
        f = self.index.get(path)
        return f.size if f else 0

    def label(self, fallback: str) -> str:
        info = self.text(".disk/info", 256).strip().splitlines()
        if info and info[0].strip():
            return info[0].strip()
        return self.index.volume_id or fallback


def _ram_note(iso: _Iso, squashfs: str | None, whole: bool = False) -> str:
    """docs/FIELD-NOTES.md: live systems copy the squashfs (or casper, the whole ISO) into RAM."""
    size = iso.index.iso_size if whole else (iso.size(squashfs) if squashfs else 0)
    if not size:
        return ""
    need = 2 * size / (1 << 30)
    what = "the whole ISO" if whole else squashfs
    return f"copies {what} into RAM: give clients at least {need:.1f} GiB"


def ubuntu(iso: _Iso) -> Detection | None:
    kernel = next((p for p in ("casper/vmlinuz", "casper/vmlinuz.efi", "casper/hwe-vmlinuz")
                   if iso.has(p)), None)
    initrd = next((p for p in ("casper/initrd", "casper/initrd.lz", "casper/initrd.gz", "casper/hwe-initrd")
                   if iso.has(p)), None)
    if kernel is None or initrd is None:
        return None
    label = iso.label("Ubuntu")
    squash = iso.glob("casper/*.squashfs")
    server = "server" in label.lower() or any("server" in s.lower() for s in squash)
    k, i = iso.served(iso.has(kernel) or kernel), [iso.served(iso.has(initrd) or initrd)]
    note = _ram_note(iso, None, whole=True)
    if server:
        # subiquity: the initrd fetches the whole ISO into a RAM disk (casper wants the ISO).
        ramdisk_kib = iso.index.iso_size // 1024 + 65536
        args = (f"root=/dev/ram0 ramdisk_size={ramdisk_kib} ip=dhcp url={iso.whole} "
                "cloud-config-url=/dev/null")
        e = Entry(id=iso.name, label=label, kernel=k, initrds=i, args=args, source_iso=iso.name,
                  notes=note,
                  seed_args=f"autoinstall ds=nocloud-net;s={{http}}/seed/{iso.name}/")
        return Detection("ubuntu-server", label, [e], root_fs=f"{iso.name}.iso", notes=[note])
    args = f"boot=casper ip=dhcp netboot=url url={iso.whole}"
    e = Entry(id=iso.name, label=label, kernel=k, initrds=i, args=args, source_iso=iso.name,
              notes=note)
    return Detection("ubuntu-live", label, [e], root_fs=f"{iso.name}.iso", notes=[note])


def debian_live(iso: _Iso) -> Detection | None:
    kernels = [p for p in iso.glob("live/vmlinuz*") if not p.lower().endswith(".efi")]
    initrds = iso.glob("live/initrd*")
    squash = iso.has("live/filesystem.squashfs")
    if not kernels or not initrds or squash is None:
        return None
    # Pair the kernel and initrd of the same version (live/vmlinuz-6.1.0-9-amd64 ...).
    kernel, initrd = kernels[0], initrds[0]
    for k in kernels:
        suffix = k.split("vmlinuz", 1)[1]
        match = next((i for i in initrds if i.split("initrd", 1)[1].removeprefix(".img") == suffix), None)
        if match:
            kernel, initrd = k, match
            break
    label = iso.label("Debian live")
    note = _ram_note(iso, squash)
    args = f"boot=live components fetch={iso.tree}/{squash}"  # live-boot brings the network up
    e = Entry(id=iso.name, label=label, kernel=iso.served(kernel), initrds=[iso.served(initrd)],
              args=args, source_iso=iso.name, notes=note)
    return Detection("debian-live", label, [e], root_fs=squash, notes=[note])


def debian_installer(iso: _Iso) -> Detection | None:
    pairs = [("debian-installer/amd64/linux", "debian-installer/amd64/initrd.gz", ""),
             ("linux", "initrd.gz", ""),  # mini.iso: the netboot installer on a CD
             ("install.amd/vmlinuz", "install.amd/initrd.gz",
              "this is the CD installer: its initrd looks for the installation medium on a local "
              "drive; for a network install use the netboot initrd (debian-installer netboot)")]
    found = next(((iso.has(k), iso.has(i), c) for k, i, c in pairs if iso.has(k) and iso.has(i)), None)
    if found is None:
        return None
    k, i, caveat = found
    assert k is not None and i is not None
    label = iso.label("Debian installer")
    e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)], args="",
              source_iso=iso.name, notes=caveat,
              seed_args=f"auto=true priority=critical url={{http}}/seed/{iso.name}/preseed.cfg")
    return Detection("debian-installer", label, [e], notes=[caveat] if caveat else [])


def _treeinfo_label(iso: _Iso) -> str:
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read_string(iso.text(".treeinfo"))
    except configparser.Error:
        return ""
    for sect, name_key, ver_key in (("release", "name", "version"), ("general", "family", "version")):
        if cp.has_section(sect) and cp.has_option(sect, name_key):
            return f"{cp.get(sect, name_key)} {cp.get(sect, ver_key, fallback='')}".strip()
    return ""


def fedora(iso: _Iso) -> Detection | None:
    k, i = iso.has("images/pxeboot/vmlinuz"), iso.has("images/pxeboot/initrd.img")
    if not k or not i:
        return None
    label = _treeinfo_label(iso) or iso.label("Fedora")
    live = iso.has("LiveOS/squashfs.img")
    stage2 = iso.has("images/install.img")
    if live and not stage2:
        note = _ram_note(iso, live)
        args = f"root=live:{iso.tree}/{live} rd.live.image ip=dhcp"
        e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)], args=args,
                  source_iso=iso.name, notes=note)
        return Detection("fedora-live", label, [e], root_fs=live, notes=[note])
    # anaconda: the served ISO tree is the install repository (.treeinfo, images/install.img).
    args = f"inst.repo={iso.tree} ip=dhcp"
    e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)], args=args,
              source_iso=iso.name,
              seed_args=f"inst.ks={{http}}/seed/{iso.name}/ks.cfg")
    return Detection("fedora-installer", label, [e], root_fs=stage2)


def _archiso(iso: _Iso, base: str, kernel: str, initrd: str, ucode: tuple[str, ...],
             family: str, fallback: str) -> Detection | None:
    k, i = iso.has(f"{base}/{kernel}"), iso.has(f"{base}/{initrd}")
    if not k or not i:
        return None
    micro = [iso.served(p) for u in ucode if (p := iso.has(u))]  # microcode goes first
    label = iso.label(fallback)
    sfs = iso.glob(f"{base.split('/')[0]}/x86_64/*.sfs")
    note = _ram_note(iso, sfs[0] if sfs else None)
    args = f"archisobasedir={base.split('/')[0]} archiso_http_srv={iso.tree}/ ip=dhcp"
    e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[*micro, iso.served(i)],
              args=args, source_iso=iso.name, notes=note)
    return Detection(family, label, [e], root_fs=sfs[0] if sfs else None, notes=[note])


def arch(iso: _Iso) -> Detection | None:
    return _archiso(iso, "arch/boot/x86_64", "vmlinuz-linux", "initramfs-linux.img",
                    ("arch/boot/intel-ucode.img", "arch/boot/amd-ucode.img"), "arch", "Arch Linux")


def systemrescue(iso: _Iso) -> Detection | None:
    return _archiso(iso, "sysresccd/boot/x86_64", "vmlinuz", "sysresccd.img",
                    ("sysresccd/boot/intel_ucode.img", "sysresccd/boot/amd_ucode.img"),
                    "systemrescue", "SystemRescue")


def alpine(iso: _Iso) -> Detection | None:
    if not iso.has(".alpine-release"):
        return None
    for k in iso.glob("boot/vmlinuz-*"):
        flavor = k.split("vmlinuz-", 1)[1]
        i, modloop = iso.has(f"boot/initramfs-{flavor}"), iso.has(f"boot/modloop-{flavor}")
        if i and modloop:
            break
    else:
        return None
    release = iso.text(".alpine-release", 64).strip()
    label = f"Alpine Linux {release}".strip() if release else iso.label("Alpine Linux")
    args = f"ip=dhcp alpine_repo={iso.tree}/apks modloop={iso.tree}/{modloop}"
    e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)], args=args,
              source_iso=iso.name)
    return Detection("alpine", label, [e], root_fs=modloop)


def _linux_header(iso: _Iso, path: str) -> bool:
    """The x86 Linux boot protocol magic `HdrS` at 0x202 (memtest86+ 6 images carry it)."""
    real = iso.has(path)
    if real is None:
        return False
    try:
        head = iso.index.read(real, 0x206)
    except OSError:
        return False
    return len(head) >= 0x206 and head[0x202:0x206] == b"HdrS"


def memtest(iso: _Iso) -> Detection | None:
    named = [p for p in iso.index.files if "memtest" in p.lower()]
    if not named and not iso.index.volume_id.upper().startswith("MT86"):
        return None
    label = "Memtest86+"
    bios = next((p for p in named if not p.lower().endswith(".efi") and _linux_header(iso, p)), None)
    if bios is None and _linux_header(iso, "boot/floppy.img"):
        # memtest86+ 6.x ISO: the floppy image is memtest.bin padded to 1.44 MB; the padding
        # is ignored by the Linux loader (the header gives the image size).
        bios = iso.has("boot/floppy.img")
    efi = next((p for p in named if p.lower().endswith(".efi")), None) or iso.has("EFI/BOOT/bootx64.efi")
    entries = []
    if bios:
        entries.append(Entry(id=f"{iso.name}-bios", label=label, kernel=iso.served(bios),
                             args="console=ttyS0,115200", archs=["bios"], source_iso=iso.name))
    if efi:
        # memtest86+ reads console= from its EFI load options too (seen in QEMU/OVMF).
        entries.append(Entry(id=f"{iso.name}-uefi", label=label, kind="efi", kernel=iso.served(efi),
                             args="console=ttyS0,115200", archs=["uefi64"], source_iso=iso.name))
    if not entries:
        return None
    return Detection("memtest86+", label, entries)


def windows(iso: _Iso) -> Detection | None:
    need = {"bootmgr": "bootmgr", "BCD": "boot/bcd", "boot.sdi": "boot/boot.sdi",
            "boot.wim": "sources/boot.wim"}
    found = {n: iso.has(p) for n, p in need.items()}
    if not all(found.values()):
        return None
    named = [f"{n}={iso.served(p)}" for n, p in found.items() if p]
    efi = iso.has("efi/boot/bootx64.efi")
    if efi:
        named.insert(0, f"bootx64.efi={iso.served(efi)}")
    label = iso.label("Windows PE")
    note = "boots through iPXE + wimboot (https://ipxe.org/wimboot; not packaged in Debian)"
    e = Entry(id=iso.name, label=label, kind="wimboot", kernel="wimboot", initrds=named,
              source_iso=iso.name, notes=note)
    return Detection("windows", label, [e], root_fs=found["boot.wim"], notes=[note])


def unknown(iso: _Iso) -> Detection | None:
    """An El Torito image we cannot take apart: boot the whole ISO (iPXE sanboot, memdisk),
    plus whatever its isolinux menu names, for the user to complete by hand."""
    if not iso.index.el_torito:
        return None
    label = iso.label(iso.name)
    entries: list[Entry] = []
    cfg = next((p for p in ("isolinux.cfg", "isolinux/isolinux.cfg", "syslinux.cfg",
                            "syslinux/syslinux.cfg", "boot/isolinux/isolinux.cfg") if iso.has(p)), None)
    if cfg:
        entries += _from_isolinux(iso, cfg)
    entries.append(Entry(id=f"{iso.name}-image", label=f"{label} (whole image)", kind="iso",
                         kernel=f"iso/{iso.name}.iso", source_iso=iso.name,
                         needs_review=True,
                         notes="boots the whole image from RAM (iPXE sanboot, PXELINUX memdisk); "
                               "works for small images that do not look for their CD afterwards"))
    return Detection("unknown", label, entries,
                     notes=["unknown layout: check the entries and complete them by hand"])


def _from_isolinux(iso: _Iso, cfg_path: str) -> list[Entry]:
    from pxetui.menus.parse_pxelinux import parse_text

    base = cfg_path.rsplit("/", 1)[0] if "/" in cfg_path else ""

    def find(name: str) -> str | None:
        """A path the config names: from the image's root, else next to the config."""
        return iso.has(name.lstrip("/")) or (iso.has(f"{base}/{name}") if base else None)

    def include(name: str) -> str | None:
        real = find(name)
        return iso.text(real) if real else None

    parsed = parse_text(iso.text(cfg_path), cfg_path, include)
    out = []
    for e in parsed.menu.entries:
        if e.kind != "linux":
            continue
        real = find(e.kernel)
        if real is None:
            continue
        initrds = [iso.served(r) for i in e.initrds if (r := find(i))]
        out.append(Entry(id=f"{iso.name}-{e.id}", label=e.label, kernel=iso.served(real),
                         initrds=initrds, args=e.args, archs=["bios"], source_iso=iso.name,
                         needs_review=True, notes=f"from the image's {cfg_path}"))
    return out


DETECTORS: tuple[Callable[[_Iso], Detection | None], ...] = (
    ubuntu, debian_live, fedora, arch, systemrescue, alpine, debian_installer, memtest, windows,
    unknown,
)


def detect(index: IsoIndex, name: str) -> Detection:
    """The family and menu entries for an indexed image stored in the library as `name`."""
    iso = _Iso(index, name)
    for fn in DETECTORS:
        found = fn(iso)
        if found is not None:
            found.notes = [n for n in found.notes if n]
            return found
    return Detection("data", iso.label(name), [],
                     notes=["no boot loader (El Torito) and no known layout: served as files only"])

