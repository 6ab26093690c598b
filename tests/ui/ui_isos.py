"""A small Debian-live shaped ISO built with pycdlib (no xorriso needed) for the UI tests."""

from __future__ import annotations

import io
from pathlib import Path

import pycdlib

FILES = {"vmlinuz": b"K" * 40_000, "initrd.img": b"I" * 60_000,
         "filesystem.squashfs": b"S" * 200_000}


def debian_live_iso(path: Path) -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3, vol_ident="DEBIAN_LIVE")
    iso.add_directory("/LIVE", rr_name="live", joliet_path="/live")
    for i, (name, data) in enumerate(sorted(FILES.items())):
        iso.add_fp(io.BytesIO(data), len(data), f"/LIVE/F{i}.;1", rr_name=name,
                   joliet_path=f"/live/{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    iso.write(str(path))
    iso.close()
    return path
