"""Menus pass each family its log arguments when the `logs` service runs (pxetui/menus/logargs.py):
d-i log_host/log_port, Anaconda inst.syslog, any other Linux kernel netconsole; rendered to
iPXE, GRUB and PXELINUX."""

from __future__ import annotations

from pathlib import Path

import pytest
from services import base_config

from pxetui.config import Config
from pxetui.menus import render_grub, render_ipxe, render_pxelinux
from pxetui.menus.logargs import family_of
from pxetui.menus.model import Entry, Menu, local_entry

CLIENT = "10.99.0.123"


def cfg_with(tmp_path: Path, **logs: object) -> Config:
    return base_config(tmp_path, logs={"enabled": True, **logs})


DI = Entry(id="deb12", label="Debian 12 installer", kernel="iso/deb12/debian-installer/amd64/linux",
           initrds=["iso/deb12/debian-installer/amd64/initrd.gz"], args="console=ttyS0,115200 priority=high ---",
           seed_args="auto=true priority=critical url={http}/seed/deb12/preseed.cfg", source_iso="deb12")
FEDORA = Entry(id="fedora", label="Fedora 41 installer", kernel="iso/fedora/images/pxeboot/vmlinuz",
               initrds=["iso/fedora/images/pxeboot/initrd.img"], args="inst.repo={http}/iso/fedora ip=dhcp")
ARCH = Entry(id="arch", label="Arch Linux", kernel="iso/arch/arch/boot/x86_64/vmlinuz-linux",
             initrds=["iso/arch/arch/boot/x86_64/initramfs-linux.img"], args="archisobasedir=arch ip=dhcp")
MEMTEST = Entry(id="memtest", label="Memtest86+", kernel="iso/memtest/boot/floppy.img", args="console=ttyS0,115200")


def test_families_are_read_from_the_entry_shape() -> None:
    assert [family_of(e.kind, e.kernel, e.args, e.seed_args) for e in (DI, FEDORA, ARCH, MEMTEST)] == [
        "debian-installer", "anaconda", "linux", "none"]
    assert family_of("linux", "install.amd/vmlinuz", "") == "debian-installer"
    assert family_of("efi", "EFI/BOOT/bootx64.efi", "inst.repo=x") == "none"


def test_each_family_gets_its_argument(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path, syslog_port=5514, netconsole_port=6667)
    assert DI.boot_args(cfg, None, CLIENT) == \
        "console=ttyS0,115200 priority=high log_host=10.99.0.1 log_port=5514 ---"
    assert FEDORA.boot_args(cfg, None, CLIENT).endswith("ip=dhcp inst.syslog=10.99.0.1:5514")
    assert ARCH.boot_args(cfg, None, CLIENT) == \
        "archisobasedir=arch ip=dhcp netconsole=@10.99.0.123/,6667@10.99.0.1/"
    assert MEMTEST.boot_args(cfg, None, CLIENT) == "console=ttyS0,115200"


def test_nothing_is_added_when_logs_are_off_or_the_entry_opts_out(tmp_path: Path) -> None:
    off = base_config(tmp_path)
    assert DI.boot_args(off, None, CLIENT) == "console=ttyS0,115200 priority=high ---"
    no_menu_args = cfg_with(tmp_path, menu_args=False)
    assert "log_host" not in DI.boot_args(no_menu_args, None, CLIENT)
    opted_in = Entry(**{**DI.__dict__, "send_logs": True})
    assert "log_host=10.99.0.1" in opted_in.boot_args(no_menu_args, None, CLIENT)
    opted_out = Entry(**{**DI.__dict__, "send_logs": False})
    assert "log_host" not in opted_out.boot_args(cfg_with(tmp_path), None, CLIENT)


def test_cases_where_an_argument_cannot_work_get_none(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path)
    assert "netconsole" not in ARCH.boot_args(cfg, None, None)  # no source address to give
    assert "log_host" not in DI.boot_args(cfg, None, "fd99::1234")  # receivers are IPv4
    assert "inst.syslog" not in FEDORA.boot_args(cfg_with(tmp_path, syslog_tcp=False), None, CLIENT)
    own = Entry(id="own", label="x", kernel="linux", args="log_host=192.0.2.9 ---")
    assert own.boot_args(cfg, None, CLIENT) == "log_host=192.0.2.9 ---"  # the entry's own value wins


def test_renderers_carry_the_arguments(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path)
    m = Menu(entries=[DI, FEDORA, ARCH, local_entry()], default="deb12")
    ipxe = render_ipxe.render(m, cfg, "uefi64", client_ip=CLIENT)
    assert "log_host=10.99.0.1 log_port=514 ---" in ipxe
    assert "netconsole=@10.99.0.123/,6666@10.99.0.1/" in ipxe and "inst.syslog=10.99.0.1:514" in ipxe
    grub = render_grub.render(m, cfg, "uefi64", client_ip=CLIENT)
    assert "linux /iso/deb12/debian-installer/amd64/linux console=ttyS0,115200 priority=high " \
           "log_host=10.99.0.1 log_port=514 ---" in grub
    assert "netconsole=@10.99.0.123/,6666@10.99.0.1/" in grub
    pxe = render_pxelinux.render(m, cfg, "bios", client_ip=CLIENT)
    assert "APPEND" in pxe.upper() and "log_host=10.99.0.1 log_port=514" in pxe


@pytest.mark.parametrize("entry", [DI, FEDORA, ARCH])
def test_menu_json_round_trip_keeps_the_choice(entry: Entry) -> None:
    e = Entry(**{**entry.__dict__, "send_logs": False})
    again = Menu.from_dict(Menu(entries=[e, local_entry()]).to_dict()).entries[0]
    assert again.send_logs is False and again.check() == []
    assert Entry(**{**entry.__dict__, "send_logs": "yes"}).check()  # type: ignore[arg-type]
