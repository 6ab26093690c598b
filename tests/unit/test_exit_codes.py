"""pxetui as a Unix command, run as a user runs it (the console script, in a real process): the
exit codes `--help` and README.md list (pxetui/exitcodes.py), a closed output pipe and Ctrl-C
end quietly, never in a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from pxetui import exitcodes

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("pxetui")  # the console script, next to the venv's python
ENGINE = [sys.executable, "-m", "pxetui"]  # the engine's command line (no UI)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No site config (/etc/pxetui): an empty file of our own."""
    (tmp_path / "empty.toml").write_text("")
    return {**os.environ, "PXETUI_CONFIG": str(tmp_path / "empty.toml")}


def pxetui(*args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"{SCRIPT}: the console script is missing; pip install -e ."
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env,
                          **kw)  # type: ignore[call-overload]


def test_the_console_script_is_the_composition_root():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["pxetui"]
    (installed,) = entry_points(group="console_scripts", name="pxetui")
    assert declared == installed.value == "pxetui_app:main"


@pytest.mark.parametrize("command", [[str(SCRIPT)], ENGINE], ids=["pxetui", "python -m pxetui"])
def test_output_into_a_closed_pipe_ends_quietly_with_141(command, tmp_path, env):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails (EPIPE)
    try:
        p = subprocess.run([*command, "menu", "show", "--state-dir", str(tmp_path / "st")], stdout=write,
                           stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    finally:
        os.close(write)
    assert p.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit
    assert p.returncode == exitcodes.PIPE_CLOSED == 141


def test_piped_into_head_prints_its_line_and_nothing_else(tmp_path, env):
    shell = (f"{SCRIPT} menu show --state-dir {tmp_path / 'st'} | head -1; "
             'echo "rc=${PIPESTATUS[0]}" >&2')
    p = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60, env=env)
    assert p.stdout.startswith("pxetui boot menu") and p.stdout.count("\n") == 1
    # head may exit before or after pxetui has written everything: 141 or 0, never a traceback.
    assert p.stderr in ("rc=0\n", "rc=141\n"), p.stderr


def test_a_bad_argument_exits_2(env):
    p = pxetui("menu", "frobnicate", env=env)
    assert p.returncode == exitcodes.USAGE == 2
    assert "invalid choice: 'frobnicate'" in p.stderr and "Traceback" not in p.stderr


def test_a_bad_config_exits_2_naming_the_problem(tmp_path, env):
    bad = tmp_path / "bad.toml"
    bad.write_text('[http]\nport = "eighty"\n')
    p = pxetui("menu", "show", "--config", str(bad), "--state-dir", str(tmp_path / "st"), env=env)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("pxetui: http.port") and "Traceback" not in p.stderr


def test_a_command_that_fails_exits_1(tmp_path, env):
    p = pxetui("menu", "import-pxelinux", str(tmp_path / "absent.cfg"), "--state-dir", str(tmp_path / "st"),
               env=env)
    assert p.returncode == exitcodes.FAILED == 1
    assert "absent.cfg: No such file or directory" in p.stderr and "Traceback" not in p.stderr


def test_ctrl_c_exits_130_without_a_traceback(tmp_path, env):
    """`pxetui seed` reading its file from a pipe that never ends: interrupted there."""
    assert SCRIPT.exists()
    p = subprocess.Popen([str(SCRIPT), "seed", "--entry", "x", "/dev/stdin", "--state-dir", str(tmp_path / "st")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    try:
        deadline = time.monotonic() + 30
        while "pipe" not in Path(f"/proc/{p.pid}/wchan").read_text():  # blocked reading stdin
            assert p.poll() is None and time.monotonic() < deadline, "never got to reading its file"
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == exitcodes.INTERRUPTED == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_help_lists_the_exit_codes(env):
    p = pxetui("--help", env=env)
    assert p.returncode == 0
    codes = p.stdout.split("exit codes:\n", 1)[1]
    assert [line.split()[0] for line in codes.splitlines()] == ["0", "1", "2", "3", "130", "141"]


def test_readme_lists_the_same_exit_codes():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    listed = [row.split("|")[1].strip(" `") for row in table.splitlines()[2:]]
    assert listed == [line.split()[0] for line in exitcodes.EPILOG.splitlines()[1:]]


def test_the_engine_command_line_says_where_the_ui_is(tmp_path, env):
    p = subprocess.run([*ENGINE, "--state-dir", str(tmp_path / "st")], capture_output=True, text=True,
                       timeout=60, env=env)
    assert p.returncode == 2 and "run `pxetui` or `python -m pxetui_app`" in p.stderr


def test_a_broken_pipe_of_the_commands_own_is_not_hidden():
    """Only a closed stdout/stderr is the reader going away; EPIPE on a pipe the command made
    itself (to a service, say) is an error and shows as one."""
    code = """
import os
from pxetui import exitcodes

def command() -> int:
    read, write = os.pipe()
    os.close(read)
    os.write(write, b"event")
    return 0

raise SystemExit(exitcodes.run_process(command))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "BrokenPipeError" in p.stderr
