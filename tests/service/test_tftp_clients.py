"""The TFTP service with real clients in a namespace: tftp-hpa, atftp, curl and tftpy.

Server 10.99.0.1 in one namespace, clients at 10.99.0.2 in the other; every file is checked
by sha256 (tftp-hpa exits 0 even on errors, so its output file is what counts).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from impair import ImpairedLink, impaired_pair
from netns import Netns, NetnsFactory, require_tool, sh, wait_for
from services import ServiceProc, base_config

pytestmark = pytest.mark.root

SERVER = "10.99.0.1"


@dataclass
class Rig:
    server: Netns
    client: Netns
    svc: ServiceProc
    root: Path
    tmp: Path

    def put(self, name: str, size: int) -> str:
        data = os.urandom(size)
        (self.root / name).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    def finished(self, path: str) -> list[dict]:
        return self.svc.of("TransferFinished", path=path)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "missing"


def start(netns: NetnsFactory, tmp_path: Path, link: tuple[Netns, Netns] | None = None,
          **tftp: object) -> Rig:
    """The TFTP service in a server namespace; `link`: (server, client) made by the caller."""
    server, client = link or netns.pair(client_addr="10.99.0.2/24")
    root = tmp_path / "root"
    root.mkdir()
    cfg = base_config(tmp_path, tftp={"root": str(root), **tftp})
    svc = ServiceProc(server, "tftp", cfg, tmp_path)
    svc.wait_running()
    return Rig(server, client, svc, root, tmp_path)


@pytest.fixture
def rig(netns, tmp_path):
    r = start(netns, tmp_path)
    yield r
    r.svc.stop()


TFTPY_GET = """
import sys, tftpy
tftpy.TftpClient(sys.argv[1], 69, options={"blksize": 1468}).download(sys.argv[2], sys.argv[3], timeout=3)
"""


def test_four_real_clients_fetch_byte_exact(rig):
    require_tool("tftp", package="tftp-hpa")
    require_tool("atftp", "curl")
    digest = rig.put("boot.img", 2_000_000 + 123)
    out = rig.tmp / "out"
    out.mkdir()
    c = rig.client
    c.run("tftp", "-m", "binary", SERVER, "-c", "get", "boot.img", str(out / "hpa"))
    c.run("atftp", "--option", "blksize 1468", "--option", "windowsize 8", "--option", "tsize 0",
          "-g", "-r", "boot.img", "-l", str(out / "atftp"), SERVER)
    c.run("curl", "-sS", "--tftp-blksize", "1428", "-o", str(out / "curl"), f"tftp://{SERVER}/boot.img")
    c.run(sys.executable, "-c", TFTPY_GET, SERVER, "boot.img", str(out / "tftpy"))
    for name in ("hpa", "atftp", "curl", "tftpy"):
        assert sha(out / name) == digest, f"{name} got a different file"
    done = wait_for(lambda: len(rig.finished("boot.img")) == 4 and rig.finished("boot.img"), what="4 finished")
    assert all(e["bytes_done"] == 2_000_123 and e["ip"] == "10.99.0.2" and e["mac"] is None for e in done)
    started = {e["transfer_id"]: e for e in rig.svc.of("TransferStarted", path="boot.img")}
    by_client = sorted((e["options"]["blksize"], e["options"]["windowsize"]) for e in started.values())
    assert by_client == sorted([(512, 1), (1468, 8), (1428, 1), (1468, 1)])
    atftp = next(e for e in started.values() if e["options"]["windowsize"] == 8)
    assert atftp["options"]["tsize"] == 2_000_123 and atftp["size"] == 2_000_123

    # SIGHUP rebuilds the resolver (virtual files) without dropping the service.
    rig.server.run("kill", "-HUP", str(rig.svc.proc.pid))
    wait_for(lambda: any("reloaded" in e.get("message", "") for e in rig.svc.of("Log")), what="reload")
    c.run("curl", "-sS", "-o", str(out / "again"), f"tftp://{SERVER}/boot.img")
    assert sha(out / "again") == digest


def test_fifty_concurrent_clients(netns, tmp_path):
    require_tool("curl")
    # Fifty machines, simulated from one address: past tftp.max_per_client (8) otherwise.
    rig = start(netns, tmp_path, max_per_client=64)
    try:
        fifty_at_once(rig)
    finally:
        rig.svc.stop()


def fifty_at_once(rig: Rig) -> None:
    digest = rig.put("initrd", 300_000)
    out = rig.tmp / "out"
    out.mkdir()
    procs = [rig.client.popen("curl", "-sS", "--max-time", "60", "--tftp-blksize", "1428",
                              "-o", str(out / f"c{i}"), f"tftp://{SERVER}/initrd") for i in range(50)]
    for p in procs:
        p.wait(90)
    assert [p.returncode for p in procs] == [0] * 50
    assert all(sha(out / f"c{i}") == digest for i in range(50))
    wait_for(lambda: len(rig.finished("initrd")) == 50, what="50 TransferFinished")
    assert rig.svc.of("TransferFailed") == []


LOSS, DELAY = 0.05, 0.005  # each way: 5% of frames lost, the rest 5 ms late


def impaired(netns: NetnsFactory, tmp_path: Path) -> tuple[ImpairedLink, Rig]:
    """5% loss and 5 ms delay each way: `tc qdisc ... netem` on a veth when the kernel has
    sch_netem, else (this VM's and CI's kernels) the userspace relay of tests/impair.py."""
    link = impaired_pair(netns, tmp_path, client_addr="10.99.0.2/24", loss=LOSS, delay=DELAY, seed=4)
    return link, start(netns, tmp_path, link=(link.server, link.client))


def test_loss_and_delay_still_complete(netns, tmp_path):
    require_tool("tftp", package="tftp-hpa")
    require_tool("curl")
    link, rig = impaired(netns, tmp_path)
    try:
        # The delay is real: no echo comes back sooner than two one-way delays.
        echo = link.ping(10)
        assert echo.rtts and min(echo.rtts) >= 2 * DELAY * 0.9, echo
        digest = rig.put("kernel", 300_000)
        out = rig.tmp / "out"
        out.mkdir()
        # The three clients run at once: lock-step over a 10 ms round trip takes seconds each.
        cmds = {
            "hpa": ("tftp", "-m", "binary", SERVER, "-c", "get", "kernel", str(out / "hpa")),
            "curl1468": ("curl", "-sS", "--max-time", "60", "--tftp-blksize", "1468",
                         "-o", str(out / "curl1468"), f"tftp://{SERVER}/kernel"),
            "curl": ("curl", "-sS", "--max-time", "60", "-o", str(out / "curl"), f"tftp://{SERVER}/kernel"),
        }
        t0 = time.monotonic()
        procs = {name: rig.client.popen(*cmd) for name, cmd in cmds.items()}
        took: dict[str, float] = {}
        def all_done() -> bool:
            for name, p in procs.items():
                if name not in took and p.poll() is not None:
                    took[name] = time.monotonic() - t0
            return len(took) == len(procs)

        wait_for(all_done, timeout=90, interval=0.02, what="three clients under loss and delay")
        assert {name: p.returncode for name, p in procs.items()} == dict.fromkeys(cmds, 0)
        for name in cmds:
            assert sha(out / name) == digest, f"{name} got a different file under loss"
        # Lock-step (RFC 1350): DATA n+1 leaves after ACK n came back, so each of the 586
        # 512-byte blocks costs at least a round trip (5.9 s here); without the delay ~1 s.
        assert took["hpa"] >= 586 * 2 * DELAY * 0.9, took
        assert took["curl"] >= 586 * 2 * DELAY * 0.9, took
        done = wait_for(lambda: len(rig.finished("kernel")) == 3 and rig.finished("kernel"),
                        what="3 finished", timeout=20)
        # ~1000 packets each way at 5% loss: losing none would be a one-in-10^22 event.
        assert sum(e["retransmits"] for e in done) > 0
        # Progress: at most 4 per second per transfer (the slow transfers here emit several).
        times: dict[str, list[float]] = defaultdict(list)
        for e in rig.svc.of("TransferProgress"):
            times[e["transfer_id"]].append(e["ts"])
        assert times, "no progress events from transfers lasting seconds"
        for ts in times.values():
            assert all(b - a >= 0.2 for a, b in zip(ts, ts[1:], strict=False))
    finally:
        rig.svc.stop()


def test_block_numbers_roll_over_past_65535(rig):
    require_tool("atftp")
    size = 65536 * 512 + 777  # 65538 blocks of 512 bytes
    digest = rig.put("big.iso", size)
    out = rig.tmp / "big"
    rig.client.run("atftp", "--option", "blksize 512", "--option", "windowsize 16", "-g", "-r", "big.iso",
                   "-l", str(out), SERVER, timeout=90)
    assert sha(out) == digest
    (done,) = wait_for(lambda: rig.finished("big.iso"), what="finished")
    assert done["bytes_done"] == size


def test_uploads_go_to_their_own_directory(netns, tmp_path):
    require_tool("tftp", package="tftp-hpa")
    uploads = tmp_path / "uploads"
    rig = start(netns, tmp_path, uploads_dir=str(uploads))
    try:
        rig.put("served.cfg", 100)
        src = tmp_path / "crash.dump"
        src.write_bytes(os.urandom(5000))
        c = rig.client
        c.run("tftp", "-m", "binary", SERVER, "-c", "put", str(src), "dumps/crash.dump")
        assert sha(uploads / "dumps" / "crash.dump") == sha(src)
        wait_for(lambda: rig.finished("dumps/crash.dump"), what="upload finished")
        # Never over an existing file, never outside the uploads directory, never into the root.
        c.run("tftp", "-m", "binary", SERVER, "-c", "put", str(tmp_path / "root" / "served.cfg"), "dumps/crash.dump")
        assert sha(uploads / "dumps" / "crash.dump") == sha(src)
        wait_for(lambda: rig.svc.of("TransferFailed", status=6), what="ERROR 6")
        c.run("tftp", "-m", "binary", SERVER, "-c", "put", str(src), "../escape")
        wait_for(lambda: rig.svc.of("TransferFailed", status=2), what="ERROR 2")
        assert not (tmp_path / "escape").exists()
        assert sorted(p.name for p in uploads.rglob("*")) == ["crash.dump", "dumps"]
    finally:
        rig.svc.stop()


def test_service_stops_on_sigterm_with_its_workers(rig):
    require_tool("curl")
    rig.put("f", 10_000)
    rig.client.run("curl", "-sS", "-o", str(rig.tmp / "f"), f"tftp://{SERVER}/f")
    def pids() -> list[str]:
        return sh("ip", "netns", "pids", rig.server.name).stdout.split()

    assert str(rig.svc.proc.pid) in pids()
    rig.svc.proc.send_signal(signal.SIGTERM)
    assert rig.svc.proc.wait(10) == 0
    # Worker processes (one per extra CPU) leave with the service, not later.
    wait_for(lambda: pids() == [], timeout=5, what="no process left in the server namespace")
