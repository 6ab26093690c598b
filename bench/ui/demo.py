"""Run the real UI against the synthetic engine, in this terminal (for looking, and for
checking rendering over tmux/SSH in 16 colours):

    TEXTUAL_COLOR_SYSTEM=standard python bench/ui/demo.py [--clients 50] [--transfers 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.ui.feed import running  # noqa: E402
from pxetui.control import ControlClient  # noqa: E402
from screens.run import run_ui  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--transfers", type=int, default=10)
    p.add_argument("--seconds", type=float, default=600)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "control.sock")
        with running(sock, args.clients, args.transfers, args.seconds):
            return run_ui(lambda: ControlClient.connect(sock), None)


if __name__ == "__main__":
    raise SystemExit(main())
