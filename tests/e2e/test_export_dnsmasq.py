"""Graduating to dnsmasq, for real: `pxetui export --format dnsmasq` writes the lab's config,
dnsmasq (DHCP and TFTP) runs with it on the lab network, pxetui runs with DHCP off and TFTP
disabled (HTTP only: the per-request iPXE script, the kernel and initrd), and real firmware
in QEMU boots to the busybox marker: SeaBIOS + the NIC's iPXE ROM (iPXE at once: the script
URL), and OVMF (PXE: snponly.efi over dnsmasq's TFTP, then iPXE: the script URL, no loop), also
with the proxyDHCP export beside the lab's site DHCP server.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import require_lab

from pxetui import privileges
from pxetui.lab import content
from pxetui.lab.run import Lab, LabOptions

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(420)]
DNSMASQ = "/usr/sbin/dnsmasq"
RESERVED = 20  # the VM's reserved address in the lab subnet


class DnsmasqLab(Lab):
    """The lab with DHCP and TFTP from dnsmasq running `pxetui export`'s config."""

    def __init__(self, opts: LabOptions) -> None:
        super().__init__(opts)
        self.tftp = self.dir / "tftp"  # dnsmasq's TFTP root: only what the export says to copy
        self.config = self.dir / "pxetui.toml"
        self.exported = self.dir / "dnsmasq.conf"
        self.dnsmasq_log = self.dir / "dnsmasq.log"
        self.dnsmasq: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        base = self.net.subnet_base
        start, end = self.net.dhcp_range()
        self.config.write_text(f'''
interface = "{self.net.bridge}"
state_dir = "{self.engine_state}"
[dhcp]
mode = "off"
range = "{start}-{end}"
boot_files = {{ uefi64 = "snponly.efi" }}
[[dhcp.reservations]]
mac = "{self.opts.mac}"
ip = "{base}.{RESERVED}"
hostname = "labvm"
[tftp]
enabled = false
root = "{self.tftp}"
[http]
root = "{self.root}"
port = {self.opts.http_port}
''')

    def serve_command(self) -> list[str]:
        return [sys.executable, "-m", "pxetui", "serve", "--config", str(self.config)]

    def expected_services(self) -> set[str]:
        return {"http"}

    def export(self) -> str:
        """`pxetui export` inside the lab namespace (it reads the bridge's address), then what
        its comments say to do: copy the boot loaders into the TFTP root."""
        self.net.ns.run(sys.executable, "-m", "pxetui", "export", "--config", str(self.config),
                        "--format", "dnsmasq", "--mode", self.opts.dhcp, "-o", str(self.exported),
                        timeout=60)
        text = self.exported.read_text()
        self.tftp.mkdir(parents=True, exist_ok=True)
        for cmd in re.findall(r"^#   (cp \S+ \S+)$", text, re.M):
            subprocess.run(shlex.split(cmd), check=True, timeout=30)
        privileges.share_tree(self.tftp)  # dnsmasq's TFTP drops to its own user
        return text

    def start_dnsmasq(self) -> None:
        r = subprocess.run([DNSMASQ, "--test", f"--conf-file={self.exported}"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and "syntax check OK" in r.stderr, (r.stderr, self.exported.read_text())
        log = open(self.dnsmasq_log, "wb")  # noqa: SIM115 - the child owns it
        self.dnsmasq = self.net.ns.popen(
            [DNSMASQ, "--no-daemon", f"--conf-file={self.exported}", "--log-dhcp",
             f"--dhcp-leasefile={self.dir / 'dnsmasq.leases'}", f"--pid-file={self.dir / 'dnsmasq.pid'}"],
            stdout=log)

    def start(self) -> DnsmasqLab:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.prepare_content()
            self.net.create()
            if self.opts.dhcp == "proxy":
                self._start_site_dhcp()  # the site's server: addresses only
            self.write_config()
            self.export()
            self.start_dnsmasq()
            self._start_engine()
            assert self.dnsmasq is not None and self.dnsmasq.poll() is None, self.dnsmasq_log.read_text()
        except BaseException:
            self.close()
            raise
        return self


def boot_with_dnsmasq(tmp_path: Path, firmware: str,
                      dhcp: str = "full") -> tuple[str, str, list[dict[str, object]], DnsmasqLab]:
    require_lab(firmware)
    opts = LabOptions(state_dir=tmp_path, firmware=firmware, content="busybox", dhcp=dhcp)
    with DnsmasqLab(opts) as lab:
        vm = lab.boot()
        vm.wait_for(lab.marker, 300)
        console = vm.console_text()
        assert lab.events is not None
        events = lab.events.snapshot()
    return console, lab.dnsmasq_log.read_text(), events, lab


def http_paths(events: list[dict[str, object]]) -> set[str]:
    return {str(e["path"]).lstrip("/") for e in events
            if e.get("type") == "TransferStarted" and e.get("protocol") == "http"}


def sent_file(log: str, name: str) -> bool:
    """dnsmasq --log-dhcp names the boot file it sent: in the BOOTP file field, or as option 67
    when the client asked for it (iPXE does)."""
    return bool(re.search(rf"(bootfile name: |option: 67 bootfile-name +){re.escape(name)}$", log, re.M))


def assert_served_by_dnsmasq(lab: DnsmasqLab, log: str, events: list[dict[str, object]]) -> None:
    ip = f"{lab.net.subnet_base}.{RESERVED}"
    # the reservation came through the export: dnsmasq acked the reserved address to the VM
    assert re.search(rf"DHCPACK\(\S+\) {re.escape(ip)} {lab.opts.mac} labvm", log), log
    # iPXE (user class iPXE / option 175) got the script URL from dnsmasq, not iPXE again
    assert sent_file(log, f"http://{lab.net.server_ip}/boot.ipxe"), log
    # pxetui served no DHCP and no TFTP; its HTTP served the script, kernel and initrd
    assert not [e for e in events if e.get("type") == "DhcpPacket" and e.get("service") == "dhcp"]
    assert not [e for e in events if e.get("type") == "TransferStarted" and e.get("service") == "tftp"]
    assert {"boot.ipxe", "lab/vmlinuz", "lab/initrd.gz"} <= http_paths(events), http_paths(events)


def test_bios_ipxe_rom_boots_from_exported_dnsmasq(tmp_path: Path) -> None:
    console, log, events, lab = boot_with_dnsmasq(tmp_path, "bios")
    assert content.MARKER in console
    assert_served_by_dnsmasq(lab, log, events)
    # the ROM is iPXE already: straight to the script URL, nothing over TFTP
    assert not re.search(r"^dnsmasq-tftp(\[\d+\])?: sent ", log, re.M), log


def test_uefi_ovmf_boots_from_exported_dnsmasq(tmp_path: Path) -> None:
    console, log, events, lab = boot_with_dnsmasq(tmp_path, "uefi")
    assert content.MARKER in console
    assert_served_by_dnsmasq(lab, log, events)
    # OVMF's PXE got the configured iPXE over dnsmasq's TFTP (copied as the export said)
    assert re.search(r"^dnsmasq-tftp(\[\d+\])?: sent \S+/snponly\.efi to ", log, re.M), log
    assert sent_file(log, "snponly.efi"), log


def test_uefi_ovmf_boots_from_exported_dnsmasq_proxy(tmp_path: Path) -> None:
    # The site's dnsmasq hands out the address; the exported proxyDHCP (pxe-service) answers
    # OVMF's PXE with snponly.efi and the iPXE it runs with the script URL.
    console, log, events, lab = boot_with_dnsmasq(tmp_path, "uefi", dhcp="proxy")
    assert content.MARKER in console
    assert re.search(r"^dnsmasq-tftp(\[\d+\])?: sent \S+/snponly\.efi to ", log, re.M), log
    assert re.search(rf"^dnsmasq-dhcp: \d+ PXE\(br0\) {lab.opts.mac} proxy$", log, re.M), log
    assert sent_file(log, f"http://{lab.net.server_ip}/boot.ipxe"), log  # iPXE: the script
    assert not [e for e in events if e.get("type") == "DhcpPacket" and e.get("service") == "dhcp"]
    assert {"boot.ipxe", "lab/vmlinuz", "lab/initrd.gz"} <= http_paths(events), http_paths(events)
