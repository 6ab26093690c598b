"""scripts/pxetui.service is a unit systemd accepts: every key known, the command executable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from netns import require_tool

UNIT = Path(__file__).resolve().parents[2] / "scripts" / "pxetui.service"


def test_unit_passes_systemd_analyze_verify(tmp_path):
    require_tool("systemd-analyze", package="systemd")
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/pxetui serve --config /etc/pxetui/pxetui.toml" in text
    # The installed console script is where pipx puts it; here, the virtualenv's.
    unit = tmp_path / "pxetui.service"
    unit.write_text(text.replace("/usr/local/bin/pxetui", str(Path(sys.executable).parent / "pxetui")))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # Unknown keys and bad values are only warnings ("..., ignoring") with exit code 0.
    assert "ignoring" not in out and "Unknown" not in out, out
