"""`pxetui import`, `pxetui isos` and `pxetui menu ...` through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from netns import require_tool

from pxetui.cli import main

MEMTEST = "/usr/lib/memtest86+/memtest86+x64.iso"
DI_ROOT = "/usr/lib/debian-installer/images/12/amd64/text"


@pytest.fixture(autouse=True)
def no_site_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PXETUI_CONFIG", raising=False)
    monkeypatch.setattr("pxetui.cliconfig.DEFAULT_CONFIG", tmp_path / "absent.toml")


def test_import_show_render_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_tool(MEMTEST, package="memtest86+")
    state = str(tmp_path / "state")
    assert main(["import", MEMTEST, "--state-dir", state, "--name", "mt"]) == 0
    out = capsys.readouterr()
    assert "imported mt: memtest86+ (Memtest86+), 2 files" in out.out
    assert "indexing files" in out.err  # progress on stderr
    assert main(["import", MEMTEST, "--state-dir", state, "--name", "mt"]) == 1
    assert "already in the library" in capsys.readouterr().err
    assert main(["import", "/etc/hostname", "--state-dir", state]) == 1
    assert "not an ISO image" in capsys.readouterr().err

    assert main(["menu", "show", "--state-dir", state]) == 0
    show = capsys.readouterr().out
    assert "mt-bios" in show and "mt-uefi" in show and "pxelinux.cfg/default" in show
    assert main(["menu", "render", "--format", "ipxe-efi", "--server", "10.9.9.9", "--state-dir", state]) == 0
    assert "kernel http://10.9.9.9/iso/mt/EFI/BOOT/bootx64.efi" in capsys.readouterr().out
    assert main(["menu", "set", "--default", "mt-bios", "--timeout", "1", "--serial", "0 115200",
                 "--append", "mt-bios", "quiet", "--state-dir", state]) == 0
    assert "default mt-bios, timeout 1 s, serial 0 115200" in capsys.readouterr().out
    assert main(["menu", "render", "--state-dir", state]) == 0
    px = capsys.readouterr().out
    assert "SERIAL 0 115200" in px and "DEFAULT mt-bios" in px and "APPEND console=ttyS0,115200 quiet" in px
    assert main(["menu", "set", "--default", "nope", "--state-dir", state]) == 1
    assert "no entry 'nope'" in capsys.readouterr().err
    assert main(["isos", "--state-dir", state]) == 0
    assert "memtest86+" in capsys.readouterr().out
    assert main(["isos", "--remove", "mt", "--state-dir", state]) == 0
    assert "mt-bios" in capsys.readouterr().out
    assert main(["isos", "--state-dir", state]) == 0
    assert capsys.readouterr().out == ""  # the library is empty again
    assert main(["menu", "show", "--state-dir", state]) == 0
    assert "mt-" not in capsys.readouterr().out.split("in effect:")[0]  # its entries went too


def test_import_pxelinux(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_tool(f"{DI_ROOT}/pxelinux.cfg/default", package="debian-installer-12-netboot-amd64")
    state = str(tmp_path / "state")
    rc = main(["menu", "import-pxelinux", f"{DI_ROOT}/pxelinux.cfg/default", "--root", DI_ROOT,
               "--replace", "--state-dir", state])
    assert rc == 0
    out = capsys.readouterr()
    assert "imported 9 entries" in out.out
    assert "cannot import:" in out.err and "gtk.cfg not found" in out.err
    assert main(["menu", "render", "--format", "pxelinux", "--state-dir", state]) == 0
    px = capsys.readouterr().out
    assert "MENU TITLE Debian GNU/Linux installer menu (BIOS mode)" in px
    assert "LINUX debian-installer/amd64/linux" in px and "DEFAULT install" in px


def test_seed_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "state")
    seed = tmp_path / "user-data"
    seed.write_text("#cloud-config\n")
    assert main(["seed", "--mac", "52:54:00:aa:bb:cc", str(seed), "--state-dir", state]) == 0
    assert "served as seed/52:54:00:aa:bb:cc/user-data" in capsys.readouterr().out
    assert main(["seed", "--entry", "nope", str(seed), "--state-dir", state]) == 1
    assert "no menu entry 'nope'" in capsys.readouterr().err
    assert main(["seed", "--mac", "not-a-mac", str(seed), "--state-dir", state]) == 1
    assert "not a MAC address" in capsys.readouterr().err


def test_import_pxelinux_merges_or_replaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "state")
    first, second = tmp_path / "first.cfg", tmp_path / "second.cfg"
    first.write_text("MENU TITLE First\nDEFAULT a\nLABEL a\n  LINUX ka\nLABEL disk\n  LOCALBOOT 0\n")
    second.write_text("MENU TITLE Second\nLABEL b\n  LINUX kb\n  APPEND quiet\n")
    assert main(["menu", "import-pxelinux", str(first), "--replace", "--state-dir", state]) == 0
    assert "imported 2 entries" in capsys.readouterr().out
    assert main(["menu", "import-pxelinux", str(second), "--state-dir", state]) == 0
    assert "imported 1 entries" in capsys.readouterr().out  # its own local entry is not added
    assert main(["menu", "render", "--state-dir", state]) == 0
    px = capsys.readouterr().out
    # Merged: the first menu's title and default stay, `b` goes before the local-disk entry.
    assert "MENU TITLE First" in px and "DEFAULT a" in px
    assert px.index("LABEL a") < px.index("LABEL b") < px.index("LABEL disk")
    assert "APPEND quiet" in px
    assert main(["menu", "import-pxelinux", str(second), "--replace", "--state-dir", state]) == 0
    capsys.readouterr()
    assert main(["menu", "render", "--state-dir", state]) == 0
    px = capsys.readouterr().out
    assert "MENU TITLE Second" in px and "LABEL a" not in px and "LABEL b" in px


def test_import_unknown_image_says_what_it_offers_and_needs(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # An El Torito image with half of Fedora's layout: imported, it offers the whole image
    # (sanboot/memdisk, with the caveat) and names the family it comes closest to.
    require_tool("xorriso")
    from pxetui.iso import testiso

    iso = testiso.build(tmp_path / "odd.iso", {"images/pxeboot/vmlinuz": testiso.fake_kernel("odd")})
    state = str(tmp_path / "state")
    assert main(["import", str(iso), "--state-dir", state, "--name", "odd", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "imported odd: unknown" in out and "menu entry: odd-image" in out
    assert ("note: unknown layout, closest known family: fedora (has images/pxeboot/vmlinuz; "
            "lacks images/pxeboot/initrd.img)") in out
    assert "note: offered: the whole image booted from RAM (iPXE sanboot, PXELINUX memdisk)" in out
    assert "note: RAM: give clients at least" in out
    assert main(["menu", "render", "--format", "ipxe-bios", "--server", "10.9.9.9", "--state-dir", state]) == 0
    assert "sanboot http://10.9.9.9/iso/odd.iso" in capsys.readouterr().out
