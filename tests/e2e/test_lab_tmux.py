"""The real `pxetui lab` in a real terminal: tmux at 80x24, driven with send-keys, while a
SeaBIOS VM network-boots from the engine on the lab network, powers off, and is booted again
with ctrl+r. What a user sees over SSH."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit import require_lab
from netns import REPO, require_tool

from pxetui.lab import content

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(900)]


def tmux(sock: Path, *args: str) -> str:
    return subprocess.run(["tmux", "-S", str(sock), *args], check=True, capture_output=True,
                          text=True, timeout=10).stdout


def screen(sock: Path) -> str:
    return tmux(sock, "capture-pane", "-p", "-t", "lab")


def wait_screen(sock: Path, text: str | tuple[str, ...], seconds: float) -> str:
    """The pane once it shows `text` (or any of several)."""
    texts = (text,) if isinstance(text, str) else text
    deadline = time.monotonic() + seconds
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(sock)
        if any(t in shown for t in texts):
            return shown
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never appeared within {seconds}s; the pane shows:\n{shown}")


def lab_namespaces(state: Path) -> list[str]:
    """Namespaces holding a process started for this lab (its state dir is on the command line)."""
    found = []
    for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines():
        ns = line.split()[0] if line.strip() else ""
        if not ns.startswith("pxlab"):
            continue
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                if str(state) in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(ns)
                    break
            except OSError:
                pass
    return found


def test_pxetui_lab_ui_in_tmux_follows_a_boot_and_cleans_up(tmp_path):
    require_lab("bios")
    require_tool("tmux")
    sock, state, done = tmp_path / "tmux.sock", tmp_path / "lab", tmp_path / "exit-code"
    cmd = (f"cd {REPO} && TERM=xterm-256color {sys.executable} -m pxetui_app lab --state-dir {state} "
           f"--timeout 300; echo $? > {done}; sleep 60")
    tmux(sock, "new-session", "-d", "-s", "lab", "-x", "80", "-y", "24", cmd)
    namespaces: list[str] = []
    try:
        # The header names the lab's interface and address; every service comes up.
        wait_screen(sock, "10.77.0.1", 90)
        deadline = time.monotonic() + 30
        while not namespaces and time.monotonic() < deadline:
            namespaces = lab_namespaces(state)
            time.sleep(0.5)
        assert len(namespaces) == 1, "the lab runs in one namespace of its own"
        # Clients screen (F2): the VM appears and reaches "booted" (its initrd called back).
        tmux(sock, "send-keys", "-t", "lab", "F2")
        shown = wait_screen(sock, "booted", 300)
        assert "52:54:00" in shown  # the VM's MAC, in the Clients table
        # Console screen (F9): the VM's serial console, with the marker its /init printed.
        tmux(sock, "send-keys", "-t", "lab", "F9")
        wait_screen(sock, content.MARKER, 30)
        # The busybox system powers off after its callback: the lab stays up and says so in
        # plain words (header, dashboard, footer), not as a lost engine.
        tmux(sock, "send-keys", "-t", "lab", "F1")
        shown = wait_screen(sock, "powered off after its system booted", 120)
        assert "VM off: ^r" in shown and "^r Boot VM" in shown, shown
        assert "DISCONNECTED" not in shown and "connection lost" not in shown, shown
        assert "live transfers: 0" in shown, shown  # nothing left "live" after the boot
        # ctrl+r boots it again: the console starts over (the old boot's lines go) and the
        # second boot of the same VM reaches the marker once more.
        tmux(sock, "send-keys", "-t", "lab", "C-r")
        tmux(sock, "send-keys", "-t", "lab", "F9")
        wait_screen(sock, "VM running (boot 2", 30)
        # The console started over at boot 2, so the marker on it now is the second boot's.
        # Its "up" state may last less than a poll (the lab system calls back and powers off
        # within seconds), so the marker decides, then the state it is in: up, or off again.
        shown = wait_screen(sock, content.MARKER, 300)
        # The keeper's state follows the console it reads (a poll later under load).
        wait_screen(sock, ("VM running (boot 2, up)", "VM off (ctrl+r boots it again)"), 30)
        # Quit with ctrl+q: the lab tears everything down and exits 0.
        tmux(sock, "send-keys", "-t", "lab", "C-q")
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert done.exists() and done.read_text().strip() == "0", screen(sock)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert namespaces[0] not in listed, "the lab namespace was removed"
    finally:
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True, timeout=10)
        for ns in namespaces:  # only if the lab failed to clean up after itself
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
                subprocess.run(["kill", "-9", pid], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
