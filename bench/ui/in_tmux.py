"""The UI benchmark in a real terminal: the app (bench/ui/demo.py: UI + synthetic engine) runs
in a private tmux server, keys switch screens, psutil measures the UI process and tmux.

    python bench/ui/in_tmux.py [--size 120x40] [--clients 1000] [--transfers 100] [--window 10]

Unlike run.py (headless), this includes writing to a terminal. Goal: < 20 % of one core.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
SCREENS = (("F2", "clients"), ("F4", "transfers"), ("F1", "dashboard"), ("F7", "logs"))


def cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        t = p.cpu_times()
        total += t.user + t.system
    return total


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="120x40")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--transfers", type=int, default=100)
    p.add_argument("--window", type=float, default=10.0)
    args = p.parse_args()
    w, h = args.size.split("x")
    seconds = (args.window + 2) * len(SCREENS) + 30
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "tmux.sock")
        cmd = (f"cd {ROOT} && TEXTUAL_COLOR_SYSTEM=standard TERM=xterm-256color {sys.executable} "
               f"bench/ui/demo.py --clients {args.clients} --transfers {args.transfers} "
               f"--seconds {seconds:.0f}")
        subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-s", "b", "-x", w, "-y", h, cmd],
                       check=True)
        try:
            time.sleep(8)  # replay of every client
            out = subprocess.run(["tmux", "-S", sock, "list-panes", "-t", "b", "-F", "#{pane_pid}"],
                                 capture_output=True, text=True, check=True).stdout
            pane = psutil.Process(int(out.split()[0]))
            ui = next(x for x in [pane, *pane.children(recursive=True)]
                      if "demo.py" in " ".join(x.cmdline()))
            server = [x for x in psutil.process_iter(["cmdline"])
                      if x.info["cmdline"] and sock in " ".join(x.info["cmdline"])
                      and x.info["cmdline"][0].endswith("tmux")]
            print(f"UI in tmux {args.size}: {args.clients} clients, {args.transfers} live transfers, "
                  f"{args.window:.0f} s per screen (goal < 20 % of one core)")
            worst = 0.0
            for key, name in SCREENS:
                subprocess.run(["tmux", "-S", sock, "send-keys", "-t", "b", key], check=True)
                time.sleep(2)
                u0, s0, t0 = cpu([ui]), cpu(server), time.monotonic()
                time.sleep(args.window)
                u1, s1, t1 = cpu([ui]), cpu(server), time.monotonic()
                ui_pct = (u1 - u0) / (t1 - t0) * 100
                worst = max(worst, ui_pct)
                print(f"  {name:<10} UI process {ui_pct:5.1f} %   tmux server "
                      f"{(s1 - s0) / (t1 - t0) * 100:5.1f} %")
            print(f"  worst screen: {worst:.1f} % -> {'OK' if worst < 20 else 'OVER GOAL'}")
        finally:
            subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
