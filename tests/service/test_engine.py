"""The whole engine as a user runs it: `pxetui serve` in a namespace, real clients in another,
a UI-style client attached over the control socket from outside the namespace."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
from netns import require_tool, wait_for
from services import collect, served_roots, udhcpc_lease

from pxetui.control import is_live, socket_path

pytestmark = pytest.mark.root



def of(events: list[dict], type_: str, **match) -> list[dict]:
    return [e for e in events if e.get("type") == type_ and all(e.get(k) == v for k, v in match.items())]


def test_serve_boots_a_client_restarts_a_dead_service_and_stops_cleanly(netns, tmp_path):
    require_tool("busybox", package="busybox-static")
    require_tool("curl", "tftp", package="curl, tftp-hpa")
    server, client = netns.pair()
    payload = os.urandom(300_000)
    tftp_root, http_root, state = served_roots(tmp_path, payload, payload[::-1])
    eng = server.popen(sys.executable, "-m", "pxetui", "serve", "--interface", "eth0", "--dhcp", "full",
                       "--state-dir", str(state), "--tftp-root", str(tftp_root), "--http-root", str(http_root),
                       "--boot-file", "bios=pxelinux.0", log=tmp_path / "serve.log")
    sock = socket_path(state)
    wait_for(lambda: is_live(sock), timeout=20, what="the control socket")

    def running(evs: list[dict]) -> bool:
        states = {e["service"]: e["state"] for e in of(evs, "ServiceState")}
        return all(states.get(s) == "running" for s in ("dhcp", "tftp", "http", "capture"))

    evs = asyncio.run(collect(sock, running, timeout=30))
    assert of(evs, "EngineStarted")[0]["interface"] == "eth0"

    # A real DHCP client, then TFTP and HTTP downloads from the leased address.
    ip = udhcpc_lease(client, tmp_path)
    client.run("tftp", "10.99.0.1", "-m", "binary", "-c", "get", "pxelinux.0", str(tmp_path / "got.bin"))
    assert hashlib.sha256((tmp_path / "got.bin").read_bytes()).digest() == hashlib.sha256(payload).digest()
    r = client.run("curl", "-sf", "-o", str(tmp_path / "got2.bin"), "http://10.99.0.1/vmlinuz")
    assert r.returncode == 0 and (tmp_path / "got2.bin").read_bytes() == payload[::-1]

    def booted_files(evs: list[dict]) -> bool:
        return bool(of(evs, "LeaseGranted", ip=ip)
                    and [e for e in of(evs, "TransferStarted", protocol="tftp") if e.get("path") == "pxelinux.0"]
                    and [e for e in of(evs, "TransferStarted", protocol="http") if e.get("path") == "vmlinuz"]
                    and of(evs, "ClientUpdate"))
    evs = asyncio.run(collect(sock, booted_files, timeout=20))
    mac = of(evs, "LeaseGranted", ip=ip)[0]["mac"]
    assert any(e["mac"] == mac for e in of(evs, "ClientUpdate"))

    # A service that dies is restarted, and both are events.
    tftp_pid = [e for e in of(evs, "ServiceState", service="tftp") if e["state"] == "running"][-1]["pid"]
    os.kill(tftp_pid, signal.SIGKILL)

    def restarted(evs: list[dict]) -> bool:
        return any(e["state"] == "running" and e.get("restarts", 0) >= 1 for e in of(evs, "ServiceState", service="tftp"))
    evs = asyncio.run(collect(sock, restarted, timeout=20))
    failed = [e for e in of(evs, "ServiceState", service="tftp") if e["state"] == "failed"]
    assert failed and failed[-1]["reason"] == "killed by SIGKILL", failed
    client.run("tftp", "10.99.0.1", "-m", "binary", "-c", "get", "pxelinux.0", str(tmp_path / "again.bin"))
    assert (tmp_path / "again.bin").read_bytes() == payload

    # A fatal signal the service can see (SIGBUS, as a torn mapping would raise) is named with
    # the Python error faulthandler writes, and the service comes back.
    http_pid = [e for e in of(evs, "ServiceState", service="http") if e["state"] == "running"][-1]["pid"]
    os.kill(http_pid, signal.SIGBUS)

    def http_back(evs: list[dict]) -> bool:
        return any(e["state"] == "running" and e.get("restarts", 0) >= 1 for e in of(evs, "ServiceState", service="http"))
    evs = asyncio.run(collect(sock, http_back, timeout=20))
    failed = [e for e in of(evs, "ServiceState", service="http") if e["state"] == "failed"]
    assert failed and failed[-1]["reason"] == "Fatal Python error: Bus error", failed
    r = client.run("curl", "-sf", "-o", str(tmp_path / "got3.bin"), "http://10.99.0.1/vmlinuz")
    assert r.returncode == 0 and (tmp_path / "got3.bin").read_bytes() == payload[::-1]

    # SIGTERM: every service stops and the engine exits 0 within 2 s.
    t0 = time.monotonic()
    os.kill(eng.pid, signal.SIGTERM)
    code = eng.wait(10)
    elapsed = time.monotonic() - t0
    assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]
    assert elapsed < 2.5, f"stop took {elapsed:.2f}s"
    text = (tmp_path / "serve.log").read_text()
    for svc in ("dhcp", "tftp", "http", "capture"):
        assert f"{svc:<8} stopped" in text
    assert not sock.exists()
    left = subprocess.run(["ip", "netns", "pids", server.name], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left in the namespace: {left}"
