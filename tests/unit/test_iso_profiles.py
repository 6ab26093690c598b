"""Family detection and kernel arguments (docs/FIELD-NOTES.md table) on images built with xorriso in
each family's layout, plus the real memtest86+, iPXE and GRUB rescue ISOs."""

from __future__ import annotations

from pathlib import Path

import pytest
from netns import require_tool

from pxetui.iso import testiso
from pxetui.iso.profiles import Detection, detect
from pxetui.iso.reader import IsoIndex, read_index

# family in testiso -> (detected family, substrings every argument line must hold)
EXPECT: dict[str, tuple[str, list[str]]] = {
    "ubuntu-live": ("ubuntu-live", ["boot=casper", "ip=dhcp", "netboot=url", "url={http}/iso/fam.iso"]),
    "ubuntu-server": ("ubuntu-server", ["root=/dev/ram0", "ramdisk_size=", "ip=dhcp",
                                        "url={http}/iso/fam.iso", "cloud-config-url=/dev/null"]),
    "debian-live": ("debian-live", ["boot=live", "components",
                                    "fetch={http}/iso/fam/live/filesystem.squashfs"]),
    "debian-installer": ("debian-installer", []),
    "debian-installer-cd": ("debian-installer", []),
    "fedora-installer": ("fedora-installer", ["inst.stage2={http}/iso/fam", "ip=dhcp"]),
    "rocky-dvd": ("fedora-installer", ["inst.repo={http}/iso/fam", "ip=dhcp"]),
    "fedora-live": ("fedora-live", ["root=live:{http}/iso/fam/LiveOS/squashfs.img", "rd.live.image", "ip=dhcp"]),
    "arch": ("arch", ["archisobasedir=arch", "archiso_http_srv={http}/iso/fam/", "ip=dhcp"]),
    "systemrescue": ("systemrescue", ["archisobasedir=sysresccd", "archiso_http_srv={http}/iso/fam/"]),
    "alpine": ("alpine", ["ip=dhcp", "alpine_repo={http}/iso/fam/apks", "modloop={http}/iso/fam/boot/modloop-lts",
                          "modules=loop,squashfs,sd-mod,usb-storage"]),
    "opensuse-installer": ("opensuse-installer", ["install={http}/iso/fam", "netsetup=dhcp"]),
    "opensuse-online": ("opensuse-live", ["root=live:{http}/iso/fam.iso", "rd.live.image", "ip=dhcp"]),
    "proxmox": ("proxmox", ["ramdisk_size=16777216", "rw"]),
    "esxi": ("esxi", ["-c"]),
    "memtest86+": ("memtest86+", []),
    "windows": ("windows", []),
    "unknown": ("unknown", []),
}


@pytest.fixture(scope="module")
def images(family_images: dict[str, Path]) -> dict[str, Path]:
    return family_images


@pytest.fixture(scope="module")
def indexes(images: dict[str, Path]) -> dict[str, IsoIndex]:
    """Each family's image indexed once for the whole module."""
    return {fam: read_index(path) for fam, path in images.items()}


def _detect(idx: IsoIndex) -> tuple[Detection, set[str]]:
    return detect(idx, "fam"), set(idx.files)


@pytest.mark.parametrize("family", testiso.FAMILIES)
def test_family_detected_with_files_that_exist(indexes: dict[str, IsoIndex], family: str) -> None:
    det, files = _detect(indexes[family])
    want_family, want_args = EXPECT[family]
    assert det.family == want_family
    assert det.entries, "every bootable family yields at least one menu entry"
    served = {f"iso/fam/{p}" for p in files} | {"iso/fam.iso"}
    for e in det.entries:
        assert e.source_iso == "fam"
        assert not e.check(), e.check()
        if e.kind in ("linux", "efi"):
            assert e.kernel in served, (e.kernel, sorted(served))
            # `/proxmox.iso=iso/fam.iso`: the whole image, put at a path of the initramfs
            assert all(i.rpartition("=")[2] in served for i in e.initrds), e.initrds
        for part in want_args:
            assert part in e.args.split() or part in e.args, (part, e.args)


def test_entries_do_not_share_their_arch_lists(indexes: dict[str, IsoIndex]) -> None:
    a, b = _detect(indexes["arch"])[0].entries[0], _detect(indexes["alpine"])[0].entries[0]
    assert a.archs == b.archs == ["bios", "uefi64"]
    a.archs.remove("bios")  # editing one imported entry leaves every other one as it was
    assert b.archs == ["bios", "uefi64"]
    assert _detect(indexes["arch"])[0].entries[0].archs == ["bios", "uefi64"]


def test_ubuntu_server_seed_and_ram_disk_size(images: dict[str, Path],
                                              indexes: dict[str, IsoIndex]) -> None:
    det, _ = _detect(indexes["ubuntu-server"])
    e = det.entries[0]
    size = images["ubuntu-server"].stat().st_size
    ramdisk = int(next(a for a in e.args.split() if a.startswith("ramdisk_size=")).split("=")[1])
    assert ramdisk * 1024 >= size  # the whole ISO must fit the RAM disk
    assert e.seed_args == "autoinstall ds=nocloud-net;s={http}/seed/fam/"
    assert any("RAM" in n for n in det.notes)


def test_seed_arguments_for_installers(indexes: dict[str, IsoIndex]) -> None:
    assert "url={http}/seed/fam/preseed.cfg" in _detect(indexes["debian-installer"])[0].entries[0].seed_args
    assert _detect(indexes["fedora-installer"])[0].entries[0].seed_args == "inst.ks={http}/seed/fam/ks.cfg"


def test_debian_cd_installer_warns_about_its_initrd(indexes: dict[str, IsoIndex]) -> None:
    det, _ = _detect(indexes["debian-installer-cd"])
    assert "netboot" in det.entries[0].notes


def test_archiso_microcode_goes_first(indexes: dict[str, IsoIndex]) -> None:
    for fam in ("arch", "systemrescue"):
        e = _detect(indexes[fam])[0].entries[0]
        assert "ucode" in e.initrds[0] and "ucode" in e.initrds[1]
        assert "ucode" not in e.initrds[-1]


def test_labels_come_from_the_image(indexes: dict[str, IsoIndex]) -> None:
    assert _detect(indexes["ubuntu-live"])[0].label.startswith("Ubuntu 24.04 LTS")
    assert _detect(indexes["fedora-installer"])[0].label == "Fedora 40"
    assert _detect(indexes["rocky-dvd"])[0].label == "Rocky Linux 9.4"
    assert _detect(indexes["opensuse-installer"])[0].label == "openSUSE Leap 15.6-0"
    assert _detect(indexes["proxmox"])[0].label == "Proxmox VE 8.2"
    assert _detect(indexes["alpine"])[0].label == "Alpine Linux 3.20.0"


def test_memtest_has_a_bios_and_a_uefi_entry(indexes: dict[str, IsoIndex]) -> None:
    det, _ = _detect(indexes["memtest86+"])
    kinds = {(e.kind, tuple(e.archs)) for e in det.entries}
    assert kinds == {("linux", ("bios",)), ("efi", ("uefi64",))}


def test_windows_boots_through_wimboot_with_named_files(indexes: dict[str, IsoIndex]) -> None:
    e = _detect(indexes["windows"])[0].entries[0]
    assert e.kind == "wimboot" and e.kernel == "wimboot"
    names = [i.split("=", 1)[0] for i in e.initrds]
    assert {"bootmgr", "BCD", "boot.sdi", "boot.wim"} <= set(names)


def test_unknown_el_torito_image_gets_entries_to_complete(indexes: dict[str, IsoIndex]) -> None:
    det, _ = _detect(indexes["unknown"])
    whole = [e for e in det.entries if e.kind == "iso"]
    assert len(whole) == 1 and whole[0].kernel == "iso/fam.iso" and whole[0].needs_review
    from_menu = [e for e in det.entries if e.kind == "linux"]
    assert from_menu and from_menu[0].kernel == "iso/fam/tool/kernel" and from_menu[0].args == "quiet"


def test_no_el_torito_and_no_layout_is_data_only(tmp_path: Path) -> None:
    require_tool("xorriso")
    iso = testiso.build(tmp_path / "data.iso", {"docs/readme.txt": b"hi"}, boot_image=None)
    det, _ = _detect(read_index(iso))
    assert det.family == "data" and det.entries == []


def test_real_memtest_iso() -> None:
    require_tool("/usr/lib/memtest86+/memtest86+x64.iso", package="memtest86+")
    det = detect(read_index("/usr/lib/memtest86+/memtest86+x64.iso"), "memtest")
    assert det.family == "memtest86+"
    by_arch = {e.archs[0]: e for e in det.entries}
    assert by_arch["bios"].kernel == "iso/memtest/boot/floppy.img"  # memtest.bin padded to 1.44 MB
    assert by_arch["uefi64"].kernel == "iso/memtest/EFI/BOOT/bootx64.efi"


def test_real_ipxe_iso_is_unknown_with_its_isolinux_kernel() -> None:
    require_tool("/usr/lib/ipxe/ipxe.iso", package="ipxe")
    det = detect(read_index("/usr/lib/ipxe/ipxe.iso"), "ipxe")
    assert det.family == "unknown"
    assert [e.kernel for e in det.entries if e.kind == "linux"] == ["iso/ipxe/ipxe.krn"]


def test_real_grub_rescue_iso_is_unknown_whole_image() -> None:
    require_tool("/usr/lib/grub-rescue/grub-rescue-cdrom.iso", package="grub-rescue-pc")
    det = detect(read_index("/usr/lib/grub-rescue/grub-rescue-cdrom.iso"), "rescue")
    assert det.family == "unknown"
    assert [e.kind for e in det.entries] == ["iso"]


def test_live_iso_helper_makes_a_debian_live_entry(tmp_path: Path) -> None:
    require_tool("xorriso")
    iso = testiso.live_iso(tmp_path / "live.iso", testiso.fake_kernel(), b"initrd")
    det = detect(read_index(iso), "live")
    assert det.family == "debian-live"
    e = det.entries[0]
    assert (e.kernel, e.initrds) == ("iso/live/live/vmlinuz", ["iso/live/live/initrd.img"])


def test_unknown_image_menu_paths_resolve_from_the_root_or_next_to_the_config(tmp_path: Path) -> None:
    require_tool("xorriso")
    files = {
        "isolinux/isolinux.cfg": b"INCLUDE menu.cfg\n",  # next to the config
        "isolinux/menu.cfg": b"LABEL rel\n  KERNEL vmlinuz\n  INITRD /boot/initrd.img,extra.img\n"
                             b"LABEL gone\n  KERNEL nowhere/vmlinuz\n",
        "isolinux/vmlinuz": testiso.fake_kernel("rel"), "isolinux/extra.img": b"extra",
        "boot/initrd.img": b"initrd",
    }
    det = detect(read_index(testiso.build(tmp_path / "rel.iso", files)), "rel")
    assert det.family == "unknown"
    linux = [e for e in det.entries if e.kind == "linux"]
    assert [(e.id, e.kernel, e.initrds) for e in linux] == [
        ("rel-rel", "iso/rel/isolinux/vmlinuz", ["iso/rel/boot/initrd.img", "iso/rel/isolinux/extra.img"])]
