"""pxetui installs as Python tools are installed (`pipx install .`, a wheel): the wheel built from
the repository holds the engine, the UI and the program with the `pxetui` entry point, and
installed on its own it runs, with the C TFTP pump when a compiler was there and without it
when not (setup.py: an optional extension).

Each wheel is built from a copy of the source (never in the shared tree: pip builds in place)
and installed with --no-deps into a directory of its own; its dependencies come from this
virtualenv's site-packages, so nothing is downloaded but the build backend (pip's find-links
or index, as `scripts/setup.sh` itself installs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                              ".ruff_cache", ".hypothesis", "*.so", "tests", "bench", "state", "snapshot_report.html")


def build_wheel(tmp: Path, env: dict[str, str] | None = None) -> tuple[Path, str]:
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=SKIP)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(tmp / "dist")],
                       capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheels = list((tmp / "dist").glob("pxetui-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], r.stdout + r.stderr


def install(wheel: Path, tmp: Path) -> tuple[Path, dict[str, str]]:
    """The wheel alone in `site`; its dependencies from this virtualenv. Run from `tmp`, so
    neither the current directory nor the editable install of the repository is imported."""
    site = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                        str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return site, {**os.environ, "PYTHONPATH": str(site)}


def run_in(tmp: Path, env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, cwd=tmp, env=env)


WHERE = ("import pxetui, pxetui_app, screens, pxetui.tftp.pump as p; "
         "print(pxetui.__file__, pxetui_app.__file__, screens.__file__, sep='\\n'); print(p.describe())")


def check_installed(site: Path, tmp: Path, env: dict[str, str]) -> str:
    r = run_in(tmp, env, str(site / "bin" / "pxetui"), "--help")  # the console script pip wrote
    assert r.returncode == 0, r.stderr
    assert "serve" in r.stdout and "doctor" in r.stdout
    r = run_in(tmp, env, sys.executable, "-m", "pxetui_app", "--version")
    assert r.returncode == 0 and r.stdout.startswith("pxetui "), r.stderr
    r = run_in(tmp, env, sys.executable, "-c", WHERE)
    assert r.returncode == 0, r.stderr
    *files, pump = r.stdout.splitlines()
    assert all(f.startswith(str(site)) for f in files), files  # the wheel's, not the repository's
    return pump


def test_wheel_holds_engine_ui_and_entry_point_and_runs_installed(tmp_path):
    wheel, _ = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for must in ("pxetui/__init__.py", "pxetui/__main__.py", "pxetui/service.py", "pxetui/tftp/_pump.c",
                 "pxetui_app/__init__.py", "pxetui_app/__main__.py", "screens/run.py", "screens/pxetui.tcss"):
        assert must in names, must
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
    info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "pxetui = pxetui_app:main" in zipfile.ZipFile(wheel).read(info).decode()
    has_compiler = shutil.which(sysconfig.get_config_var("CC").split()[0]) is not None and \
        Path(sysconfig.get_paths()["include"], "Python.h").exists()
    pumps = [n for n in names if n.startswith("pxetui/tftp/_pump") and n.endswith(".so")]
    if os.environ.get("CI") == "true" or has_compiler:  # setup.sh installs gcc and python3-dev
        assert pumps, "the C pump was not built into the wheel"
    site, env = install(wheel, tmp_path)
    pump = check_installed(site, tmp_path, env)
    assert pump == ("the C pump" if pumps else "Python (the C pump is not built)")


def test_without_a_compiler_the_wheel_builds_and_runs_in_python(tmp_path):
    # setuptools compiles with $CC; `false` (coreutils) fails every compile, as a machine
    # without gcc would.
    wheel, log = build_wheel(tmp_path, env={"CC": "false", "LDSHARED": "false"})
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("pxetui/tftp/_pump") and n.endswith(".so")]
    site, env = install(wheel, tmp_path)
    pump = check_installed(site, tmp_path, env)
    assert pump == "Python (the C pump is not built)"
