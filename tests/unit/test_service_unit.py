"""The systemd unit (pxetui/unit.py): scripts/pxetui.service is its rendering for
/usr/local/bin/pxetui, `pxetui service install` writes it for this installation, and systemd
accepts it: every key known, the command executable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from netns import require_tool

from pxetui import cli, exitcodes, unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pxetui.service"


def test_scripts_unit_is_the_rendered_one():
    assert SCRIPT.read_text() == unit.render()
    assert "ExecStart=/usr/local/bin/pxetui serve --config /etc/pxetui/pxetui.toml\n" in unit.render()


def test_install_writes_this_installations_unit_and_systemd_accepts_it(tmp_path, capsys):
    require_tool("systemd-analyze", package="systemd")
    assert cli.main(["service", "install", "--unit-dir", str(tmp_path)]) == exitcodes.OK
    written = (tmp_path / "pxetui.service").read_text()
    # The console script beside this interpreter (the virtualenv's; a pipx venv's when installed so).
    assert f"ExecStart={Path(sys.executable).parent / 'pxetui'} serve --config /etc/pxetui/pxetui.toml" in written
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "pxetui.service")],
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # Unknown keys and bad values are only warnings ("..., ignoring") with exit code 0.
    assert "ignoring" not in out and "Unknown" not in out, out


def test_install_keeps_a_different_unit_unless_forced(tmp_path, capsys):
    (tmp_path / "pxetui.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert cli.main(["service", "install", "--unit-dir", str(tmp_path)]) == exitcodes.FAILED
    assert "exists and differs; --force replaces it" in capsys.readouterr().err
    assert (tmp_path / "pxetui.service").read_text() == "[Service]\nExecStart=/bin/true\n"
    assert cli.main(["service", "install", "--unit-dir", str(tmp_path), "--force",
                     "--config", "/srv/pxe/pxetui.toml", "--exec", "/opt/pxetui/bin/pxetui"]) == exitcodes.OK
    text = (tmp_path / "pxetui.service").read_text()
    assert text == unit.render("/opt/pxetui/bin/pxetui", "/srv/pxe/pxetui.toml")
    assert (tmp_path / "pxetui.service").stat().st_mode & 0o777 == 0o644


def test_a_path_systemd_would_split_is_refused(capsys):
    assert cli.main(["service", "show", "--config", "/etc/my pxetui.toml"]) == exitcodes.USAGE
    assert "the config file: '/etc/my pxetui.toml' must be an absolute path without spaces" in capsys.readouterr().err
