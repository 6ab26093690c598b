"""dracut's live path for real: a live ISO in Fedora's layout (pxetui.lab.dracut: LiveOS/
squashfs.img, images/pxeboot/vmlinuz and a dracut-made initrd.img, .treeinfo, El Torito),
imported with `pxetui import` and booted in QEMU from pxetui's generated menu, on BIOS and
UEFI. dracut's livenet fetches the squashfs over HTTP out of the .iso (nothing extracted),
dmsquash-live mounts the root inside it, and the root's /sbin/init prints the marker.

The image is built once per run (dracut ~20-40 s). Wall times go to PXETUI_E2E_TIMES.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from labkit import TIMES, Booted, require_dracut, require_lab

from pxetui import privileges, store
from pxetui.iso import library
from pxetui.lab import content, dracut
from pxetui.lab.run import Lab, LabOptions
from pxetui.menus import model

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(600)]

NAME = "fedora"
SQUASHFS = f"iso/{NAME}/LiveOS/squashfs.img"
# What profiles.fedora generates for a live image (docs/FIELD-NOTES.md, "The dracut live path").
GENERATED = f"root=live:{{http}}/{SQUASHFS} rd.live.image ip=dhcp"
# The VM's RAM per firmware. Measured with this image: on BIOS 192 MiB boots and 128 MiB panics
# unpacking the initramfs (22 MB gzip, 56 MB unpacked); on UEFI, GRUB 2.06 says "out of memory"
# loading it at 256 MiB and boots at 384. The RAM note pxetui import prints for fedora-live must
# not say less (it says 2 GiB: Fedora's own minimum for its desktop image).
MEMORY_MB = {"bios": 256, "uefi": 384}


@pytest.fixture(scope="session")
def live_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_dracut()
    out = tmp_path_factory.mktemp("dracut-live") / "fedora-live.iso"
    t0 = time.monotonic()
    dracut.build_iso(out, timeout=300)
    print(f"dracut live image built in {time.monotonic() - t0:.1f}s ({out.stat().st_size >> 20} MiB)")
    return out


class DracutLab(Lab):
    """The lab with the image imported by `pxetui import` (Lab._import) and its generated entry
    as the menu's default; the console, no emergency shell and the callback are appended."""

    def __init__(self, opts: LabOptions, iso: Path) -> None:
        super().__init__(opts)
        self.source, self.generated_args = iso, ""
        self.notes: list[str] = []  # the import's notes on this image (the RAM note)

    @property
    def marker(self) -> str:
        return dracut.MARKER

    def prepare_content(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.engine_state.mkdir(parents=True, exist_ok=True)
        for d in (self.opts.state_dir, self.dir):
            privileges.allow_search(d)
        iso = self.opts.state_dir / "fedora-live.iso"
        try:
            os.link(self.source, iso)  # the session's image, not copied (same file system)
        except OSError:
            shutil.copyfile(self.source, iso)
        privileges.share_tree(iso)  # served out of the .iso by the unprivileged services
        self._import(iso, NAME)
        conn = store.connect(self.engine_state / "pxetui.db")
        try:
            menu = model.load_menu(conn)
            self.notes = next(r.notes for r in library.list_isos(conn, menu) if r.name == NAME)
        finally:
            conn.close()
        entry = menu.get(NAME)
        assert entry is not None, [e.id for e in menu.entries]
        self.generated_args = entry.args
        entry.args = f"{entry.args} {dracut.EXTRA_ARGS}"
        self._save_menu(content.lab_menu(entry, menu))
        privileges.share_tree(self.root)


def boot_live(tmp_path: Path, iso: Path, name: str, firmware: str) -> tuple[Booted, str, list[str]]:
    """One boot; the generated arguments, and every file under the state dir after it."""
    require_lab(firmware)
    memory = MEMORY_MB[firmware]
    opts = LabOptions(state_dir=tmp_path, firmware=firmware, memory_mb=memory)
    t0 = time.monotonic()
    with DracutLab(opts, iso) as lab:
        vm = lab.boot()
        seconds = vm.wait_for(dracut.MARKER, 300)
        vm.wait_for(dracut.POWEROFF, content.CALLBACK_WAIT)  # after the callback's outcome
        assert lab.events is not None
        events = lab.events
        events.wait_until(lambda: any(u.get("stage") == "booted" for u in events.of("ClientUpdate", mac=opts.mac)),
                          30, f"'booted' stage for {opts.mac}")
        snapshot, console = events.snapshot(), vm.console_text()
        files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
        generated = lab.generated_args
        assert ram_noted(lab.notes) >= memory, lab.notes
    wall = time.monotonic() - t0
    with TIMES.open("a") as fh:
        fh.write(json.dumps({"test": name, "boot_s": round(seconds, 1), "wall_s": round(wall, 1),
                             "memory_mb": memory}) + "\n")
    print(f"{name}: marker after {seconds:.1f}s, lab wall {wall:.1f}s, {memory} MiB")
    return Booted(seconds=seconds, console=console, events=snapshot, mac=opts.mac), generated, files


def ram_noted(notes: list[str]) -> float:
    """MiB in the import's note: 'RAM: give clients at least 2.0 GiB; ...'."""
    found = [re.search(r"RAM: give clients at least ([\d.]+) (GiB|MiB)", n) for n in notes]
    m = next((f for f in found if f), None)
    assert m, notes
    return float(m[1]) * (1024 if m[2] == "GiB" else 1)


def line(console: str, tag: str) -> str:
    found = [ln.split(tag, 1)[1].strip() for ln in console.splitlines() if tag in ln]
    assert found, f"{tag} not on the console"
    return found[-1]


def assert_live_booted(b: Booted, generated: str, files: list[str]) -> None:
    assert generated == GENERATED, generated
    # The kernel booted with the generated arguments, the template filled with the lab's URL.
    cmdline = line(b.console, dracut.CMDLINE_LINE)
    assert any(a.startswith("root=live:http://") and a.endswith("/" + SQUASHFS) for a in cmdline.split()), cmdline
    assert {"rd.live.image", "ip=dhcp"} <= set(cmdline.split()), cmdline
    # dmsquash-live's root: the dm snapshot over LiveOS/rootfs.img from inside the squashfs.
    assert line(b.console, dracut.ROOT_LINE).startswith("/dev/mapper/live-rw / "), b.console[-2000:]
    # The booted root called back over the address dracut's DHCP gave it.
    assert content.CALLBACK_OK in b.console
    assert b.of("BootCallback", mac=b.mac, stage="booted")
    # livenet fetched the squashfs over HTTP, straight out of the .iso: nothing was extracted.
    # (service "http": pxetui's HTTP server; the capture reports the same request as seen on the wire)
    started = [e for e in b.of("TransferStarted", protocol="http", service="http") if e["path"] == SQUASHFS]
    finished = [e for e in b.of("TransferFinished", protocol="http", service="http") if e["path"] == SQUASHFS]
    assert started and finished, [e["path"] for e in b.of("TransferStarted")]
    assert finished[-1]["status"] == 200 and finished[-1]["bytes_done"] == started[-1]["size"] > 0, finished
    assert not [f for f in files if f.endswith(("squashfs.img", "rootfs.img", "initrd.img", "vmlinuz"))], files
    stages = b.assert_timeline("menu", "rootfs")
    assert stages.index("initrd") < stages.index("rootfs") < stages.index("booted"), stages
    rootfs = next(s for s in b.of("ClientUpdate", mac=b.mac)[-1]["stages"] if s["stage"] == "rootfs")
    assert SQUASHFS in json.dumps(rootfs), rootfs


def test_dracut_live_bios(tmp_path: Path, live_iso: Path) -> None:
    # SeaBIOS + the NIC's iPXE ROM: pxetui's iPXE script fetches kernel and initrd out of the
    # .iso over HTTP; dracut's initrd does DHCP and fetches the squashfs.
    b, generated, files = boot_live(tmp_path, live_iso, "dracut-live-bios", "bios")
    assert_live_booted(b, generated, files)
    assert b.timeline() == ["discover", "offer", "ack", "menu", "kernel", "initrd", "rootfs", "booted"]
    paths = [e["path"] for e in b.of("TransferStarted", protocol="http", service="http")]
    assert {f"iso/{NAME}/images/pxeboot/vmlinuz", f"iso/{NAME}/images/pxeboot/initrd.img"} <= set(paths), paths


def test_dracut_live_uefi(tmp_path: Path, live_iso: Path) -> None:
    # OVMF's PXE client -> GRUB -> pxetui's grub.cfg: the same entry on UEFI.
    b, generated, files = boot_live(tmp_path, live_iso, "dracut-live-uefi", "uefi")
    assert_live_booted(b, generated, files)
    assert b.timeline() == ["discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd", "rootfs",
                            "booted"]
    paths = [e["path"] for e in b.of("TransferStarted", protocol="tftp", service="tftp")]
    assert "grubx64.efi" in paths and f"iso/{NAME}/images/pxeboot/initrd.img" in paths, paths
