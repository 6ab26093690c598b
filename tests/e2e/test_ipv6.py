"""OVMF booting over IPv6 only from pxetui on the lab network (`pxetui lab --ipv6`, issue 17).

The lab bridge has fd77::1/64 beside its IPv4 address, the engine serves DHCPv6 (`--ipv6`)
beside DHCPv4, a bridge nftables table drops IPv4 and ARP at the VM's port (IPv4 is off for
the client's segment), and OVMF's fw_cfg switches skip its IPv4 PXE client (docs/FIELD-NOTES.md "OVMF over IPv6"). Each test asserts
the busybox initrd's marker on the serial console, its callback over IPv6 (from its link-local
address: busybox has no DHCPv6 client), and the tracker's timeline in order.

Each boot is labkit.boot with the lab's `ipv6` option; wall times go to PXETUI_E2E_TIMES.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from labkit import Booted, boot
from netns import require_tool

from pxetui.lab import content
from pxetui.lab.network import SERVER_IP6

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(330)]

BOOT_TIMEOUT = 240.0  # TCG: PXEv6 reaches the marker in ~1 min, HTTPv6 after ~60 s of HTTPv4 first


def boot6(tmp_path: Path, name: str, how: str) -> Booted:
    """One IPv6-only boot in a fresh lab (always torn down); the system is up at the marker."""
    require_tool("nft", package="nftables")  # LabNetwork.ipv4_off
    return boot(tmp_path, name, firmware="uefi", ipv6=how, timeout=BOOT_TIMEOUT)


def transfers(b: Booted, protocol: str) -> list[dict[str, object]]:
    return b.of("TransferStarted", protocol=protocol, service=protocol)


def paths(b: Booted, protocol: str) -> list[str]:
    return [str(e["path"]).lstrip("/") for e in transfers(b, protocol)]


def assert_ipv6_only(b: Booted) -> None:
    """The firmware asked over DHCPv6, never DHCPv4, every transfer came over IPv6, and the
    booted system called back over IPv6."""
    assert content.CALLBACK_OK in b.console
    callbacks = b.of("BootCallback", mac=b.mac, stage="booted")
    assert callbacks and all(":" in str(e.get("ip")) for e in callbacks), callbacks
    solicits = [e for e in b.of("DhcpPacket", mac=b.mac, msg_type="SOLICIT")]
    assert solicits, "no DHCPv6 Solicit from the firmware was seen"
    v4 = [e for e in b.of("DhcpPacket", mac=b.mac) if e.get("msg_type") in ("DISCOVER", "REQUEST")
          and e.get("port") != 547]
    assert not v4, f"DHCPv4 on a segment without it: {v4[:2]}"
    assert not b.of("LeaseGranted", service="dhcp"), "pxetui leased an IPv4 address"
    for proto in ("tftp", "http"):
        for e in transfers(b, proto):
            assert ":" in str(e.get("ip")), f"{proto} {e['path']} came over IPv4 from {e.get('ip')}"


def test_ovmf_pxe_over_ipv6(tmp_path: Path) -> None:
    # OVMF PXEv6: DHCPv6 (option 59 tftp://[fd77::1]/grubx64.efi) -> GRUB over TFTPv6 -> its
    # menu, kernel and initrd over TFTPv6 from the server that sent it.
    b = boot6(tmp_path, "uefi-pxe6", "pxe")
    assert content.MARKER in b.console
    assert_ipv6_only(b)
    decision = b.of("BootDecision", mac=b.mac, service="dhcp6")
    assert decision and decision[0]["boot_file"] == f"tftp://[{SERVER_IP6}]/grubx64.efi", decision[:1]
    tftp = paths(b, "tftp")
    assert tftp[:1] == ["grubx64.efi"], tftp
    assert {"grub/grub.cfg", "lab/vmlinuz", "lab/initrd.gz"} <= set(tftp), tftp
    assert not paths(b, "http"), "nothing goes over HTTP"
    b.assert_timeline("bootloader", "menu")


def test_ovmf_http_boot_over_ipv6(tmp_path: Path) -> None:
    # UEFI HTTP boot over IPv6: vendor class HTTPClient in the Solicit; the answer carries
    # option 59 http://[fd77::1]/ipxe.efi and option 16 HTTPClient (else OVMF cancels). iPXE
    # then asks DHCPv6 itself (user class iPXE) and gets its script, whose kernel and initrd
    # URLs are IPv6 ones. (Debian's GRUB 2.06 as the HTTP boot file stops at its prompt: it
    # finds no network configuration after HTTP boot, docs/FIELD-NOTES.md.)
    b = boot6(tmp_path, "uefi-http6", "http")
    assert content.MARKER in b.console
    assert_ipv6_only(b)
    solicit = b.of("DhcpPacket", mac=b.mac, msg_type="SOLICIT")
    assert any(str(e.get("vendor_class") or "").startswith("HTTPClient") for e in solicit), solicit[:1]
    decision = b.of("BootDecision", mac=b.mac, service="dhcp6", firmware="http64")
    assert decision and decision[0]["boot_file"].startswith(f"http://[{SERVER_IP6}]"), decision[:1]
    assert decision[0]["boot_file"].endswith("/ipxe.efi"), decision[0]
    ipxe = [e for e in b.of("DhcpPacket", mac=b.mac, service="dhcp6", direction="in") if e.get("ipxe")]
    assert ipxe, "iPXE's own DHCPv6 was not seen"
    http = paths(b, "http")
    assert http[:1] == ["ipxe.efi"], http
    assert {"boot.ipxe", "lab/vmlinuz", "lab/initrd.gz"} <= set(http), http
    assert not paths(b, "tftp"), "nothing goes over TFTP"
    b.assert_timeline("bootloader", "menu")
