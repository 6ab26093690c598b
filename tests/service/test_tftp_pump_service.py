"""Lock-step transfers in the real TFTP service, through the C pump and through Python.

Both data paths must look the same from outside: bytes, events, errors. Server 10.99.0.1 and
clients 10.99.0.2 in their own namespaces.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest
from netns import Netns, NetnsFactory, require, require_tool, sh, wait_for
from services import ServiceProc, base_config

from pxetui.tftp import pump

pytestmark = pytest.mark.root

SERVER = "10.99.0.1"

# A scripted lock-step client: RRQ with blksize 512, ACK `acks` blocks (each after `pause`
# seconds), then either close the port ("close") or go silent with it open ("silent").
CLIENT = r"""
import socket, struct, sys, time
name, acks, pause, then = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"\0\1" + name.encode() + b"\0octet\0blksize\0" + b"512\0", ("10.99.0.1", 69))
pkt, addr = s.recvfrom(1024)
assert pkt[:2] == b"\0\6", pkt
s.connect(addr)
s.send(b"\0\4\0\0")
for n in range(1, acks + 1):
    pkt = s.recv(1024)
    assert pkt[:4] == struct.pack("!HH", 3, n), pkt[:4]
    time.sleep(pause)
    s.send(struct.pack("!HH", 4, n))
print("acked", acks, flush=True)
if then == "close":
    s.close()
else:
    time.sleep(30)
"""


@pytest.fixture(params=["pump", "python"])
def mode(request, monkeypatch) -> str:
    if request.param == "pump":
        require(pump.available(), "pxetui.tftp._pump is not built (setup.py's extension)")
    else:
        monkeypatch.setenv("PXETUI_TFTP_PUMP", "0")  # inherited by the service process
    return str(request.param)


def start(netns: NetnsFactory, tmp: Path) -> tuple[Netns, Netns, ServiceProc, Path]:
    server, client = netns.pair(client_addr="10.99.0.2/24")
    root = tmp / "root"
    root.mkdir()
    svc = ServiceProc(server, "tftp", base_config(tmp, tftp={"root": str(root)}), tmp)
    svc.wait_running()
    return server, client, svc, root


def test_real_lock_step_clients(netns, tmp_path, mode):
    require_tool("tftp", package="tftp-hpa")
    require_tool("atftp", "curl")
    _, client, svc, root = start(netns, tmp_path)
    try:
        data = os.urandom(1_500_000)
        (root / "vmlinuz").write_bytes(data)
        out = tmp_path / "out"
        out.mkdir()
        client.run("tftp", "-m", "binary", SERVER, "-c", "get", "vmlinuz", str(out / "hpa"), timeout=60)  # no options
        client.run("atftp", "--option", "blksize 1428", "-g", "-r", "vmlinuz", "-l", str(out / "atftp"),
                   SERVER, "69", timeout=60)  # OACK first
        client.run("curl", "-sS", "--max-time", "60", "-o", str(out / "curl"), f"tftp://{SERVER}/vmlinuz",
                   timeout=70)
        digest = hashlib.sha256(data).hexdigest()
        for name in ("hpa", "atftp", "curl"):
            assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
        done = wait_for(lambda: len(svc.of("TransferFinished", path="vmlinuz")) == 3
                        and svc.of("TransferFinished", path="vmlinuz"), what="3 finished")
        assert all(e["bytes_done"] == 1_500_000 and e["retransmits"] == 0 for e in done)
        started = svc.of("TransferStarted", path="vmlinuz")
        assert sorted(e["options"]["blksize"] for e in started) == [512, 512, 1428]
        assert svc.of("TransferFailed") == []
    finally:
        svc.stop()


def test_slow_client_reports_progress(netns, tmp_path, mode):
    _, client, svc, root = start(netns, tmp_path)
    try:
        (root / "initrd").write_bytes(os.urandom(200_000))
        # 150 blocks at ~8 ms each: over a second of transfer, at most 4 progress events a second.
        p = client.python("-c", CLIENT, "initrd", "150", "0.008", "close", log=tmp_path / "client.log")
        p.wait(60)
        assert p.returncode == 0, (tmp_path / "client.log").read_text()
        fail = svc.wait_event("TransferFailed", path="initrd", timeout=15)
        assert "unreachable" in fail["reason"] and fail["bytes_done"] == 150 * 512
        prog = svc.of("TransferProgress", transfer_id=fail["transfer_id"])
        times = [e["ts"] for e in prog]
        assert len(times) >= 2, prog
        assert all(b - a >= 0.2 for a, b in zip(times, times[1:], strict=False))
        assert max(e["bytes_done"] for e in prog) <= 150 * 512
    finally:
        svc.stop()


def test_stop_with_a_transfer_in_flight(netns, tmp_path, mode):
    server, client, svc, root = start(netns, tmp_path)
    (root / "big").write_bytes(os.urandom(300_000))
    p = client.python("-c", CLIENT, "big", "3", "0", "silent", log=tmp_path / "client.log")
    wait_for(lambda: "acked 3" in (tmp_path / "client.log").read_text(), timeout=20, what="3 blocks acked")
    t0 = time.monotonic()
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(10) == 0
    assert time.monotonic() - t0 < 5  # the in-flight transfer does not hold the stop (20 s giveup)
    wait_for(lambda: sh("ip", "netns", "pids", server.name).stdout.split() == [], timeout=5,
             what="no process left in the server namespace")
    client.stop(p)
