"""SIGHUP reloads `pxetui serve` as systemd's `ExecReload` does (README "Run it permanently"):
the config file is read again and only the services whose keys changed restart, so a lease and a
TFTP transfer in flight survive it, the new menu is served, and a bad config is an error event
while the engine keeps serving with the old one."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
from netns import require_tool, wait_for
from services import udhcpc_lease

from pxetui.control import ControlClient, is_live, socket_path

pytestmark = pytest.mark.root


# A lock-step TFTP client that stops acknowledging after block 2 until the test lets it go on:
# the transfer is provably in flight while the engine reloads.
SLOW_TFTP = r"""
import os, socket, struct, sys, time
server, name, out, started, go = sys.argv[1:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"\x00\x01" + name.encode() + b"\x00octet\x00", (server, 69))
data, expect, last_ack, peer = bytearray(), 1, None, None
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        pkt, peer = s.recvfrom(70000)
    except socket.timeout:
        if last_ack and peer:
            s.sendto(last_ack, peer)
        continue
    op, blk = struct.unpack("!HH", pkt[:4])
    if op == 5:
        sys.exit("tftp error: " + pkt[4:-1].decode(errors="replace"))
    if op != 3 or blk != expect:
        continue  # a retransmission of a block we have: acknowledged already
    data += pkt[4:]
    expect += 1
    if blk == 2:
        open(started, "w").close()
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.05)
    last_ack = struct.pack("!HH", 4, blk)
    s.sendto(last_ack, peer)
    if len(pkt) - 4 < 512:
        open(out, "wb").write(data)
        sys.exit(0)
sys.exit("tftp: no end of transfer")
"""


MENU_URL = "http://10.99.0.1/boot.ipxe?mac=52:54:00:00:00:01&arch=0"  # the menu itself, as iPXE asks


def of(events: list[dict], type_: str, **match) -> list[dict]:
    return [e for e in events if e.get("type") == type_ and all(e.get(k) == v for k, v in match.items())]


def running_pid(events: list[dict], service: str) -> int:
    return [e for e in of(events, "ServiceState", service=service) if e["state"] == "running"][-1]["pid"]


class Watcher:
    """One UI-style client attached for the whole test: every event the engine relays, in order."""

    def __init__(self, sock: Path) -> None:
        self.events: list[dict] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(sock)), daemon=True)
        self.thread.start()

    async def _run(self, sock: Path) -> None:
        client = await ControlClient.connect(sock)
        try:
            async def read() -> None:
                async for ev in client.events():
                    self.events.append(ev)
            await asyncio.wait_for(read(), 240)  # ends when the engine stops
        finally:
            await client.close()

    def wait(self, pred, what: str, timeout: float = 30) -> None:
        wait_for(lambda: pred(list(self.events)), timeout=timeout, what=what)


def write_config(path: Path, tmp: Path, max_per_client: int, dhcp_range: str = "10.99.0.100-10.99.0.199",
                 capture: bool = False) -> None:
    path.write_text(f"""
interface = "eth0"
state_dir = "{tmp / 'state'}"

[dhcp]
mode = "full"
range = "{dhcp_range}"

[dhcp.boot_files]
bios = "pxelinux.0"

[tftp]
root = "{tmp / 'tftp'}"

[http]
root = "{tmp / 'http'}"
max_per_client = {max_per_client}

[capture]
enabled = {str(capture).lower()}
""")


def test_sighup_reloads_config_and_menu_keeping_leases_and_transfers(netns, tmp_path):
    require_tool("busybox", package="busybox-static")
    require_tool("curl", "tftp", package="curl, tftp-hpa")
    server, client = netns.pair()
    (tmp_path / "tftp").mkdir()
    (tmp_path / "http").mkdir()
    payload = os.urandom(60_000)  # 118 blocks of 512
    (tmp_path / "tftp" / "pxelinux.0").write_bytes(payload)
    conf = tmp_path / "pxetui.toml"
    write_config(conf, tmp_path, max_per_client=16)
    state = tmp_path / "state"

    def pxetui(*args: str) -> None:
        r = server.run(sys.executable, "-m", "pxetui", *args, "--config", str(conf), check=False)
        assert r.returncode == 0, r.stderr

    pxetui("menu", "set", "--title", "Menu before reload")
    eng = server.popen(sys.executable, "-m", "pxetui", "serve", "--config", str(conf), log=tmp_path / "serve.log")
    sock = socket_path(state)
    wait_for(lambda: is_live(sock), timeout=20, what="the control socket")
    w = Watcher(sock)
    w.wait(lambda evs: all(of(evs, "ServiceState", service=s, state="running") for s in ("dhcp", "tftp", "http")),
           "dhcp, tftp and http running")
    pids = {s: running_pid(w.events, s) for s in ("dhcp", "tftp", "http")}

    # A lease held by a real DHCP client, and a TFTP transfer stopped half-way.
    ip = udhcpc_lease(client, tmp_path)
    w.wait(lambda evs: of(evs, "LeaseGranted", ip=ip), "the LeaseGranted event")
    slow = tmp_path / "slow_tftp.py"
    slow.write_text(SLOW_TFTP)
    started, go, got = tmp_path / "started", tmp_path / "go", tmp_path / "got.bin"
    tftp = client.python(str(slow), "10.99.0.1", "pxelinux.0", str(got), str(started), str(go),
                         log=tmp_path / "slow_tftp.log")
    wait_for(started.exists, timeout=20, what="the TFTP transfer to start")
    before = client.run("curl", "-sf", MENU_URL).stdout
    assert "Menu before reload" in before

    # New menu, and an HTTP key changed: SIGHUP restarts HTTP only.
    pxetui("menu", "set", "--title", "Menu after reload")
    write_config(conf, tmp_path, max_per_client=12)
    os.kill(eng.pid, signal.SIGHUP)
    w.wait(lambda evs: [e for e in of(evs, "Log", service="engine") if "reload: config re-read" in e["message"]],
           "the reload's log line")
    reloaded = [e for e in of(w.events, "Log", service="engine") if "reload: config re-read" in e["message"]][0]
    assert "restarted http (http.max_per_client changed)" in reloaded["message"]
    assert "dhcp, tftp re-read menus and overrides" in reloaded["message"]
    w.wait(lambda evs: running_pid(evs, "http") != pids["http"], "http running again")

    go.touch()
    assert tftp.wait(30) == 0, (tmp_path / "slow_tftp.log").read_text()
    assert got.read_bytes() == payload  # the transfer in flight completed, every byte
    assert "Menu after reload" in client.run("curl", "-sf", MENU_URL).stdout
    client.run("tftp", "10.99.0.1", "-m", "binary", "-c", "get", "pxelinux.cfg/default", str(tmp_path / "default"))
    assert "MENU TITLE Menu after reload" in (tmp_path / "default").read_text()
    assert {s: running_pid(w.events, s) for s in ("dhcp", "tftp")} == {s: pids[s] for s in ("dhcp", "tftp")}

    # A bad config: an error event, and the engine goes on serving with the one in effect.
    write_config(conf, tmp_path, max_per_client=12, dhcp_range="10.1.0.5-10.1.0.9")
    os.kill(eng.pid, signal.SIGHUP)
    w.wait(lambda evs: of(evs, "Alert", key="config.reload", severity="error"), "the refused reload's alert")
    errors = [e["message"] for e in of(w.events, "Log", service="engine", level_name="error")]
    assert "reload: dhcp.range: 10.1.0.5 is outside eth0's subnet 10.99.0.0/24" in errors
    assert eng.poll() is None
    assert "Menu after reload" in client.run("curl", "-sf", MENU_URL).stdout

    # Fixed again, with capture switched on: the alert is cleared, capture starts, nothing restarts.
    write_config(conf, tmp_path, max_per_client=12, capture=True)
    os.kill(eng.pid, signal.SIGHUP)
    w.wait(lambda evs: of(evs, "Alert", key="config.reload", cleared=True), "the alert cleared")
    w.wait(lambda evs: of(evs, "ServiceState", service="capture", state="running"), "capture running")
    assert [e for e in of(w.events, "Log", service="engine") if "reload: config re-read; started capture; "
            "dhcp, tftp, http re-read menus and overrides" == e["message"]]
    assert {s: running_pid(w.events, s) for s in ("dhcp", "tftp")} == {s: pids[s] for s in ("dhcp", "tftp")}

    # The lease was never ended; SIGINT still stops the engine.
    assert not of(w.events, "LeaseEnded"), of(w.events, "LeaseEnded")
    os.kill(eng.pid, signal.SIGINT)
    assert eng.wait(10) == 0, (tmp_path / "serve.log").read_text()[-2000:]
    w.thread.join(5)
