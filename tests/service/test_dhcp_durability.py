"""Leases survive the DHCP service's death (README, "Leases"): the service commits a batch's
leases (synchronous=FULL) before it sends the batch's ACKs, so every ACK a client received
names a lease that is on disk, even when the service is killed with SIGKILL mid-storm."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from netns import REPO, wait_for
from services import ServiceProc, base_config

pytestmark = pytest.mark.root

DORA = str(REPO / "bench" / "dhcp" / "dora.py")


def test_every_acked_lease_survives_kill_9_mid_run(netns, tmp_path: Path) -> None:
    server, client = netns.pair(server_addr="10.99.0.1/16", client_addr="10.99.0.2/16")
    cfg = base_config(tmp_path, netmask="255.255.0.0", dhcp={
        "mode": "full", "probe_seconds": 0, "lease_time": 3600, "range": "10.99.1.0-10.99.254.254"})
    svc = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc.wait_running()
    # ~1,000 DORA/s for up to 5 s, bounded; the service dies under it
    load = client.popen(sys.executable, DORA, "dora", "--server", "10.99.0.1", "--giaddr", "10.99.0.2",
                        "--rate", "1000", "--seconds", "5", "--count", "5000", "--drain", "1",
                        stdout=subprocess.PIPE)
    wait_for(lambda: len(svc.of("LeaseGranted")) >= 500 or load.poll() is not None, timeout=30,
             what="500 leases granted under load")
    assert load.poll() is None, "the load ended before the kill: nothing was killed mid-run"
    os.kill(svc.proc.pid, signal.SIGKILL)
    svc.proc.wait(10)
    out, _ = load.communicate(timeout=40)
    result = json.loads(out)
    acked = {(mac, ip) for mac, ip in result["acks"]}
    assert len(acked) >= 500, result["sent"]
    assert result["unanswered"] > 0  # DISCOVERs went on after the kill: it died mid-run

    again = ServiceProc(server, "dhcp", cfg, tmp_path)
    again.wait_running()
    restored = {(e["mac"], e["ip"]) for e in again.of("LeaseGranted")}
    with sqlite3.connect(cfg.db_path) as db:
        on_disk = set(db.execute("SELECT mac, ip FROM dhcp_leases WHERE state='bound'").fetchall())
    assert acked <= on_disk, f"{len(acked - on_disk)} ACKed leases lost, e.g. {sorted(acked - on_disk)[:3]}"
    assert acked <= restored
