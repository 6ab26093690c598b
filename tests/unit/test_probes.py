"""Config lookups (pxetui/probes.py): the per-machine names PXELINUX and GRUB try before their
general config, whose "file not found" is normal; the general names are not lookups."""

from __future__ import annotations

import pytest

from pxetui.probes import expected_miss, is_config_lookup

LOOKUPS = [
    "pxelinux.cfg/01-52-54-00-77-00-10",  # ARP type 1 + the MAC
    "pxelinux.cfg/a8b2c3d4-1234-5678-9abc-def012345678",  # the client's UUID
    "pxelinux.cfg/0A4D000A", "pxelinux.cfg/0A4D000", "pxelinux.cfg/0A", "pxelinux.cfg/0",
    "/pxelinux.cfg/C0A80005",  # a leading slash
    "bios/pxelinux.cfg/01-52-54-00-77-00-10",  # pxelinux.0 in a subdirectory asks below it
    "grub/grub.cfg-01-52-54-00-77-00-10", "grub.cfg-0A4D000A", "boot\\grub\\grub.cfg-0A4D",
    "grub.cfg-a8b2c3d4-1234-5678-9abc-def012345678",
]
NOT_LOOKUPS = [
    "pxelinux.cfg/default",  # without it PXELINUX has no menu: a real problem
    "grub/grub.cfg", "grub.cfg", "pxelinux.0", "ldlinux.c32", "boot.ipxe",
    "pxelinux.cfg/menu.txt", "pxelinux.cfg/01-52-54-00-77-00-10.bak", "lab/pxelinux.cfg.tar",
    "pxelinux.cfg/0A4D000A0",  # nine hex digits: not an IPv4 address
]


@pytest.mark.parametrize("path", LOOKUPS)
def test_lookups(path: str) -> None:
    assert is_config_lookup(path)
    assert expected_miss(path, "file not found")
    assert expected_miss(path, "TFTP error 1 (file not found): file not found")  # the capture's words
    assert not expected_miss(path, "timed out waiting for ACK")  # a lookup can fail for real


@pytest.mark.parametrize("path", NOT_LOOKUPS)
def test_not_lookups(path: str) -> None:
    assert not is_config_lookup(path)
    assert not expected_miss(path, "file not found")
