"""Children run as `python -P -m`: a module planted in the directory root starts pxetui from is
never imported (docs/SECURITY.md, "Local users")."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pxetui.interpreter import python_module

REPO = Path(__file__).resolve().parents[2]


def test_a_module_planted_in_the_working_directory_is_not_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    plant = f"open({str(marker)!r}, 'w').close()\n"
    (tmp_path / "dataclasses.py").write_text(plant + "from importlib import import_module\n")
    (tmp_path / "pxetui").mkdir()
    (tmp_path / "pxetui" / "__init__.py").write_text(plant)
    r = subprocess.run(python_module("pxetui", "--version"), cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pxetui "), r.stdout
    assert not marker.exists(), "a module from the working directory was imported"
    # the same command without -P is what imported it (the hazard is real, not assumed)
    plain = [a for a in python_module("pxetui", "--version") if a != "-P"]
    subprocess.run(plain, cwd=tmp_path, capture_output=True, timeout=60)
    assert marker.exists()


def test_no_child_is_started_with_a_bare_python_m() -> None:
    """Every `sys.executable, "-m"` in the engine and the UI goes through python_module."""
    bare = re.compile(r"sys\.executable\s*,\s*\"-m\"")
    found = [f"{p.relative_to(REPO)}" for d in ("pxetui", "screens") for p in (REPO / d).rglob("*.py")
             if bare.search(p.read_text())]
    assert found == []
