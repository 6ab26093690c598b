"""The `logs` service in the real engine (`pxetui serve` in a namespace): a client with a lease
sends syslog (RFC 3164 and 5424 over UDP, one line over TCP) and netconsole, and each line comes
back as a ClientLog under the client's MAC; a flood from another source hits the rate limit
once while the first client's lines still get through; lines are stored per MAC."""

from __future__ import annotations

import asyncio
import sqlite3
import sys

import pytest
from netns import require_tool, wait_for
from services import collect, udhcpc_lease

from pxetui.control import is_live, socket_path

pytestmark = pytest.mark.root

SERVER = "10.99.0.1"
CONFIG = """
[tftp]
enabled = false
[http]
enabled = false
[logs]
enabled = true
rate = 20.0
burst = 50
max_lines_per_client = 100
"""
# A bounded flood: 400 datagrams, sent once, as fast as the client can.
FLOOD = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
         f"for i in range(400): s.sendto(b'<13>flood %d' % i, ('{SERVER}', 514))\n")
NETCONSOLE = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              f"s.sendto(b'[    3.141592] netconsole: network logging started\\n', ('{SERVER}', 6666))\n")


def of(events: list[dict], type_: str, **match: object) -> list[dict]:
    return [e for e in events if e.get("type") == type_ and all(e.get(k) == v for k, v in match.items())]


def test_client_logs_are_attributed_rate_limited_and_stored(netns, tmp_path):
    require_tool("busybox", package="busybox-static")
    require_tool("logger", package="bsdutils")
    server, client, flooder = netns.lan(f"{SERVER}/24", None, "10.99.0.50/24")
    state = tmp_path / "state"
    cfg = tmp_path / "pxetui.toml"
    cfg.write_text(CONFIG)
    server.popen(sys.executable, "-m", "pxetui", "serve", "--interface", "eth0", "--dhcp", "full",
                 "--no-capture", "--state-dir", str(state), "--config", str(cfg), log=tmp_path / "serve.log")
    sock = socket_path(state)
    wait_for(lambda: is_live(sock), timeout=20, what="the control socket")

    def running(evs: list[dict]) -> bool:
        states = {e["service"]: e["state"] for e in of(evs, "ServiceState")}
        return states.get("logs") == "running" and states.get("dhcp") == "running"

    asyncio.run(collect(sock, running, timeout=30))
    ip = udhcpc_lease(client, tmp_path)

    def logger(*args: str) -> None:
        client.run("logger", "--server", SERVER, "--port", "514", *args)

    logger("--udp", "--rfc3164", "-t", "main-menu", "INFO: Menu item 'netcfg' selected")
    logger("--udp", "--rfc5424", "-t", "anaconda", "-p", "local1.err", "rfc5424 line")
    logger("--tcp", "--rfc5424", "-t", "rsyslogd", "over tcp")
    client.run(sys.executable, "-c", NETCONSOLE)

    def four_lines(evs: list[dict]) -> bool:
        return bool(of(evs, "LeaseGranted", ip=ip)) and len(of(evs, "ClientLog", ip=ip)) >= 4

    evs = asyncio.run(collect(sock, four_lines, timeout=20))
    mac = of(evs, "LeaseGranted", ip=ip)[0]["mac"]
    lines = of(evs, "ClientLog", ip=ip)
    assert {e["mac"] for e in lines} == {mac}
    by_msg = {e["message"]: e for e in lines}
    assert by_msg["INFO: Menu item 'netcfg' selected"]["app"] == "main-menu"
    assert by_msg["INFO: Menu item 'netcfg' selected"]["format"] == "rfc3164"
    assert (by_msg["rfc5424 line"]["format"], by_msg["rfc5424 line"]["facility"],
            by_msg["rfc5424 line"]["severity"]) == ("rfc5424", 17, 3)
    assert by_msg["over tcp"]["app"] == "rsyslogd"
    console = by_msg["[    3.141592] netconsole: network logging started"]
    assert (console["source"], console["app"]) == ("netconsole", "kernel")

    # A flood from another machine: one LimitHit for it, its burst through, the client still heard.
    flooder.run(sys.executable, "-c", FLOOD)
    logger("--udp", "--rfc3164", "-t", "preseed", "successfully loaded preseed file from http://x/p.cfg")

    def flooded(evs: list[dict]) -> bool:
        return bool(of(evs, "LimitHit", limit="logs.rate")) and bool(
            [e for e in of(evs, "ClientLog", ip=ip) if e["app"] == "preseed"])

    evs = asyncio.run(collect(sock, flooded, timeout=20))
    hits = of(evs, "LimitHit", limit="logs.rate")
    assert [h["ip"] for h in hits] == ["10.99.0.50"]
    flood_lines = of(evs, "ClientLog", ip="10.99.0.50")
    assert 50 <= len(flood_lines) < 400  # the burst (and what refilled meanwhile), never all
    assert all(e["mac"] and e["mac"] != mac for e in flood_lines)  # attributed by the neighbour table

    # The client's timeline: its syslog line moved it to the installer's stages.
    def staged(evs: list[dict]) -> bool:
        ups = of(evs, "ClientUpdate", mac=mac)
        return bool(ups) and "seed" in {s["stage"] for s in ups[-1]["stages"]}

    evs = asyncio.run(collect(sock, staged, timeout=20))

    # Stored per MAC (written within a second): the client's lines, the flood capped.
    db = state / "clientlogs.db"

    def stored() -> bool:
        if not db.exists():
            return False
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM client_logs WHERE mac=?", (mac,)).fetchone()[0] >= 5
    wait_for(stored, timeout=10, what="the client's lines in clientlogs.db")
    with sqlite3.connect(db) as conn:
        flood_mac = flood_lines[0]["mac"]
        assert conn.execute("SELECT count(*) FROM client_logs WHERE mac=?", (flood_mac,)).fetchone()[0] <= 100
