"""An entry's initrd specs name their served file after `=` (wimboot's `name=path`, a Linux
entry's `/dest=path`): the renderers, the tracker's file kinds and the self-test read them alike."""

from __future__ import annotations

from pathlib import Path

from services import base_config

from pxetui import store
from pxetui.doctor.selftest import _entry_urls
from pxetui.menus import model
from pxetui.tracker import menu_kinds

PVE = model.Entry(id="pve", label="Proxmox VE", kernel="iso/pve/boot/linux26",
                  initrds=["iso/pve/boot/initrd.img", "/proxmox.iso=iso/pve.iso"], loaders=["ipxe"])


def test_served_initrd_reads_the_path_after_the_name() -> None:
    assert model.served_initrd("iso/a/initrd.gz", "linux") == "iso/a/initrd.gz"
    assert model.served_initrd("/proxmox.iso=iso/pve.iso", "linux") == "iso/pve.iso"
    assert model.served_initrd("bcd=iso/w/boot/bcd", "wimboot") == "iso/w/boot/bcd"
    assert model.served_initrd("autounattend.xml={http}/seed/w/autounattend.xml", "wimboot") == \
        "{http}/seed/w/autounattend.xml"
    # Only a leading `/` makes a Linux initrd a named one: `=` may be part of a path.
    assert model.served_initrd("iso/x/a=b.img", "linux") == "iso/x/a=b.img"
    assert model.named_initrd("/proxmox.iso=iso/pve.iso") == ("/proxmox.iso", "iso/pve.iso")


def test_the_tracker_knows_a_named_initrd_by_its_served_path() -> None:
    assert menu_kinds([PVE]) == {"iso/pve/boot/linux26": "kernel", "iso/pve/boot/initrd.img": "initrd",
                                 "iso/pve.iso": "initrd"}


def test_the_self_test_fetches_the_file_a_named_initrd_serves(tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    conn = store.connect(cfg.db_path)
    try:
        def default_pve(m: model.Menu) -> None:
            m.add(PVE)
            m.default = "pve"
        model.update_menu(conn, default_pve)
    finally:
        conn.close()
    urls, why = _entry_urls(cfg)
    assert why == ""
    assert [u for _, u, _ in urls] == [f"{cfg.http_base}/iso/pve/boot/linux26", f"{cfg.http_base}/iso/pve/boot/initrd.img",
                                       f"{cfg.http_base}/iso/pve.iso"]
