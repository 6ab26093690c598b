"""Golden tests: one menu model rendered to PXELINUX, GRUB and iPXE (BIOS and UEFI).

Regenerate after an intended change with PXETUI_UPDATE_GOLDEN=1, then review the diff."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from services import base_config

from pxetui.config import Config
from pxetui.menus import render_grub, render_ipxe, render_pxelinux
from pxetui.menus.model import Entry, Menu, local_entry

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "menus"


def sample_menu() -> Menu:
    m = Menu(title="Lab boot menu", entries=[], default="debian-live", timeout=5, serial="0 115200")
    m.entries = [
        Entry(id="debian-live", label="Debian 12 live", kernel="iso/debian-live/live/vmlinuz",
              initrds=["iso/debian-live/live/initrd.img"],
              args="boot=live components fetch={http}/iso/debian-live/live/filesystem.squashfs ip=dhcp",
              source_iso="debian-live"),
        Entry(id="ubuntu-server", label="Ubuntu Server 24.04 (autoinstall)",
              kernel="iso/ubuntu-server/casper/vmlinuz", initrds=["iso/ubuntu-server/casper/initrd"],
              args="root=/dev/ram0 ramdisk_size=3000000 ip=dhcp url={http}/iso/ubuntu-server.iso "
                   "cloud-config-url=/dev/null",
              seed_args="autoinstall ds=nocloud-net;s={http}/seed/ubuntu-server/", seeded=True,
              source_iso="ubuntu-server"),
        Entry(id="arch", label="Arch Linux", kernel="iso/arch/arch/boot/x86_64/vmlinuz-linux",
              initrds=["iso/arch/arch/boot/intel-ucode.img", "iso/arch/arch/boot/x86_64/initramfs-linux.img"],
              args="archisobasedir=arch archiso_http_srv={http}/iso/arch/ ip=dhcp", source_iso="arch"),
        Entry(id="memtest-bios", label="Memtest86+", kernel="iso/memtest/boot/floppy.img",
              args="console=ttyS0,115200", archs=["bios"], source_iso="memtest"),
        Entry(id="memtest-uefi", label="Memtest86+", kind="efi", kernel="iso/memtest/EFI/BOOT/bootx64.efi",
              args="console=ttyS0,115200", archs=["uefi64"], source_iso="memtest"),
        Entry(id="winpe", label="Windows PE", kind="wimboot", kernel="wimboot",
              initrds=["bootmgr=iso/winpe/bootmgr", "BCD=iso/winpe/boot/bcd",
                       "boot.sdi=iso/winpe/boot/boot.sdi", "boot.wim=iso/winpe/sources/boot.wim"],
              source_iso="winpe"),
        Entry(id="rescue-image", label="Rescue CD (whole image)", kind="iso", kernel="iso/rescue.iso",
              source_iso="rescue", needs_review=True),
        local_entry(),
    ]
    assert not m.check(), m.check()
    return m


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return base_config(tmp_path)


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PXETUI_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with PXETUI_UPDATE_GOLDEN=1 once"
    assert text == path.read_text(), f"{name} differs from its golden file"


# A fixed minter: the goldens are menus rendered for one attributed machine.
TOKENS = {"callback": "c" * 32, "seed": "5" * 32}


class Minter:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, purpose: str) -> str:
        self.asked.append(purpose)
        return TOKENS[purpose]


def test_pxelinux_golden(cfg: Config) -> None:
    golden("sample.pxelinux.cfg", render_pxelinux.render(sample_menu(), cfg, mint=Minter()))


def test_grub_golden(cfg: Config) -> None:
    golden("sample.grub.cfg", render_grub.render(sample_menu(), cfg, mint=Minter()))


def test_ipxe_bios_golden(cfg: Config) -> None:
    golden("sample.bios.ipxe", render_ipxe.render(sample_menu(), cfg, "bios", mint=Minter()))


def test_ipxe_efi_golden(cfg: Config) -> None:
    golden("sample.efi.ipxe", render_ipxe.render(sample_menu(), cfg, "uefi64", mint=Minter()))


def test_seed_and_callback_urls_carry_the_boot_tokens(cfg: Config) -> None:
    """docs/SECURITY.md "Callbacks and seeds": the seed URL (any family's form) gets the seed
    token as a path element (cloud-init appends file names to `s=`), callbacks the callback one."""
    seed = f"http://10.99.0.1/seed/{TOKENS['seed']}"
    px = render_pxelinux.render(sample_menu(), cfg, mint=Minter())
    assert f"autoinstall ds=nocloud-net;s={seed}/ubuntu-server/" in px
    grub = render_grub.render(sample_menu(), cfg, mint=Minter())
    assert f"'ds=nocloud-net;s={seed}/ubuntu-server/'" in grub
    ipxe = render_ipxe.render(sample_menu(), cfg, "uefi64", mint=Minter())
    assert f"http://10.99.0.1/callback/{TOKENS['callback']}/booting?entry=arch" in ipxe
    assert "mac=" not in ipxe.replace("?mac=", "")  # the token says whose boot it is
    m = Menu(entries=[Entry(id="d", label="Debian", kernel="k", args="priority=critical",
                            seed_args="auto=true url={http}/seed/d/preseed.cfg", seeded=True),
                      Entry(id="f", label="Fedora", kernel="k", seed_args="inst.ks={http}/seed/f/ks.cfg",
                            seeded=True),
                      Entry(id="lab", label="Lab", kernel="k", args="pxetui_callback={callback}"),
                      local_entry()], default="d")
    px = render_pxelinux.render(m, cfg, mint=Minter())
    assert f"url={seed}/d/preseed.cfg" in px and f"inst.ks={seed}/f/ks.cfg" in px
    assert f"pxetui_callback=http://10.99.0.1/callback/{TOKENS['callback']}" in px


def test_menu_without_tokens_has_no_working_seed_or_callback(cfg: Config) -> None:
    """A menu rendered for a machine we cannot attribute carries no shared secret: seed
    arguments are left out, `{callback}` is empty, iPXE reports no callback."""
    m = sample_menu()
    m.add(Entry(id="lab", label="Lab", kernel="k", args="console=ttyS0 pxetui_callback={callback}"))
    for text in (render_pxelinux.render(m, cfg), render_grub.render(m, cfg),
                 render_ipxe.render(m, cfg, "bios"), render_ipxe.render(m, cfg, "uefi64")):
        assert "/seed/" not in text and "/callback/" not in text and "{callback}" not in text
        assert re.search(r"pxetui_callback=(\s|$)", text, re.M), text  # an empty value
        assert "cloud-config-url=/dev/null" in text  # the entry itself still boots (interactive)


def test_tokens_are_minted_only_when_a_url_needs_one(cfg: Config) -> None:
    m = Menu(entries=[Entry(id="plain", label="Plain", kernel="k", args="quiet"), local_entry()],
             default="plain")
    minter = Minter()
    render_pxelinux.render(m, cfg, mint=minter)
    render_grub.render(m, cfg, mint=minter)
    assert minter.asked == []  # no seed, no callback: nothing written to the token table
    render_ipxe.render(m, cfg, "bios", mint=minter)
    assert set(minter.asked) == {"callback"}


def test_each_renderer_keeps_only_what_its_firmware_can_boot(cfg: Config) -> None:
    m = sample_menu()
    px = render_pxelinux.render(m, cfg)
    assert "LABEL memtest-bios" in px and "memtest-uefi" not in px and "winpe" not in px
    assert "LINUX memdisk" in px and "INITRD iso/rescue.iso" in px
    grub = render_grub.render(m, cfg)
    assert "--id memtest-uefi" in grub and "memtest-bios" not in grub
    assert "winpe" not in grub and "rescue-image" not in grub  # GRUB cannot sanboot or wimboot
    ipxe_efi = render_ipxe.render(m, cfg, "uefi64")
    assert "item memtest-uefi" in ipxe_efi and "memtest-bios" not in ipxe_efi
    assert "memtest-uefi" not in render_ipxe.render(m, cfg, "bios")
    assert "sanboot http://10.99.0.1/iso/rescue.iso" in ipxe_efi
    assert "initrd --name BCD http://10.99.0.1/iso/winpe/boot/bcd BCD" in ipxe_efi


def test_default_falls_back_to_local_when_the_firmware_cannot_boot_it(cfg: Config) -> None:
    m = sample_menu()
    m.default = "arch"
    m.get("arch").archs = ["bios"]  # type: ignore[union-attr]
    assert "set default=local" in render_grub.render(m, cfg)
    assert "DEFAULT arch" in render_pxelinux.render(m, cfg)
    assert "choose --default local" in render_ipxe.render(m, cfg, "uefi64")
    # memtest86+ has one entry per firmware: either one as the default means both.
    m.default = "memtest-bios"
    assert "set default=memtest-uefi" in render_grub.render(m, cfg)
    assert "choose --default memtest-uefi" in render_ipxe.render(m, cfg, "uefi64")


def test_default_the_loader_cannot_show_is_not_named(cfg: Config) -> None:
    """A wimboot default has no PXELINUX or GRUB form: naming it would make the loader look for
    a label that is not in its file. Those fall back to local disk; iPXE boots it."""
    m = sample_menu()
    m.default = "winpe"
    pxe, grub = render_pxelinux.render(m, cfg), render_grub.render(m, cfg)
    assert "DEFAULT local" in pxe and "winpe" not in pxe
    assert "set default=local" in grub and "winpe" not in grub
    assert "choose --default winpe" in render_ipxe.render(m, cfg, "bios")
    # A per-MAC override the loader cannot show falls back the same way.
    assert "DEFAULT local" in render_pxelinux.render(m, cfg, default="winpe")


def test_timeouts_in_each_unit(cfg: Config) -> None:
    m = sample_menu()
    assert "TIMEOUT 50" in render_pxelinux.render(m, cfg)  # tenths of a second
    assert "set timeout=5" in render_grub.render(m, cfg)
    assert "--timeout 5000" in render_ipxe.render(m, cfg, "bios")  # milliseconds
    m.timeout = 0  # wait for the user
    assert "TIMEOUT 0" in render_pxelinux.render(m, cfg)
    assert "set timeout=-1" in render_grub.render(m, cfg)
    assert "--timeout" not in render_ipxe.render(m, cfg, "bios")


def test_grub_quotes_what_it_would_otherwise_interpret(cfg: Config) -> None:
    assert render_grub.quote("quiet") == "quiet"
    assert render_grub.quote("ds=nocloud-net;s=http://x/") == "'ds=nocloud-net;s=http://x/'"
    assert render_grub.quote("a$b") == "'a$b'"
    assert render_grub.quote("it's") == "'it'\\''s'"
    m = Menu(entries=[Entry(id="x", label="Bob's $HOME", kernel="k"), local_entry()], default="x")
    assert "menuentry 'Bob'\\''s $HOME' --id x" in render_grub.render(m, cfg)


def test_ipxe_labels_cannot_expand_settings(cfg: Config) -> None:
    m = Menu(entries=[Entry(id="x", label="costs ${money}", kernel="k"), local_entry()], default="x")
    out = render_ipxe.render(m, cfg, "bios")
    assert "item x costs $ {money}" in out
