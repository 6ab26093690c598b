"""Each family's detected entries rendered for PXELINUX, GRUB and iPXE, compared with golden
files in tests/data/menus/<family>.{pxelinux,grub,ipxe}. Entries with seed arguments are
rendered seeded, for one attributed machine (a fixed token), so the seed URLs are in the files.

The files change only on purpose: PXETUI_REGEN_GOLDEN=1 rewrites them (then read the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from netns import require_tool

from pxetui.config import Config
from pxetui.iso import testiso
from pxetui.iso.profiles import detect
from pxetui.iso.reader import read_index
from pxetui.menus import render_grub, render_ipxe, render_pxelinux
from pxetui.menus.model import Menu

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "menus"
REGEN = os.environ.get("PXETUI_REGEN_GOLDEN") == "1"


def _cfg() -> Config:
    cfg = Config()
    cfg.server_ip = "192.0.2.10"
    cfg.http.port = 80
    return cfg


def _mint(purpose: str) -> str:
    return f"TOKEN-{purpose}"


def _menu(iso: Path, name: str) -> Menu:
    det = detect(read_index(iso), name)
    menu = Menu(title=f"golden {name}")
    for e in det.entries:
        e.seeded = bool(e.seed_args)
        menu.add(e)
    menu.default = det.entries[0].id
    return menu


def rendered(menu: Menu, cfg: Config) -> dict[str, str]:
    return {
        "pxelinux": render_pxelinux.render(menu, cfg, mint=_mint, client_ip="192.0.2.50"),
        "grub": render_grub.render(menu, cfg, "uefi64", mint=_mint, client_ip="192.0.2.50"),
        "ipxe": "\n".join([
            "# --- BIOS ---", render_ipxe.render(menu, cfg, "bios", mint=_mint, client_ip="192.0.2.50"),
            "# --- x64 UEFI ---", render_ipxe.render(menu, cfg, "uefi64", mint=_mint, client_ip="192.0.2.50")]),
    }


@pytest.fixture(scope="module")
def menus(family_images: dict[str, Path]) -> dict[str, dict[str, str]]:
    cfg = _cfg()
    return {fam: rendered(_menu(path, fam), cfg) for fam, path in family_images.items()}


@pytest.mark.parametrize("family", testiso.FAMILIES)
@pytest.mark.parametrize("fmt", ["pxelinux", "grub", "ipxe"])
def test_menu_matches_golden(menus: dict[str, dict[str, str]], family: str, fmt: str) -> None:
    path = GOLDEN / f"{family}.{fmt}"
    text = menus[family][fmt]
    if REGEN:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with PXETUI_REGEN_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{path} differs (PXETUI_REGEN_GOLDEN=1 rewrites it)"


def test_golden_files_hold_each_familys_boot_lines(menus: dict[str, dict[str, str]]) -> None:
    """What the golden files must say, so a regenerated file that lost it fails here."""
    ipxe, grub, pxe = (lambda f: menus[f]["ipxe"]), (lambda f: menus[f]["grub"]), (lambda f: menus[f]["pxelinux"])
    http = "http://192.0.2.10"
    # Proxmox: the whole .iso goes in as /proxmox.iso (iPXE only), never named by initrd=.
    assert f"initrd --name proxmox.iso {http}/iso/proxmox.iso /proxmox.iso || goto failed" in ipxe("proxmox")
    assert "initrd=proxmox.iso" not in ipxe("proxmox") and "initrd=initrd.img" in ipxe("proxmox")
    assert "proxmox" not in pxe("proxmox").split("DEFAULT")[1].replace("golden proxmox", "")
    assert "linux26" not in grub("proxmox") and "linux26" not in pxe("proxmox")
    # ESXi: mboot.c32 on BIOS, the ISO's bootx64.efi on UEFI, both -c the rewritten boot.cfg.
    assert f"kernel {http}/iso/esxi/MBOOT.C32 -c {http}/iso/esxi/pxetui/BOOT.CFG || goto failed" in ipxe("esxi")
    assert (f"kernel {http}/iso/esxi/EFI/BOOT/BOOTX64.EFI -c {http}/iso/esxi/pxetui/EFI/BOOT/BOOT.CFG"
            " || goto failed") in ipxe("esxi")
    assert "MBOOT" not in pxe("esxi") and "BOOTX64" not in grub("esxi")
    # Windows: wimboot's named files, and the seed as autounattend.xml with this boot's token.
    assert (f"initrd --name autounattend.xml {http}/seed/TOKEN-seed/windows/autounattend.xml "
            "autounattend.xml || goto failed") in ipxe("windows")
    # Seeds, quoted for GRUB where `;` would end the command.
    assert f"'ds=nocloud-net;s={http}/seed/TOKEN-seed/ubuntu-server/'" in grub("ubuntu-server")
    assert f"autoinstall ds=nocloud-net;s={http}/seed/TOKEN-seed/ubuntu-server/" in pxe("ubuntu-server")
    assert f"auto=true priority=critical url={http}/seed/TOKEN-seed/debian-installer/preseed.cfg" in pxe("debian-installer")
    assert f"inst.ks={http}/seed/TOKEN-seed/rocky-dvd/ks.cfg" in grub("rocky-dvd")
    assert f"autoyast={http}/seed/TOKEN-seed/opensuse-installer/autoinst.xml" in ipxe("opensuse-installer")
    # Families served in parts and whole.
    assert f"url={http}/iso/ubuntu-live.iso" in pxe("ubuntu-live")
    assert f"root=live:{http}/iso/opensuse-online.iso" in grub("opensuse-online")
    assert f"inst.stage2={http}/iso/fedora-installer " in pxe("fedora-installer")
    assert f"inst.repo={http}/iso/rocky-dvd " in pxe("rocky-dvd")
    assert "INITRD iso/arch/arch/boot/intel-ucode.img,iso/arch/arch/boot/amd-ucode.img," in pxe("arch")
    assert "LINUX memdisk" in pxe("unknown") and f"sanboot {http}/iso/unknown.iso" in ipxe("unknown")


def test_seed_arguments_are_left_out_without_a_token(tmp_path: Path) -> None:
    # A menu for a machine we cannot attribute (no mint) carries no seed URL, in any format.
    require_tool("xorriso")
    cfg = _cfg()
    for fam in ("ubuntu-server", "windows", "rocky-dvd", "opensuse-installer"):
        menu = _menu(testiso.build_family(tmp_path / f"{fam}.iso", fam), fam)
        texts = [render_pxelinux.render(menu, cfg), render_grub.render(menu, cfg, "uefi64"),
                 render_ipxe.render(menu, cfg, "bios"), render_ipxe.render(menu, cfg, "uefi64")]
        assert all("/seed/" not in t for t in texts), fam


def test_entry_limited_to_ipxe_is_not_the_default_elsewhere() -> None:
    # A default only iPXE can boot must not be named by PXELINUX or GRUB (they would boot a
    # label missing from their file): they fall back to the local disk.
    from pxetui.menus.model import Entry

    cfg = _cfg()
    menu = Menu()
    menu.add(Entry(id="pve", label="Proxmox", kernel="iso/pve/boot/linux26",
                   initrds=["iso/pve/boot/initrd.img", "/proxmox.iso=iso/pve.iso"], loaders=["ipxe"]))
    menu.default = "pve"
    assert "DEFAULT local" in render_pxelinux.render(menu, cfg) and "pve" not in render_pxelinux.render(menu, cfg)
    assert "set default=local" in render_grub.render(menu, cfg) and "linux26" not in render_grub.render(menu, cfg)
    assert "choose --default pve" in render_ipxe.render(menu, cfg, "uefi64")
    assert Entry(id="x", label="x", kernel="k", loaders=["syslinux"]).check() == [
        "entry x: unknown loader(s) syslinux; use pxelinux, grub, ipxe"]
    # stored and read back: the field survives the menu's JSON
    assert Menu.from_dict(menu.to_dict()).get("pve").loaders == ["ipxe"]  # type: ignore[union-attr]
