"""pxetui/debpackages.py: `pxetui doctor` says, per Debian package, whether it is there and what it adds."""

from __future__ import annotations

from pathlib import Path

from pxetui import debpackages

LISTED = Path(__file__).resolve().parents[2] / "scripts" / "debian-packages.txt"


def test_installed_follows_the_files_a_package_ships(tmp_path):
    pxelinux = next(p for p in debpackages.PACKAGES if p.name == "pxelinux")
    assert not debpackages.installed(pxelinux, tmp_path)
    f = tmp_path / pxelinux.probes[0].lstrip("/")
    f.parent.mkdir(parents=True)
    f.write_bytes(b"loader")
    assert debpackages.installed(pxelinux, tmp_path)
    lines = {line.split()[0]: line for line in debpackages.describe_lines(tmp_path)}
    assert "installed" in lines["pxelinux"] and "BIOS clients" in lines["pxelinux"]
    assert "missing" in lines["ovmf"] and "(apt-get install ovmf)" in lines["ovmf"]
    assert "--uefi" in lines["ovmf"]


def test_every_described_package_is_one_setup_installs():
    listed = {line.strip() for line in LISTED.read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    for p in debpackages.PACKAGES:
        assert p.name in listed, p.name
        assert p.probes and p.adds, p.name
