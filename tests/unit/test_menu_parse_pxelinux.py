"""Importing PXELINUX configs: the Debian installer's real menu (with its INCLUDEs) and a
config using every supported directive; what cannot be imported is reported by line."""

from __future__ import annotations

from pathlib import Path

from netns import require_tool

from pxetui.menus.parse_pxelinux import parse_file, parse_text

DI_ROOT = Path("/usr/lib/debian-installer/images/12/amd64/text")
DI_DEFAULT = DI_ROOT / "debian-installer/amd64/pxelinux.cfg/default"


def test_debian_installer_menu_with_its_includes() -> None:
    require_tool(str(DI_DEFAULT), package="debian-installer-12-netboot-amd64")
    r = parse_file(DI_DEFAULT, DI_ROOT)
    m = r.menu
    assert m.title == "Debian GNU/Linux installer menu (BIOS mode)"  # its ^G (beep) dropped
    assert r.ui == "debian-installer/amd64/boot-screens/vesamenu.c32"  # DEFAULT x.c32 names the UI
    assert m.timeout == 0  # TIMEOUT 0: wait for the user
    ids = [e.id for e in m.entries]
    assert ids[:4] == ["install", "expert", "rescue", "auto"]
    assert m.default == "install"  # the dark submenu's DEFAULT does not change the top menu
    install = m.get("install")
    assert install is not None
    assert install.kernel == "debian-installer/amd64/linux"
    assert install.initrds == ["debian-installer/amd64/initrd.gz"]  # taken out of APPEND initrd=
    assert install.args == "vga=788 --- quiet"
    expert = m.get("expert")
    assert expert is not None and expert.label == "Advanced options > Expert install"
    assert m.get("local") is not None and m.check() == []
    # Missing INCLUDEs (the tree ships no gtk.cfg) and CONFIG entries are reported by line.
    problems = {(Path(p.file).name, p.line): p.reason for p in r.problems}
    assert "included file debian-installer/amd64/boot-screens/gtk.cfg not found" in problems[("menu.cfg", 6)]
    assert "switches to another config" in problems[("menu.cfg", 40)]
    ignored = {(Path(p.file).name, p.line) for p in r.ignored}
    assert ("stdmenu.cfg", 1) in ignored  # MENU BACKGROUND: presentation only


CONFIG = """\
# comment
SERIAL 0 115200
UI menu.c32
MENU TITLE My menu
TIMEOUT 55
DEFAULT two
INCLUDE extra.cfg
LABEL one
  MENU LABEL ^One
  KERNEL vmlinuz-one
  INITRD initrd-a,initrd-b
  APPEND quiet
LABEL two
  MENU LABEL Two
  LINUX memtest.bin
  APPEND initrd=x.img console=ttyS0
LABEL disk
  MENU LABEL Hard disk
  LOCALBOOT 0
LABEL iso
  KERNEL memdisk
  APPEND initrd=images/rescue.iso iso raw
LABEL chain
  KERNEL other/pxelinux.0
LABEL mod
  KERNEL hdt.c32
FROBNICATE yes
MENU SPARKLE on
TIMEOUT soon
INCLUDE missing.cfg
"""


def test_every_directive_and_line_numbered_problems() -> None:
    files = {"extra.cfg": "LABEL three\n  KERNEL k3\n  MENU DEFAULT\n"}
    r = parse_text(CONFIG, "pxelinux.cfg/default", files.get)
    m = r.menu
    assert (m.title, m.timeout, m.serial, r.ui) == ("My menu", 6, "0 115200", "menu.c32")
    by = {e.id: e for e in m.entries}
    assert by["one"].label == "One" and by["one"].initrds == ["initrd-a", "initrd-b"]
    assert by["one"].args == "quiet"
    assert by["two"].kernel == "memtest.bin" and by["two"].initrds == ["x.img"]
    assert by["two"].args == "console=ttyS0"
    assert by["disk"].kind == "local"
    assert by["iso"].kind == "iso" and by["iso"].kernel == "images/rescue.iso"
    assert m.default == "three"  # MENU DEFAULT wins over DEFAULT
    assert "chain" not in by and "mod" not in by
    lines = {p.line: p.reason for p in r.problems if p.file == "pxelinux.cfg/default"}
    assert "chains other/pxelinux.0" in lines[24]  # the KERNEL line
    assert "runs the module hdt.c32" in lines[26]
    assert lines[27] == "unknown directive 'FROBNICATE'"
    assert lines[28] == "unknown MENU directive 'sparkle'"
    assert "TIMEOUT is not a number" in lines[29]
    assert "missing.cfg not found" in lines[30]


def test_include_loops_are_bounded() -> None:
    r = parse_text("INCLUDE a.cfg\n", "root", {"a.cfg": "INCLUDE a.cfg\nLABEL x\n KERNEL k\n"}.get)
    assert any("nested deeper" in p.reason for p in r.problems)
    assert r.menu.get("x") is not None


def test_parse_file_keeps_includes_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "pxelinux.cfg").mkdir()
    (tmp_path / "pxelinux.cfg" / "default").write_text("INCLUDE ../../etc/passwd\nINCLUDE sub.cfg\n")
    (tmp_path / "sub.cfg").write_text("LABEL s\n KERNEL k\n")
    r = parse_file(tmp_path / "pxelinux.cfg" / "default")
    assert r.menu.get("s") is not None
    assert any("passwd not found" in p.reason for p in r.problems)
