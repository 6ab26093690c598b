from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netns import NetnsFactory, require_root  # noqa: E402


@pytest.fixture
def netns() -> Iterator[NetnsFactory]:
    """Make namespaces with `netns.new()` / `netns.pair()`; all removed after the test, pass or fail."""
    require_root()
    f = NetnsFactory()
    try:
        yield f
    finally:
        f.cleanup()
