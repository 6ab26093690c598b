"""Boot policy: option 93 kinds, iPXE detection, HTTP boot, defaults from the TFTP root,
per-MAC overrides, boot once, allow/deny. No packets."""

from __future__ import annotations

from pathlib import Path

import pytest
from services import base_config

from pxetui.dhcp.policy import BootPolicy, ClientFacts, client_kind

MAC = "52:54:00:12:34:56"


def facts(arch: int | None = None, vc: str | None = "PXEClient", ipxe: bool = False) -> ClientFacts:
    return ClientFacts(MAC, arch, vc, ipxe)


@pytest.mark.parametrize("arch, kind", [(0, "bios"), (6, "uefi32"), (7, "uefi64"), (9, "uefi64"),
                                        (11, "arm64"), (16, "http64"), (19, "http64")])
def test_option_93_kinds(arch: int, kind: str) -> None:
    vc = "HTTPClient:Arch:00016" if arch in (16, 19) else f"PXEClient:Arch:{arch:05d}"
    assert client_kind(facts(arch, vc)) == kind


def test_ipxe_and_plain_clients() -> None:
    assert client_kind(facts(0, ipxe=True)) == "ipxe"
    assert client_kind(facts(None, None)) is None  # an OS's DHCP client
    assert client_kind(facts(None, "PXEClient:Arch:00000")) == "bios"  # ROM older than option 93


def layout(tmp_path: Path, *names: str) -> BootPolicy:
    cfg = base_config(tmp_path)
    cfg.tftp_root.mkdir(parents=True, exist_ok=True)
    for n in names:
        (cfg.tftp_root / n).write_bytes(b"x")
    return BootPolicy(cfg)


def test_defaults_found_in_tftp_root(tmp_path: Path) -> None:
    p = layout(tmp_path, "undionly.kpxe", "grubnetx64.efi")
    assert p.decide(facts(0))[0].boot_file == "undionly.kpxe"
    choice = p.decide(facts(7))[0]
    assert choice.boot_file == "grubnetx64.efi" and "found" in choice.reason
    assert p.decide(facts(0, ipxe=True))[0].boot_file == "http://10.99.0.1/boot.ipxe"


def test_shim_preferred_in_full_mode_ipxe_under_proxy(tmp_path: Path) -> None:
    cfg = base_config(tmp_path)
    cfg.tftp_root.mkdir(parents=True)
    for n in ("shimx64.efi", "grubx64.efi", "ipxe.efi"):
        (cfg.tftp_root / n).write_bytes(b"x")
    assert BootPolicy(cfg).decide(facts(7))[0].boot_file == "shimx64.efi"
    assert BootPolicy(cfg, proxy=True).decide(facts(7))[0].boot_file == "ipxe.efi"


def test_missing_default_says_so(tmp_path: Path) -> None:
    choice = layout(tmp_path).decide(facts(0))[0]
    assert choice.boot_file == "pxelinux.0" and "not found" in choice.reason


def test_configured_files_and_http_url(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, dhcp={"boot_files": {"bios": "custom.0", "http64": "boot/ipxe.efi",
                                                      "ipxe": "http://10.0.0.9/menu.ipxe"}})
    p = BootPolicy(cfg)
    assert p.decide(facts(0))[0].boot_file == "custom.0"
    http = p.decide(facts(16, "HTTPClient:Arch:00016"))[0]
    assert http.boot_file == "http://10.99.0.1/boot/ipxe.efi" and http.vendor_class == "HTTPClient"
    assert p.decide(facts(7, ipxe=True))[0].boot_file == "http://10.0.0.9/menu.ipxe"


def test_per_mac_override_but_no_ipxe_loop(tmp_path: Path) -> None:
    p = BootPolicy(base_config(tmp_path), {MAC: {"boot_file": "undionly.kpxe", "boot_once": None}})
    assert p.decide(facts(0))[0].boot_file == "undionly.kpxe"
    # docs/FIELD-NOTES.md: iPXE handed iPXE again chainloads forever; it gets the script instead
    assert p.decide(facts(0, ipxe=True))[0].boot_file == "http://10.99.0.1/boot.ipxe"
    p.set_overrides({MAC: {"boot_file": "http://10.99.0.1/host.ipxe"}})
    assert p.decide(facts(0, ipxe=True))[0].boot_file == "http://10.99.0.1/host.ipxe"


def test_boot_once_local_is_consumed_once(tmp_path: Path) -> None:
    p = BootPolicy(base_config(tmp_path), {MAC: {"boot_once": "local"}})
    choice, consumed = p.decide(facts(7), now=1000.0)
    assert choice.local and choice.boot_file is None and consumed
    again, consumed = p.decide(facts(7), now=1010.0)  # same boot: DHCP then 4011 / iPXE
    assert again.local and not consumed
    later, _ = p.decide(facts(7), now=5000.0)
    assert not later.local and later.boot_file


def test_allow_and_deny(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, dhcp={"allow_unknown": False, "allow": ["52:54:00:00:00:01"],
                                      "deny": ["52:54:00:00:00:02"],
                                      "reservations": [{"mac": "52:54:00:00:00:03"}]})
    p = BootPolicy(cfg)
    assert p.admitted("52:54:00:00:00:01") is None
    assert p.admitted("52:54:00:00:00:02") == "denied MAC"
    assert p.admitted("52:54:00:00:00:03") is None  # a reservation is known
    assert "unknown MAC" in (p.admitted("52:54:00:00:00:04") or "")
