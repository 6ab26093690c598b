"""Fixtures several unit modules share."""

from __future__ import annotations

from pathlib import Path

import pytest
from netns import require_tool

from pxetui.iso import testiso


@pytest.fixture(scope="session")
def family_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One image of each family's real layout (pxetui/iso/testiso.py), built once per test
    process with xorriso and only read by the tests."""
    require_tool("xorriso")
    d = tmp_path_factory.mktemp("families")
    return {fam: testiso.build_family(d / f"{fam}.iso", fam) for fam in testiso.FAMILIES}
