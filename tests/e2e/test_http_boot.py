"""UEFI HTTP boot (DESIGN boot flow 5) from pxetui on the lab network: OVMF with its PXE
clients switched off asks DHCP as `HTTPClient:Arch:00016`, pxetui answers with the URL of iPXE
(served by pxetui's HTTP from the installed loaders), iPXE asks again and gets the HTTP script,
then the kernel and initrd over HTTP; the booted system prints the marker on the serial console.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from labkit import Booted, require_lab

from pxetui.lab import content
from pxetui.lab.run import Lab, LabOptions

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(420)]

# OVMF's fw_cfg switches: no PXE over IPv4/IPv6, so the boot options left are UEFI HTTP boot.
NO_PXE = ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
          "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]


def http_boot(tmp_path: Path, timeout: float = 300.0) -> Booted:
    require_lab("uefi")
    opts = LabOptions(state_dir=tmp_path, firmware="uefi", vm_args=NO_PXE)
    t0 = time.monotonic()
    with Lab(opts) as lab:
        vm = lab.boot()
        seconds = vm.wait_for(lab.marker, timeout)
        vm.wait_for(content.POWEROFF, content.CALLBACK_WAIT)
        assert lab.events is not None
        lab.events.wait_until(lambda: any(u.get("stage") == "booted" for u in
                                          lab.events.of("ClientUpdate", mac=opts.mac)),
                              30, f"'booted' stage for {opts.mac}")
        events = lab.events.snapshot()
        console = vm.console_text()
    print(f"uefi-http-boot: marker after {seconds:.1f}s, lab wall {time.monotonic() - t0:.1f}s")
    return Booted(seconds=seconds, console=console, events=events, mac=opts.mac)


def test_ovmf_http_boot_ipxe_script(tmp_path: Path) -> None:
    b = http_boot(tmp_path)
    assert content.CALLBACK_OK in b.console
    assert b.of("BootCallback", mac=b.mac, stage="booted")
    # The firmware's own DHCP: HTTPClient in, the URL of iPXE out, accepted (no DECLINE).
    first = b.of("DhcpPacket", mac=b.mac, service="dhcp", direction="in", msg_type="DISCOVER")[0]
    assert first["vendor_class"].startswith("HTTPClient:Arch:00016")
    decision = b.of("BootDecision", mac=b.mac, firmware="http64")[0]
    assert decision["boot_file"].startswith("http://") and decision["boot_file"].endswith("/ipxe.efi")
    assert not b.of("DhcpPacket", mac=b.mac, service="dhcp", msg_type="DECLINE"), \
        "the firmware declined pxetui's ACK"
    assert "Station IP address is" in b.console
    http = [e["path"].lstrip("/") for e in b.of("TransferStarted", protocol="http", service="http")]
    assert http[0] == "ipxe.efi", http
    assert {"boot.ipxe", "lab/vmlinuz", "lab/initrd.gz"} <= set(http)
    assert not b.of("TransferStarted", protocol="tftp", service="tftp"), "nothing goes over TFTP"
    b.assert_timeline("menu")
