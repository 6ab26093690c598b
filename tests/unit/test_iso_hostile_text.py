"""An image's own text (its `.disk/info` title, its isolinux labels and arguments) ends up in the
menus we render for every client: an image built to inject menu commands must not (an ISO
handed to a technician is input like any other, docs/SECURITY.md)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from netns import require_tool
from services import library_config

from pxetui import store
from pxetui.iso import testiso
from pxetui.iso.library import import_iso
from pxetui.menus import model, render_grub, render_ipxe, render_pxelinux

# GRUB quoting, iPXE's ${...} expansion, a PXELINUX line of its own, Unicode line separators
# (Python's splitlines cuts there; no boot loader does), a terminal escape and Rich markup.
HOSTILE = ("Evil ${net0/mac} '\"; reboot; echo \"' }\u2028menuentry x { reboot } "
           "\x1b[31m[bold]red[/] \\\nLABEL pwn")


@pytest.fixture
def hostile_entry(tmp_path: Path) -> tuple[model.Menu, model.Entry, object]:
    return imported(tmp_path, "debian-live", {".disk/info": HOSTILE.encode()})


def imported(tmp_path: Path, family: str, changed: dict[str, bytes]) -> tuple[model.Menu, model.Entry, object]:
    require_tool("xorriso")
    cfg = library_config(tmp_path)
    files = {**testiso.layout(family), **changed}
    iso = testiso.build(tmp_path / "evil.iso", files)
    import_iso(cfg, iso, name="evil")
    conn = store.connect(cfg.db_path)
    try:
        menu = model.load_menu(conn)
    finally:
        conn.close()
    entry = next(e for e in menu.entries if e.source_iso == "evil")
    return menu, entry, cfg


def test_an_image_title_cannot_add_lines_or_commands_to_any_menu(hostile_entry) -> None:
    menu, entry, cfg = hostile_entry
    assert "\n" not in entry.label and "\r" not in entry.label and not entry.check()
    assert entry.label.startswith("Evil ${net0/mac}")  # the first line of the title, kept as text
    ids = [e.id for e in menu.entries]

    ipxe = render_ipxe.render(menu, cfg, "bios").splitlines()
    assert "${net0/mac}" not in "\n".join(ipxe)  # iPXE would expand it
    assert not [ln for ln in ipxe if ln.strip().startswith(("reboot", "menuentry", "LABEL"))]

    grub = render_grub.render(menu, cfg, "uefi64").splitlines()
    heads = [ln for ln in grub if ln.startswith("menuentry ")]
    evil = next(ln for ln in heads if f"--id {entry.id} " in ln)
    assert evil.startswith("menuentry 'Evil ") and evil.endswith(f"--id {entry.id} {{")
    assert shlex.split(evil)[1] == entry.label  # one quoted word: GRUB reads back the title
    assert not [ln for ln in grub if ln.strip().startswith("reboot")]

    pxelinux = render_pxelinux.render(menu, cfg).splitlines()
    labels = [ln.split(None, 1)[1] for ln in pxelinux if ln.startswith("LABEL ")]
    assert set(labels) <= set(ids)  # no LABEL of the image's making
    assert sum(1 for ln in pxelinux if ln.strip().startswith("MENU LABEL Evil")) == 1


def test_an_image_boot_config_cannot_add_commands_through_its_labels_or_arguments(tmp_path: Path) -> None:
    # An image no family matches is offered with the entries of its own isolinux.cfg: their
    # labels and APPEND arguments are the image's words.
    cfg_text = ("DEFAULT tool\nLABEL tool\n  MENU LABEL Tool ${net0/mac} '; reboot '\n"
                "  KERNEL /tool/kernel\n  APPEND quiet ${net0/ip} x='; reboot; ' }\n")
    menu, _, cfg = imported(tmp_path, "unknown", {"isolinux/isolinux.cfg": cfg_text.encode()})
    entry = next(e for e in menu.entries if e.source_iso == "evil" and e.kind == "linux")
    assert "${net0/ip}" in entry.args  # kept as the image's text...
    ipxe = render_ipxe.render(menu, cfg, "bios")
    assert "${net0" not in ipxe  # ...never expanded by iPXE
    assert not [ln for ln in ipxe.splitlines() if ln.strip().startswith("reboot")]
    grub = render_grub.render(menu, cfg, "bios")
    linux = next(ln for ln in grub.splitlines() if ln.strip().startswith("linux ") and "tool/kernel" in ln)
    assert shlex.split(linux)[2:] == entry.args.split()  # each argument one quoted word
