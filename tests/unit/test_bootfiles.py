"""pxetui.bootfiles: one reading of boot file names for the policy, the tracker and the
diagnosis (before, the policy and the diagnosis each had their own list of iPXE names)."""

from __future__ import annotations

from pathlib import Path

import pytest
from services import base_config

from pxetui import diagnosis
from pxetui.bootfiles import UEFI_IPXE, is_ipxe_binary, is_loader
from pxetui.dhcp.policy import DEFAULT_FILES, BootPolicy, ClientFacts
from pxetui.loaders import SPECS
from pxetui.tracker import classify

MAC = "52:54:00:12:34:56"
IPXE_BUILDS = ["undionly.kpxe", "undionly.kkpxe", "ipxe.pxe", "ipxe.lkrn", "ipxe.efi", "snponly.efi",
               "snp.efi", "ipxe-arm64.efi", "snponly-arm64.efi", "ipxe-i386.efi",
               "http://10.0.0.1/ipxe.efi", "boot\\x64\\ipxe.efi"]
NOT_IPXE = ["boot.ipxe", "http://10.0.0.1/boot.ipxe?mac=x", "ipxe.cfg", "menu.ipxe", "pxelinux.0",
            "grubx64.efi", "shimx64.efi", "bootx64.efi", "wimboot", "vmlinuz"]


@pytest.mark.parametrize("name", IPXE_BUILDS)
def test_ipxe_builds_are_ipxe(name: str) -> None:
    assert is_ipxe_binary(name)


@pytest.mark.parametrize("name", NOT_IPXE)
def test_scripts_and_other_loaders_are_not(name: str) -> None:
    assert not is_ipxe_binary(name)


def test_every_ipxe_file_pxetui_serves_or_installs_is_recognised() -> None:
    served = [n for names in DEFAULT_FILES.values() for n in names if "pxe" in n and not n.endswith(".0")]
    installed = [s.name for s in SPECS if s.package == "ipxe"]
    assert served and installed
    assert all(is_ipxe_binary(n) for n in (*served, *installed, *UEFI_IPXE))


def test_every_default_boot_file_is_a_loader_for_the_tracker() -> None:
    for name in (n for names in DEFAULT_FILES.values() for n in names):
        assert is_loader(name), name
        assert classify(name, set()) == "bootloader", name
    assert not is_loader("debian-installer/amd64/linux") and not is_loader("pxelinux.cfg/default")


def test_policy_and_diagnosis_agree_on_an_arm64_ipxe_loop(tmp_path: Path) -> None:
    # An iPXE client is never handed an iPXE build as its per-MAC file ...
    p = BootPolicy(base_config(tmp_path), {MAC: {"boot_file": "ipxe-arm64.efi", "boot_once": None}})
    choice, _ = p.decide(ClientFacts(MAC, 11, "PXEClient:Arch:00011", True))
    assert choice.boot_file == "http://10.99.0.1/boot.ipxe"
    # ... and a loop through that same build is diagnosed (the old list knew only x64 names).
    loop = [e for i in range(3) for e in (
        {"type": "DhcpPacket", "ts": i * 10.0, "msg_type": "DISCOVER", "direction": "in"},
        {"type": "TransferStarted", "ts": i * 10.0 + 1, "path": "ipxe-arm64.efi", "transfer_id": str(i)})]
    found = diagnosis.ipxe_chain_loop(loop)
    assert found is not None and "ipxe-arm64.efi 3 times" in found.message


@pytest.mark.parametrize("path", ["/live/filesystem.squashfs", "boot/modloop-lts", "sources/boot.wim",
                                  "iso/ubuntu.iso", "LiveOS/squashfs.img", "sysresccd/x86_64/airootfs.sfs"])
def test_tracker_and_ram_rule_agree_on_a_root_filesystem(path: str) -> None:
    assert classify(path, {"kernel"}) == "rootfs"
    events = [{"type": "BootCallback", "ts": 0.5, "detail": "memsize=512"},
              {"type": "TransferStarted", "ts": 1.0, "path": path, "transfer_id": "a", "size": 900 << 20}]
    assert diagnosis.squashfs_ram(events) is not None
