"""`pxetui serve` with exactly the privileges scripts/pxetui.service leaves it: the unit's
CapabilityBoundingSet and NoNewPrivileges, applied with setpriv as systemd applies them to a root
service. Every service starts, drops to the pxetui user with no capability left, runs at its
priority, serves a lease and a TFTP file, and a SIGHUP reload restarts and signals services."""

from __future__ import annotations

import asyncio
import configparser
import os
import pwd
import re
import signal
import sys
from pathlib import Path

import pytest
from netns import require_tool, wait_for
from services import collect

from pxetui import privileges
from pxetui.control import is_live, socket_path
from pxetui.dhcp.service import RCVBUF

pytestmark = pytest.mark.root

UNIT = Path(__file__).resolve().parents[2] / "scripts" / "pxetui.service"
SERVICES = ("dhcp", "tftp", "http", "capture")
CAP_NUMBERS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_KILL": 5, "CAP_SETGID": 6,
               "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12,
               "CAP_NET_RAW": 13, "CAP_SYS_NICE": 23}  # <linux/capability.h>


def unit_service_section() -> dict[str, str]:
    p = configparser.ConfigParser(interpolation=None, strict=False)
    p.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    p.read_string(UNIT.read_text())
    return dict(p["Service"])


def of(events: list[dict], type_: str, **match) -> list[dict]:
    return [e for e in events if e.get("type") == type_ and all(e.get(k) == v for k, v in match.items())]


def running(evs: list[dict], service: str) -> list[dict]:
    return [e for e in of(evs, "ServiceState", service=service) if e["state"] == "running"]


def test_serve_works_with_the_units_capabilities_only(netns, tmp_path):
    require_tool("setpriv", package="util-linux")
    require_tool("busybox", package="busybox-static")
    require_tool("tftp", package="tftp-hpa")
    unit = unit_service_section()
    caps = unit["CapabilityBoundingSet"].split()
    assert unit["NoNewPrivileges"] == "yes"
    bounding = "-all," + ",".join("+" + c.removeprefix("CAP_").lower() for c in caps)
    server, client = netns.pair()
    tftp_root = tmp_path / "tftp"
    tftp_root.mkdir()
    payload = os.urandom(100_000)
    (tftp_root / "pxelinux.0").write_bytes(payload)
    conf = tmp_path / "pxetui.toml"
    state = tmp_path / "state"

    def write(max_per_client: int) -> None:
        conf.write_text(f'interface = "eth0"\nstate_dir = "{state}"\n[dhcp]\nmode = "full"\n'
                        f'[tftp]\nroot = "{tftp_root}"\n[http]\nroot = "{tmp_path / "http"}"\n'
                        f"max_per_client = {max_per_client}\n")

    write(16)
    eng = server.popen("setpriv", "--no-new-privs", f"--bounding-set={bounding}", "--",
                       sys.executable, "-m", "pxetui", "serve", "--config", str(conf),
                       log=tmp_path / "serve.log")
    sock = socket_path(state)
    wait_for(lambda: is_live(sock), timeout=20, what="the control socket")
    evs = asyncio.run(collect(sock, lambda evs: all(running(evs, s) for s in SERVICES), timeout=30))
    status = privileges.status_fields(eng.pid)
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapBnd"], 16) == sum(1 << CAP_NUMBERS[c] for c in caps)
    uid = pwd.getpwnam("pxetui").pw_uid
    for s in SERVICES:
        pid = running(evs, s)[-1]["pid"]
        st = privileges.status_fields(pid)
        assert st["Uid"].split()[0] == str(uid), (s, st["Uid"])  # dropped (SETUID, SETGID)
        assert int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0, s  # emptied (SETPCAP)
    dhcp_pid = running(evs, "dhcp")[-1]["pid"]
    assert os.getpriority(os.PRIO_PROCESS, dhcp_pid) == -10  # SYS_NICE
    assert (state / "pxetui.db").stat().st_uid == uid  # handed over (CHOWN, FOWNER)
    # DHCP's receive buffer past net.core.rmem_max for boot storms (NET_ADMIN: SO_RCVBUFFORCE).
    ss = server.run("ss", "-uamn", "sport = :67").stdout
    rb = [int(m) for m in re.findall(r"\brb(\d+)", ss)]
    assert rb and min(rb) >= RCVBUF, ss

    # Served: a lease (NET_BIND_SERVICE, NET_RAW's capture sees it) and a TFTP file.
    client.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "5", "-T", "1", "-s", "/bin/true", timeout=30)
    client.run("ip", "addr", "add", "10.99.0.150/24", "dev", "eth0")
    client.run("tftp", "10.99.0.1", "-m", "binary", "-c", "get", "pxelinux.0", str(tmp_path / "got.bin"))
    assert (tmp_path / "got.bin").read_bytes() == payload

    # SIGHUP: HTTP restarts (SIGTERM to a pxetui-user process: KILL), the others are signalled.
    write(12)
    os.kill(eng.pid, signal.SIGHUP)
    http_pid = running(evs, "http")[-1]["pid"]
    evs = asyncio.run(collect(sock, lambda evs: [e for e in running(evs, "http") if e["pid"] != http_pid]
                              and [e for e in of(evs, "Log", service="tftp") if "reloaded" in e["message"]],
                              timeout=30))
    assert eng.poll() is None
    text = (tmp_path / "serve.log").read_text()
    assert "restarted http (http.max_per_client changed)" in text
    os.kill(eng.pid, signal.SIGTERM)
    assert eng.wait(10) == 0, text[-2000:]
