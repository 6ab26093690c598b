"""The lab's virtual machine: QEMU with TCG (never KVM), serial console to a file.

Firmware:
- `bios`: SeaBIOS with the NIC's iPXE option ROM (ipxe-qemu) as the PXE client;
- `uefi`: OVMF with its own PXE client: virtio-net with `romfile=` empty, so the EDK2
  VirtioNetDxe + PxeBcDxe drivers boot it (docs/FIELD-NOTES.md: it asks TFTP for windowsize 4);
- `uefi-ipxe`: OVMF with iPXE's EFI ROM on the NIC;
- `secureboot`: OVMF built with Secure Boot and Microsoft's keys enrolled (OVMF_VARS_4M.ms.fd),
  which boots only signed binaries: Debian's shim (signed by Microsoft), then GRUB and the
  kernel signed by Debian.
- `aavmf`: an ARM64 machine (`qemu-system-aarch64 -M virt`, Cortex-A57) with AAVMF (EDK2 for
  ARM64, package qemu-efi-aarch64) and its own PXE client on virtio-net (`romfile=` empty);
  the serial console is the PL011 UART (ttyAMA0 for Linux).

TCG keeps CI reproducible on machines without /dev/kvm; `-accel tcg` is passed explicitly.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pxetui.lab.network import LabError, Namespace

OVMF_DIR = Path("/usr/share/OVMF")
AAVMF_DIR = Path("/usr/share/AAVMF")
FIRMWARES = ("bios", "uefi", "uefi-ipxe", "secureboot", "aavmf")
ARM64_FIRMWARES = ("aavmf",)  # run by qemu-system-aarch64


@dataclass
class VmSpec:
    firmware: str = "bios"
    mac: str = "52:54:00:77:00:10"
    memory_mb: int = 384
    tap: str = "tap0"
    nic: str = "virtio-net-pci"
    # A display adapter (still no window): memtest86+'s EFI build needs the firmware's GOP
    # framebuffer and stops with "efi_setup() failed" without one. Off otherwise: TCG time.
    vga: bool = False
    extra_args: list[str] = field(default_factory=list)  # appended as they are

    def __post_init__(self) -> None:
        if self.firmware not in FIRMWARES:
            raise LabError(f"firmware {self.firmware!r}: use one of {', '.join(FIRMWARES)}")
        if not 128 <= self.memory_mb <= 4096:
            raise LabError(f"memory {self.memory_mb} MiB: use 128..4096")


def _ovmf(code: str, vars_: str, vm_dir: Path, where: Path = OVMF_DIR, package: str = "ovmf") -> list[str]:
    code_p, vars_p = where / code, where / vars_
    for p in (code_p, vars_p):
        if not p.exists():
            raise LabError(f"{p} is missing: install the Debian package {package}")
    # The VARS store is written by the firmware (boot order, Secure Boot state): a copy per VM.
    vars_copy = vm_dir / f"vars-{vars_}"
    shutil.copyfile(vars_p, vars_copy)
    return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code_p}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]


def ovmf_ipv6_args(boot: str = "pxe") -> list[str]:
    """OVMF's fw_cfg switches for a boot over IPv6 only (docs/FIELD-NOTES.md "OVMF over IPv6").

    Without them OVMF tries PXEv4, PXEv6, HTTPv4, HTTPv6 in turn. `pxe`: PXE over IPv4 off, so
    PXEv6 is the first option. `http`: both PXE clients off; HTTPv4 is still tried first (no
    switch for it: ~60 s of unanswered DHCPv4 on a segment without IPv4), then HTTPv6."""
    if boot not in ("pxe", "http"):
        raise LabError(f"IPv6 boot {boot!r}: use pxe or http")
    args = ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"]
    if boot == "http":
        args += ["-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
    return args


def command(spec: VmSpec, vm_dir: Path, console: Path) -> list[str]:
    """The QEMU command line for `spec`; VARS copies go to `vm_dir`."""
    if spec.firmware in ARM64_FIRMWARES:
        return _arm64_command(spec, vm_dir, console)
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise LabError("qemu-system-x86_64 not found: install the Debian package qemu-system-x86")
    vm_dir.mkdir(parents=True, exist_ok=True)
    cmd = [qemu, "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", str(spec.memory_mb),
           "-nodefaults", "-no-user-config", "-display", "none", "-vga", "std" if spec.vga else "none",
           "-serial", f"file:{console}", "-monitor", "none", "-no-reboot",
           "-netdev", f"tap,id=n0,ifname={spec.tap},script=no,downscript=no"]
    nic = f"{spec.nic},netdev=n0,mac={spec.mac}"
    if spec.firmware == "bios":
        cmd += ["-machine", "pc", "-boot", "order=n"]
        cmd += ["-device", nic]  # QEMU's default ROM for the NIC is iPXE (ipxe-qemu)
    elif spec.firmware == "uefi":
        cmd += ["-machine", "q35", *_ovmf("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", vm_dir)]
        cmd += ["-device", nic + ",romfile="]
    elif spec.firmware == "uefi-ipxe":
        cmd += ["-machine", "q35", *_ovmf("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", vm_dir)]
        cmd += ["-device", nic]
    else:  # secureboot: the secboot build needs SMM to protect its variable store
        cmd += ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
                *_ovmf("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd", vm_dir)]
        cmd += ["-device", nic + ",romfile="]
    return cmd + spec.extra_args


def _arm64_command(spec: VmSpec, vm_dir: Path, console: Path) -> list[str]:
    """AAVMF on the `virt` board. TCG, as on x86; a Cortex-A57 (what Debian's arm64 kernel and
    AAVMF are tested on) rather than `max`, whose extra features only cost TCG time."""
    qemu = shutil.which("qemu-system-aarch64")
    if qemu is None:
        raise LabError("qemu-system-aarch64 not found: install the Debian package qemu-system-arm")
    vm_dir.mkdir(parents=True, exist_ok=True)
    return [qemu, "-accel", "tcg", "-machine", "virt", "-cpu", "cortex-a57", "-smp", "1",
            "-m", str(spec.memory_mb), "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", f"file:{console}", "-monitor", "none", "-no-reboot",
            *_ovmf("AAVMF_CODE.fd", "AAVMF_VARS.fd", vm_dir, AAVMF_DIR, "qemu-efi-aarch64"),
            "-netdev", f"tap,id=n0,ifname={spec.tap},script=no,downscript=no",
            "-device", f"{spec.nic},netdev=n0,mac={spec.mac},romfile=", *spec.extra_args]


@dataclass
class Vm:
    """One VM run in a namespace. Always `stop()` (idempotent)."""

    spec: VmSpec
    console: Path
    vm_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.vm_dir / "qemu.log"

    def start(self, ns: Namespace) -> Vm:
        self.console.parent.mkdir(parents=True, exist_ok=True)
        self.console.write_bytes(b"")
        cmd = command(self.spec, self.vm_dir, self.console)
        self.started = time.monotonic()
        self.proc = ns.popen(cmd, stdout=open(self.log, "wb"))  # noqa: SIM115 - closed with the process
        return self

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for(self, marker: str, timeout: float) -> float:
        """Seconds from start until `marker` appears on the serial console.

        Raises LabError when the VM exits first or the time runs out, with the console tail.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = self.running  # before the read: an exited VM's console is then final
            if marker in self.console_text():
                return time.monotonic() - self.started
            if not running:
                raise LabError(f"the VM exited ({self.exit_reason()}) before {marker!r}"
                               f"\n--- console tail ---\n{self.console_text()[-3000:]}")
            time.sleep(0.2)
        raise LabError(f"no {marker!r} on the VM console within {timeout:.0f}s"
                       f"\n--- console tail ---\n{self.console_text()[-3000:]}")

    def wait_exit(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def exit_reason(self) -> str:
        rc = self.proc.returncode if self.proc else None
        tail = self.log.read_text(errors="replace").strip()[-500:] if self.log.exists() else ""
        return f"exit code {rc}" + (f": {tail}" if tail else "")

    def stop(self) -> None:
        if self.proc is not None:
            Namespace.stop(self.proc, timeout=3)
