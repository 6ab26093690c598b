"""The real app in a real terminal: tmux at 80x24, 16 colours, keys sent with send-keys.

Runs `bench/ui/demo.py` (the UI attached over a unix socket to the synthetic engine) in a
private tmux server, so nothing here touches the user's tmux sessions.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from netns import require_tool

ROOT = Path(__file__).resolve().parents[2]
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def tmux(sock: Path, *args: str) -> str:
    return subprocess.run(["tmux", "-S", str(sock), *args], check=True, capture_output=True,
                          text=True, timeout=10).stdout


def wait_for(sock: Path, text: str, seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux(sock, "capture-pane", "-p", "-t", "ui")
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; the pane shows:\n{screen}")


def colours_used(sock: Path) -> set[int]:
    """Every colour code in the pane's SGR sequences (38/48 extended forms included)."""
    raw = tmux(sock, "capture-pane", "-p", "-e", "-t", "ui")
    codes: set[int] = set()
    for params in SGR.findall(raw):
        nums = [int(p) for p in params.split(";") if p]
        i = 0
        while i < len(nums):
            if nums[i] in (38, 48):
                codes.add(1000 + nums[i])  # an extended (256/truecolour) colour
                i += 3 if i + 1 < len(nums) and nums[i + 1] == 5 else 5
                continue
            codes.add(nums[i])
            i += 1
    return codes


def test_ui_renders_in_tmux_at_80x24_in_16_colours(tmp_path):
    require_tool("tmux")
    sock = tmp_path / "tmux.sock"
    cmd = (f"cd {ROOT} && TEXTUAL_COLOR_SYSTEM=standard TERM=xterm-256color "
           f"{sys.executable} bench/ui/demo.py --clients 30 --transfers 5 --seconds 60")
    tmux(sock, "new-session", "-d", "-s", "ui", "-x", "80", "-y", "24", cmd)
    try:
        screen = wait_for(sock, "+tftp running")
        assert "DHCP full (benchmark)" in screen and "F1 Dash" in screen
        tmux(sock, "send-keys", "-t", "ui", "F2")
        wait_for(sock, "52:54:00:00:00:05")
        tmux(sock, "send-keys", "-t", "ui", "PageDown", "PageDown")
        wait_for(sock, "52:54:00:00:00:1d")  # the 30th client, after the table scrolled
        tmux(sock, "send-keys", "-t", "ui", "Enter")
        screen = wait_for(sock, "Timeline")
        assert "Boot once into" in screen
        tmux(sock, "send-keys", "-t", "ui", "Escape", "F7")
        wait_for(sock, "services")
        extended = {c for c in colours_used(sock) if c >= 1000}
        assert not extended, "colours beyond the 16 ANSI ones were drawn"
        tmux(sock, "send-keys", "-t", "ui", "C-q")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["tmux", "-S", str(sock), "has-session", "-t", "ui"],
                              capture_output=True).returncode != 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("ctrl+q did not quit the UI")
    finally:
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
