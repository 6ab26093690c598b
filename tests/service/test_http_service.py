"""The HTTP service as the supervisor runs it: its own process (`python -m pxetui.service http`)
in a server namespace, clients in another namespace, events as JSON lines on stdout."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import require_tool, wait_for
from services import ServiceProc, base_config

pytestmark = pytest.mark.root

URL = "http://10.99.0.1"


def test_service_serves_clients_in_another_namespace(netns, tmp_path: Path):
    require_tool("curl")
    require_tool("busybox", package="busybox-static")
    root = tmp_path / "http"
    root.mkdir()
    payload = os.urandom(2_000_003)
    (root / "initrd.img").write_bytes(payload)
    server, client = netns.pair(client_addr="10.99.0.2/24")
    cfg = base_config(tmp_path, http={"root": str(root), "header_timeout": 2.0})
    svc = ServiceProc(server, "http", cfg, tmp_path)
    try:
        state = svc.wait_running()
        assert state["ports"] == [80]
        r = client.run("curl", "-sS", "-o", str(tmp_path / "c"), "-w", "%{http_code}",
                       f"{URL}/initrd.img?mac=52:54:00:00:00:01")
        assert r.stdout == "200"
        assert hashlib.sha256((tmp_path / "c").read_bytes()).digest() == hashlib.sha256(payload).digest()
        fin = svc.wait_event("TransferFinished", path="initrd.img")
        assert (fin["ip"], fin["mac"], fin["status"], fin["bytes_done"]) == (
            "10.99.0.2", "52:54:00:00:00:01", 200, len(payload))
        assert fin["service"] == "http" and fin["protocol"] == "http"
        # Later requests from that client carry its MAC without a query string.
        r = client.run("busybox", "wget", "-q", "-O", str(tmp_path / "w"), f"{URL}/initrd.img")
        assert r.returncode == 0 and (tmp_path / "w").read_bytes() == payload
        wait_for(lambda: len(svc.of("TransferFinished", path="initrd.img", mac="52:54:00:00:00:01")) == 2,
                 what="the second transfer attributed to the MAC")
        r = client.run("curl", "-sS", "--path-as-is", f"{URL}/../../etc/passwd")
        assert r.stdout.startswith("403 Forbidden") and "root:" not in r.stdout
        assert svc.wait_event("TransferFailed", status=403)["ip"] == "10.99.0.2"
        # Only the configured address is served, not every interface.
        r = server.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                       "http://127.0.0.1/initrd.img", check=False)
        assert r.stdout == "000"
        # SIGHUP rebuilds the routes (menus, ISO library) without dropping the service.
        os.killpg(svc.proc.pid, signal.SIGHUP)
        svc.wait_event("Log", message="http: reloaded menus and ISO library")
        assert client.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          f"{URL}/initrd.img").stdout == "200"
        t0 = time.monotonic()
        assert svc.stop() == 0
        assert time.monotonic() - t0 < 3
    finally:
        svc.stop()


def test_port_in_use_is_a_clear_failure(netns, tmp_path: Path):
    server, _ = netns.pair()
    holder = server.popen(sys.executable, "-c",
                          "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,"
                          "socket.SO_REUSEADDR,1); s.bind(('10.99.0.1',80)); s.listen(); time.sleep(30)")
    time.sleep(0.5)
    cfg = base_config(tmp_path)
    cfg_file = tmp_path / "http.json"
    cfg_file.write_text(cfg.to_json())
    r = server.run(sys.executable, "-m", "pxetui.service", "http", str(cfg_file), check=False, timeout=20)
    server.stop(holder)
    assert r.returncode == 1
    assert "http: cannot start" in r.stderr and "Address already in use" in r.stderr


def test_unresolved_config_refuses_to_bind_everywhere(tmp_path: Path):
    cfg = base_config(tmp_path)
    cfg.server_ip = ""
    cfg_file = tmp_path / "http.json"
    cfg_file.write_text(cfg.to_json())
    r = subprocess.run([sys.executable, "-m", "pxetui.service", "http", str(cfg_file)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "no server address" in r.stderr
