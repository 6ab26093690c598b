"""`pxetui lab --headless`: boots, and leaves nothing behind: not after a boot, not after
Ctrl-C, not after the VM dies."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit import require_lab
from netns import REPO, wait_for

from pxetui.lab import content

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(420)]


def start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "pxetui", "lab", "--headless", "--state-dir",
                             str(tmp_path), *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def namespace_of(p: subprocess.Popen[str]) -> str:
    assert p.stdout is not None
    first = p.stdout.readline()
    m = re.search(r"namespace (pxlab[0-9a-f]+)", first)
    assert m, f"no namespace in {first!r}"
    return m.group(1)


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def qemu_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    pids = []
    for pid in out.split():
        try:
            if "qemu-system" in Path(f"/proc/{pid}/cmdline").read_text():
                pids.append(int(pid))
        except OSError:
            pass
    return pids


def _cmdline(d: Path) -> str:
    try:
        return (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def finish(p: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise AssertionError(f"pxetui lab did not finish within {timeout}s:\n{out}") from None
    return out


def test_lab_headless_boot_then_gone(tmp_path: Path) -> None:
    require_lab()
    p = start(tmp_path, "--timeout", "300")
    ns = namespace_of(p)
    out = finish(p, 400)
    assert p.returncode == 0, out
    assert f"{content.MARKER!r} on the console" in out
    assert content.CALLBACK_OK in (tmp_path / "lab/console.log").read_text(errors="replace")
    assert ns not in namespaces()


def test_lab_ctrl_c_tears_down(tmp_path: Path) -> None:
    require_lab()
    p = start(tmp_path)
    ns = namespace_of(p)
    pids = wait_for(lambda: qemu_pids(ns), timeout=60, what="the VM to start")
    time.sleep(2)  # mid-boot
    os.killpg(p.pid, signal.SIGINT)
    out = finish(p, 30)
    assert p.returncode == 130, out
    assert ns not in namespaces()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"QEMU {pid} survived Ctrl-C"


def test_lab_vm_death_tears_down(tmp_path: Path) -> None:
    require_lab()
    p = start(tmp_path)
    ns = namespace_of(p)
    pids = wait_for(lambda: qemu_pids(ns), timeout=60, what="the VM to start")
    os.kill(pids[0], signal.SIGKILL)  # the VM dies under the lab
    out = finish(p, 30)
    assert p.returncode == 1, out
    assert "the VM exited" in out
    assert ns not in namespaces()


def test_lab_ui_mode_keeps_the_lab_when_the_vm_dies_and_boots_it_again(tmp_path: Path) -> None:
    # The UI path of `pxetui lab` with a stand-in UI: it gets the engine's control socket, the
    # console file and the VM's keeper. When the VM dies under the UI, the lab stays up (the
    # engine keeps serving), the keeper says the VM is off, and booting again starts a new
    # QEMU in the lab; when the UI returns, everything goes.
    from pxetui.control import is_live
    from pxetui.lab.keeper import Keeper
    from pxetui.lab.run import LabOptions, run_with_ui

    require_lab()
    seen: dict[str, object] = {}

    def vm_pid(console: Path, but: int | None = None) -> int | None:
        # this lab's VM: the QEMU whose serial console is our file (other labs may be running)
        return next((int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()
                     and int(d.name) != but and f"file:{console}" in _cmdline(d)), None)

    def ui(sock: Path, console: Path, vm: Keeper) -> int:
        seen["console"] = console
        pid = wait_for(lambda: vm_pid(console), timeout=60, what="the VM to start")
        seen["ns"] = Path(f"/proc/{pid}/ns/net").stat().st_ino
        os.kill(pid, signal.SIGKILL)
        off = wait_for(lambda: (s := vm.status()).state == "off" and s, timeout=30,
                       what="the keeper to see the VM gone")
        seen["off"] = off.detail
        seen["live"] = is_live(sock)  # the engine still serves the lab network
        again = vm.boot()
        seen["boots"] = again.boots
        seen["again"] = wait_for(lambda: vm_pid(console, but=pid), timeout=60, what="a new VM")
        return 7

    assert run_with_ui(LabOptions(state_dir=tmp_path), 300, ui) == 7
    assert seen["off"] == "was killed (signal 9)"
    assert seen["live"] is True
    assert seen["boots"] == 2
    assert seen["console"] == tmp_path / "lab/console.log"
    assert not Path(f"/proc/{seen['again']}").exists(), "the second VM went with the lab"
    gone = [n.split()[0] for n in namespaces().splitlines()]
    assert all(Path(f"/run/netns/{n}").stat().st_ino != seen["ns"] for n in gone if Path(f"/run/netns/{n}").exists())
