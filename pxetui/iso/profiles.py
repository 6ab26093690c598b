"""Distribution detection and kernel arguments, from an ISO's file index.

One function per family; each recognises its layout and returns menu entries whose paths are
served paths (`iso/<name>/...`) and whose arguments are `{http}` templates. Entries boot on
BIOS and x64 UEFI (the model's default `archs`) unless they name others. The families and
their arguments follow docs/FIELD-NOTES.md, "Kernel arguments by family".
"""

from __future__ import annotations

import configparser
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from pxetui.iso.esxi import esxi_cfg_path
from pxetui.iso.reader import IsoIndex
from pxetui.menus.model import Entry


@dataclass
class Detection:
    family: str  # ubuntu-live | ubuntu-server | debian-live | debian-installer | fedora-installer
    #              fedora-live | arch | systemrescue | alpine | opensuse-installer | opensuse-live
    #              proxmox | esxi | memtest86+ | windows | unknown | data
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


_MIB = 1 << 20
# The least RAM each family is known to need (docs/FIELD-NOTES.md, "Live systems and RAM"): measured for what we
# boot in tests (Debian live and the Debian installer at 512 MiB), the vendor's minimum for the
# rest. A note never says less than this, whatever the image's size.
RAM_FLOOR_MIB: dict[str, int] = {
    "debian-live": 512, "debian-installer": 512, "alpine": 512, "arch": 1024, "systemrescue": 1024,
    "ubuntu-live": 2048, "ubuntu-server": 2048, "fedora-installer": 2048, "fedora-live": 2048,
    "opensuse-installer": 2048, "opensuse-live": 2048, "windows": 2048, "unknown": 256,
    "proxmox": 8192, "esxi": 8192,
}


def _size(mib: float) -> str:
    if mib >= 1024:
        return f"{mib / 1024:.1f} GiB"
    return f"{mib:.0f} MiB" if mib >= 1 else f"{mib * 1024:.0f} KiB"


def ram_need_mib(family: str, copied: int = 0, whole: int = 0) -> int:
    """Client RAM for a family: the floor, or more when an image is held in RAM (a copied
    squashfs is unpacked pages on top of its tmpfs copy: ~2x; a whole ISO is kept as is)."""
    need = RAM_FLOOR_MIB.get(family, 512)
    if copied:
        need = max(need, 256 + 2 * copied // _MIB)
    if whole:
        need = max(need, 1024 + whole // _MIB)
    return need


def _ram_note(iso: _Iso, family: str, copied: str | None = None, whole: bool = False) -> str:
    """What the import prints about RAM: the least to give clients, and what goes into RAM."""
    csize = iso.size(copied) if copied else 0
    wsize = iso.index.iso_size if whole else 0
    note = f"RAM: give clients at least {_size(ram_need_mib(family, csize, wsize))}"
    if whole:
        note += f"; loads the whole ISO ({_size(wsize / _MIB)}) into RAM"
    elif copied and csize:
        note += f"; copies {copied} ({_size(csize / _MIB)}) into RAM"
    return note


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
    note = _ram_note(iso, "ubuntu-server" if server else "ubuntu-live", whole=True)
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
    note = _ram_note(iso, "debian-live", squash)
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
    return Detection("debian-installer", label, [e], notes=[caveat, _ram_note(iso, "debian-installer")])


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
        note = _ram_note(iso, "fedora-live", live)
        args = f"root=live:{iso.tree}/{live} rd.live.image ip=dhcp"
        e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)], args=args,
                  source_iso=iso.name, notes=note)
        return Detection("fedora-live", label, [e], root_fs=live, notes=[note])
    # anaconda: a DVD's served tree is the install repository (.treeinfo names its variants'
    # repodata, images/install.img the stage 2); a netinst holds only the stage 2, and the
    # packages come from the mirror its kickstart names or the default one.
    note = _ram_note(iso, "fedora-installer", stage2)
    repo = iso.has("repodata/repomd.xml") or iso.glob("*/repodata/repomd.xml")
    what = "inst.repo" if repo else "inst.stage2"  # a netinst has no packages: stage 2 only
    args = f"{what}={iso.tree} ip=dhcp"
    e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)], args=args,
              source_iso=iso.name, notes=note,
              seed_args=f"inst.ks={{http}}/seed/{iso.name}/ks.cfg")
    return Detection("fedora-installer", label, [e], root_fs=stage2, notes=[note])


def _archiso(iso: _Iso, base: str, kernel: str, initrd: str, ucode: tuple[str, ...],
             family: str, fallback: str) -> Detection | None:
    k, i = iso.has(f"{base}/{kernel}"), iso.has(f"{base}/{initrd}")
    if not k or not i:
        return None
    micro = [iso.served(p) for u in ucode if (p := iso.has(u))]  # microcode goes first
    label = iso.label(fallback)
    sfs = iso.glob(f"{base.split('/')[0]}/x86_64/*.sfs")
    note = _ram_note(iso, family, sfs[0] if sfs else None)
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
    # modules=: what the ISO's own syslinux.cfg loads, loop and squashfs mount the modloop.
    args = (f"ip=dhcp alpine_repo={iso.tree}/apks modloop={iso.tree}/{modloop} "
            "modules=loop,squashfs,sd-mod,usb-storage")
    note = _ram_note(iso, "alpine", modloop)
    e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)], args=args,
              source_iso=iso.name, notes=note)
    return Detection("alpine", label, [e], root_fs=modloop, notes=[note])


def opensuse(iso: _Iso) -> Detection | None:
    k, i = iso.has("boot/x86_64/loader/linux"), iso.has("boot/x86_64/loader/initrd")
    if not k or not i:
        return None
    label = _products_label(iso) or iso.label("openSUSE")
    live = iso.has("LiveOS/squashfs.img")
    if live:
        # The online (Agama) installer is a kiwi live image: dracut fetches the whole .iso
        # into RAM and mounts LiveOS/squashfs.img from it (root=live: with an ISO URL).
        note = _ram_note(iso, "opensuse-live", whole=True)
        args = f"root=live:{iso.whole} rd.live.image ip=dhcp"
        e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)],
                  args=args, source_iso=iso.name, notes=note)
        return Detection("opensuse-live", label, [e], root_fs=f"{iso.name}.iso", notes=[note])
    # linuxrc: the served tree is the installation source (media.1/, the repository).
    note = _ram_note(iso, "opensuse-installer")
    args = f"install={iso.tree} netsetup=dhcp"
    e = Entry(id=iso.name, label=label, kernel=iso.served(k), initrds=[iso.served(i)], args=args,
              source_iso=iso.name, notes=note,
              seed_args=f"autoyast={{http}}/seed/{iso.name}/autoinst.xml")
    return Detection("opensuse-installer", label, [e], notes=[note])


def _products_label(iso: _Iso) -> str:
    """`media.1/products` lines are `<dir> <name> <version>`: `/ openSUSE-Leap 15.6-0`."""
    for line in iso.text("media.1/products", 4096).splitlines():
        parts = line.split()
        if len(parts) >= 2:
            return " ".join(parts[1:]).replace("-", " ", 1)
    return ""


def _cd_info(iso: _Iso) -> dict[str, str]:
    """`.cd-info` is shell assignments: PRODUCT='pve', PRODUCTLONG='Proxmox VE', RELEASE='8.2'."""
    out = {}
    for line in iso.text(".cd-info", 4096).splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip().isidentifier():
            out[key.strip()] = value.strip().strip("'\"")
    return out


def proxmox(iso: _Iso) -> Detection | None:
    k, i = iso.has("boot/linux26"), iso.has("boot/initrd.img")
    info = _cd_info(iso)
    if not k or not i or info.get("PRODUCT") not in ("pve", "pbs", "pmg"):
        return None
    label = f"{info.get('PRODUCTLONG', 'Proxmox')} {info.get('RELEASE', '')}".strip()
    note = _ram_note(iso, "proxmox", whole=True)
    # The installer looks for its ISO as /proxmox.iso in the initramfs: only iPXE can put a
    # file there under a name (`initrd <the .iso> /proxmox.iso`, a cpio wrapper it builds).
    e = Entry(id=iso.name, label=label, kernel=iso.served(k),
              initrds=[iso.served(i), f"/proxmox.iso=iso/{iso.name}.iso"],
              args="ramdisk_size=16777216 rw quiet splash=silent", source_iso=iso.name,
              notes=f"iPXE only (the ISO goes in as a named initrd); {note}", loaders=["ipxe"])
    return Detection("proxmox", label, [e], root_fs=f"{iso.name}.iso", notes=[
        "boots from iPXE menus only: PXELINUX and GRUB cannot hand it the ISO as /proxmox.iso",
        note])


def esxi(iso: _Iso) -> Detection | None:
    cfg, mboot = iso.has("BOOT.CFG"), iso.has("MBOOT.C32")
    efi_cfg, efi = iso.has("EFI/BOOT/BOOT.CFG"), iso.has("EFI/BOOT/BOOTX64.EFI")
    if not (cfg and mboot) and not (efi_cfg and efi):
        return None
    if "b.b00" not in iso.text(cfg or efi_cfg or "", 65536).lower():
        return None
    label = iso.index.volume_id or "VMware ESXi"
    note = _ram_note(iso, "esxi")
    entry_note = f"iPXE only (mboot fetches boot.cfg and its modules by URL); {note}"
    # mboot reads the rewritten boot.cfg (pxetui.iso.esxi): prefix= our HTTP tree, so every
    # module comes over HTTP; only iPXE can fetch mboot's -c URL (docs/FIELD-NOTES.md).
    entries = []
    if cfg and mboot:
        entries.append(Entry(id=f"{iso.name}-bios", label=label, kernel=iso.served(mboot),
                             args=f"-c {iso.tree}/{esxi_cfg_path(cfg)}", archs=["bios"],
                             source_iso=iso.name, notes=entry_note, loaders=["ipxe"], send_logs=False))
    if efi_cfg and efi:
        entries.append(Entry(id=f"{iso.name}-uefi", label=label, kind="efi", kernel=iso.served(efi),
                             args=f"-c {iso.tree}/{esxi_cfg_path(efi_cfg)}", archs=["uefi64"],
                             source_iso=iso.name, notes=entry_note, loaders=["ipxe"], send_logs=False))
    return Detection("esxi", label, entries, notes=["boots from iPXE menus only (mboot -c <URL>)", note])


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
    # wimboot loads boot.wim into RAM as a whole.
    ram = _ram_note(iso, "windows", found["boot.wim"])
    e = Entry(id=iso.name, label=label, kind="wimboot", kernel="wimboot", initrds=named,
              source_iso=iso.name, notes=f"{note}; {ram}",
              seed_args=f"autounattend.xml={{http}}/seed/{iso.name}/autounattend.xml")
    return Detection("windows", label, [e], root_fs=found["boot.wim"], notes=[note, ram])


# What each family needs to be booted from its parts (glob patterns, any case): what the
# message for an unknown image compares its files against.
NEEDS: dict[str, tuple[str, ...]] = {
    "ubuntu": ("casper/vmlinuz*", "casper/initrd*"),
    "debian-live": ("live/vmlinuz*", "live/initrd*", "live/filesystem.squashfs"),
    "debian-installer": ("install.amd/vmlinuz", "install.amd/initrd.gz"),
    "fedora": ("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img"),
    "arch": ("arch/boot/x86_64/vmlinuz-linux", "arch/boot/x86_64/initramfs-linux.img"),
    "systemrescue": ("sysresccd/boot/x86_64/vmlinuz", "sysresccd/boot/x86_64/sysresccd.img"),
    "alpine": (".alpine-release", "boot/vmlinuz-*", "boot/initramfs-*", "boot/modloop-*"),
    "opensuse": ("boot/x86_64/loader/linux", "boot/x86_64/loader/initrd"),
    "proxmox": (".cd-info", "boot/linux26", "boot/initrd.img"),
    "esxi": ("boot.cfg", "mboot.c32", "b.b00"),
    "windows": ("bootmgr", "boot/bcd", "boot/boot.sdi", "sources/boot.wim"),
}


def closest_family(iso: _Iso) -> str:
    """Which family an unrecognised image comes nearest to, by the files it has: `closest
    known family: fedora (has images/pxeboot/vmlinuz; lacks images/pxeboot/initrd.img)`, or
    what any family would need when it has none of them."""
    best: tuple[int, str, list[str], list[str]] | None = None
    for family, pats in NEEDS.items():
        has = [p for p in pats if iso.glob(p)]
        if has and (best is None or len(has) / len(pats) > best[0] / len(NEEDS[best[1]])):
            best = (len(has), family, has, [p for p in pats if p not in has])
    if best is None:
        wants = "; ".join(f"{f}: {' + '.join(p)}" for f, p in NEEDS.items() if f in
                          ("ubuntu", "debian-live", "fedora", "arch", "windows"))
        return (f"no known family recognised: a kernel and initrd in a known place are needed "
                f"(e.g. {wants})")
    _, family, has, lacks = best
    return f"closest known family: {family} (has {', '.join(has)}; lacks {', '.join(lacks)})"


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
    ram = _ram_note(iso, "unknown", whole=True)
    caveat = ("the whole image booted from RAM (iPXE sanboot, PXELINUX memdisk): works for "
              "small images that do not look for their CD once started; installers and live "
              "systems usually do, and stop there")
    entries.append(Entry(id=f"{iso.name}-image", label=f"{label} (whole image)", kind="iso",
                         kernel=f"iso/{iso.name}.iso", source_iso=iso.name,
                         needs_review=True, notes=f"{caveat}; {ram}"))
    return Detection("unknown", label, entries, notes=[
        f"unknown layout, {closest_family(iso)}",
        f"offered: {caveat}" + (f"; also the entries of its {cfg}, to check by hand" if cfg else ""),
        ram])


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
    ubuntu, debian_live, fedora, arch, systemrescue, alpine, opensuse, proxmox, esxi,
    debian_installer, memtest, windows, unknown,
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
                     notes=["no boot loader (El Torito) and no known layout: served as files only",
                            closest_family(iso)])

