"""Helpers for the end-to-end boots: run one lab boot, check what the engine saw."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netns import require, require_root, require_tool

from pxetui.events import apply_file_rows
from pxetui.lab import content, dracut
from pxetui.lab.qemu import AAVMF_DIR, ARM64_FIRMWARES, OVMF_DIR
from pxetui.lab.run import Lab, LabOptions
from pxetui.loaders import ARM64_INITRD, ARM64_KERNEL, DI_ARM64_PACKAGE, find_loaders
from pxetui.stages import STAGES

TIMES = Path(os.environ.get("PXETUI_E2E_TIMES", "/tmp/pxetui-e2e-times.jsonl"))


def require_arm64_lab() -> None:
    """AAVMF on qemu-system-aarch64 booting the arm64 installer served from its package."""
    require_root()
    require_tool("qemu-system-aarch64", package="qemu-system-arm")
    require((AAVMF_DIR / "AAVMF_CODE.fd").exists(), "needs AAVMF (Debian package qemu-efi-aarch64)")
    found = find_loaders()
    missing = [n for n in ("shimaa64.efi", "grubaa64.efi", ARM64_KERNEL, ARM64_INITRD) if found.path(n) is None]
    require(not missing, f"needs {missing} (Debian package {DI_ARM64_PACKAGE})")


def require_lab(firmware: str = "bios") -> None:
    if firmware in ARM64_FIRMWARES:
        require_arm64_lab()
        return
    require_root()
    require_tool("qemu-system-x86_64", package="qemu-system-x86")
    require_tool("/usr/sbin/dnsmasq", package="dnsmasq-base")
    for path, pkg in (
        (content.KERNEL, "debian-installer-12-netboot-amd64"),
        (content.BUSYBOX, "busybox-static"),
        (content.MEMTEST_ISO, "memtest86+"),
    ):
        require(path.exists(), f"needs {path} (Debian package {pkg})")
    found = find_loaders()
    missing = [n for n in content.LOADERS if found.path(n) is None]
    require(not missing, f"needs boot loaders {missing} (pxetui doctor names their packages)")
    if firmware == "bios":
        require(Path("/usr/share/qemu/efi-virtio.rom").exists() or bool(shutil.which("qemu-system-x86_64")) and
                Path("/usr/lib/ipxe/qemu/efi-virtio.rom").exists(), "needs the iPXE ROMs (ipxe-qemu)")
    else:
        require((OVMF_DIR / "OVMF_CODE_4M.fd").exists(), "needs OVMF (Debian package ovmf)")


def require_dracut() -> None:
    """What the Fedora-layout live image needs (pxetui.lab.dracut): dracut-core, dracut-live,
    dracut-network, squashfs-tools, the lab kernel's /lib/modules."""
    require_root()
    lacking = dracut.missing()
    require(not lacking, f"needs {'; '.join(lacking)}")


@dataclass
class Booted:
    seconds: float  # VM start to the marker
    console: str
    events: list[dict[str, Any]]
    mac: str

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type_
                and all(e.get(k) == v for k, v in match.items())]

    def files(self) -> list[dict[str, Any]]:
        """Every file row the tracker reported for this client (live updates carry deltas)."""
        rows: dict[str, dict[str, Any]] = {}
        for u in self.of("ClientUpdate", mac=self.mac):
            apply_file_rows(rows, u)
        return list(rows.values())

    def timeline(self) -> list[str]:
        ups = self.of("ClientUpdate", mac=self.mac)
        assert ups, f"the tracker reported nothing for {self.mac}"
        return [s["stage"] for s in ups[-1]["stages"]]

    def assert_timeline(self, *required: str, booted: bool = True,
                        base: tuple[str, ...] | None = None) -> list[str]:
        """Stages in order, the required ones present, and no diagnosis raised on the way.

        `booted=False` for systems that cannot call back (the installer, memtest): their
        timeline ends at the kernel (and initrd) stage."""
        stages = self.timeline()
        idx = [STAGES.index(s) for s in stages]
        assert idx == sorted(idx) and len(set(idx)) == len(idx), f"stages out of order: {stages}"
        if base is None:
            base = ("discover", "ack", "kernel", "initrd", "booted") if booted else ("discover", "ack")
        missing = [s for s in (*base, *required) if s not in stages]
        assert not missing, f"timeline {stages} lacks {missing}"
        diagnoses = {u["diagnosis"] for u in self.of("ClientUpdate", mac=self.mac) if u.get("diagnosis")}
        assert not diagnoses, f"the tracker diagnosed a healthy boot: {diagnoses}"
        return stages


def boot(tmp_path: Path, name: str, *, firmware: str = "bios", content_kind: str = "busybox",
         dhcp: str = "full", boot_files: dict[str, str] | None = None, marker: str | None = None,
         timeout: float = 300.0, memory_mb: int = 384,
         root_files: dict[str, bytes] | None = None, vm_args: list[str] | None = None,
         ipv6: str = "") -> Booted:
    """One boot in a fresh lab; the lab is always torn down. Wall time goes to TIMES.

    `root_files` are written into the served root before the VM starts (a real file there
    wins over pxetui's generated one, as in a hand-built /srv/tftp)."""
    require_lab(firmware)
    opts = LabOptions(state_dir=tmp_path, firmware=firmware, content=content_kind, dhcp=dhcp,
                      boot_files=boot_files or {}, memory_mb=memory_mb, vm_args=vm_args or [], ipv6=ipv6)
    t0 = time.monotonic()
    with Lab(opts) as lab:
        for rel, data in (root_files or {}).items():
            (lab.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (lab.root / rel).write_bytes(data)
        vm = lab.boot()
        seconds = vm.wait_for(marker or lab.marker, timeout)
        assert lab.events is not None
        if content_kind in ("busybox", "live-iso"):  # the busybox initrd calls back
            # /init's last line: the callback's outcome is on the console before it
            vm.wait_for(content.POWEROFF, content.CALLBACK_WAIT)
            # the booted system's own DHCP and HTTP callback reached the engine: the tracker's
            # last stage follows the callback event, so wait for it (bounded)
            lab.events.wait_until(lambda: any(u.get("stage") == "booted" for u in
                                              lab.events.of("ClientUpdate", mac=opts.mac)),
                                  30, f"'booted' stage for {opts.mac}")
        events = lab.events.snapshot()
        console = vm.console_text()
    wall = time.monotonic() - t0
    with TIMES.open("a") as fh:
        fh.write(json.dumps({"test": name, "boot_s": round(seconds, 1), "wall_s": round(wall, 1)}) + "\n")
    print(f"{name}: marker after {seconds:.1f}s, lab wall {wall:.1f}s")
    return Booted(seconds=seconds, console=console, events=events, mac=opts.mac)
