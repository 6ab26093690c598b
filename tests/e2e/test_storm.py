"""Boot storm: 100 simulated clients start at once against pxetui on the lab network.

Each does DHCP, then fetches its boot loader over TFTP, then a kernel and an initrd over HTTP
(pxetui.lab.storm). All must finish, none may fail. Speed is measured in bench/storm, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import require_lab

from pxetui.lab.run import Lab, LabOptions
from pxetui.loaders import find_loaders

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

CLIENTS = 100


def test_storm_100_clients_all_finish(tmp_path: Path) -> None:
    require_lab()
    with Lab(LabOptions(state_dir=tmp_path)) as lab:
        clients = lab.net.add_peer()
        p = clients.popen([sys.executable, "-m", "pxetui.lab.storm", "--clients", str(CLIENTS),
                           "--timeout", "150"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=200)
        assert out, f"the storm printed nothing: {err.decode(errors='replace')[-2000:]}"
        result = json.loads(out)
        ev = lab.events
        assert ev is not None

        def http_done() -> list[dict]:
            return [e for e in ev.of("TransferFinished", protocol="http", service="http")
                    if e.get("path") in ("lab/vmlinuz", "lab/initrd.gz")]

        # the engine saw every client's HTTP downloads complete (events trail the bytes)
        ev.wait_until(lambda: len(http_done()) >= 2 * CLIENTS, 30, f"{2 * CLIENTS} HTTP TransferFinished")
    failed = [c for c in result["clients"] if c["error"] or not c["t_initrd"]]
    assert not failed, f"{len(failed)} clients failed, e.g. {failed[:3]}"
    assert len(result["clients"]) == CLIENTS
    kernel = (tmp_path / "lab/root/lab/vmlinuz").stat().st_size
    initrd = (tmp_path / "lab/root/lab/initrd.gz").stat().st_size
    served = find_loaders().path("pxelinux.0")  # pxetui serves it from its Debian package
    assert served is not None
    loader = Path(served).stat().st_size
    assert all(c["bytes"] == loader + kernel + initrd for c in result["clients"])
    assert len({c["ip"] for c in result["clients"]}) == CLIENTS, "two clients got the same address"
    print(f"storm: {CLIENTS} clients all booted in {result['seconds']:.1f}s; "
          f"p(dhcp) max {max(c['t_dhcp'] for c in result['clients']):.1f}s")
