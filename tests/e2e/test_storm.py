"""Boot storm: 100 simulated clients start at once against pxetui on the lab network.

Each does DHCP, then fetches its boot loader over TFTP, then a kernel and an initrd over HTTP
(pxetui.lab.storm). All must finish, none may fail, and the engine's own account must agree:
its events, folded as a UI folds them (pxetui.state.EngineState), show the tracker with every
storm client at the initrd stage (where this client's boot ends: it has no callback), each file
finished, none stuck or failed. Speed is measured in bench/storm, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from labkit import require_lab

from pxetui.lab.network import LabError
from pxetui.lab.run import EventLog, Lab, LabOptions
from pxetui.lab.storm import TrackerView, client_macs, tracker_view
from pxetui.loaders import find_loaders
from pxetui.state import EngineState

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
        view = tracker_after_storm(ev)
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
    # The tracker, as a UI sees it: every storm client, each booted as far as it goes, none in trouble.
    assert not view.missing, f"the tracker never reported {len(view.missing)} clients, e.g. {view.missing[:3]}"
    assert view.clients == CLIENTS
    assert not view.without_initrd, f"{len(view.without_initrd)} never reached the initrd stage: {view.stages}"
    assert not view.unfinished, f"{len(view.unfinished)} clients' files not all finished, e.g. {view.unfinished[:3]}"
    assert not view.stuck and not view.failed, f"stuck {view.stuck[:3]}, failed {view.failed[:3]}"
    assert not view.diagnosed, f"diagnosed: {list(view.diagnosed.items())[:3]}"
    assert view.stages == {"initrd": CLIENTS}
    print(f"storm: {CLIENTS} clients all booted in {result['seconds']:.1f}s; "
          f"p(dhcp) max {max(c['t_dhcp'] for c in result['clients']):.1f}s")


def tracker_after_storm(ev: EventLog) -> TrackerView:
    """The lab's event stream (replay, then live) folded as a UI folds it, until the tracker
    has reported every storm client as booted (it reports once per tick), or 30 s pass."""
    state, macs, n = EngineState(), client_macs(CLIENTS), 0

    def booted() -> bool:
        nonlocal n
        events = ev.snapshot()
        for e in events[n:]:
            state.apply(e)
        n = len(events)
        return tracker_view(state, macs).all_booted

    try:
        ev.wait_until(booted, 30, f"tracker report of {CLIENTS} booted storm clients")
    except LabError:
        pass  # the assertions below say what is missing
    return tracker_view(state, macs)
