from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netns import NetnsFactory, require_root  # noqa: E402


@pytest.fixture(autouse=True)
def _services_reach_tmp_path(request: pytest.FixtureRequest) -> None:
    """Services drop root for the service user once their sockets are open, as deployed
    (docs/SECURITY.md); pytest makes tmp_path and its parents 0700. Let others search them
    (o+x: no listing) so the unprivileged services reach the state, TFTP and HTTP dirs a test
    makes there, like an admin does for /srv/tftp."""
    if "tmp_path" not in request.fixturenames:
        return
    tmp: Path = request.getfixturevalue("tmp_path")
    for d in (tmp, *tmp.parents):
        if d == Path(tempfile.gettempdir()) or d == d.parent:
            break
        if d.stat().st_uid == os.geteuid():
            d.chmod(d.stat().st_mode | 0o001)


@pytest.fixture
def netns() -> Iterator[NetnsFactory]:
    """Make namespaces with `netns.new()` / `netns.pair()`; all removed after the test, pass or fail."""
    require_root()
    f = NetnsFactory()
    try:
        yield f
    finally:
        f.cleanup()
