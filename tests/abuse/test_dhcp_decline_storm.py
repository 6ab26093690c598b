"""DECLINE storm (issue 13, docs/SECURITY.md "DHCP on a network that is not ours"): a host
DECLINEs every address of the pool, from its own MAC and from a spoofed MAC per address, with
and without our server identifier, the address a real client holds included. Nothing is
quarantined (a DECLINE counts only from the MAC holding a running lease on the address, with
our server id), the refusals are events, and a real client (busybox udhcpc) in the same
namespace gets and keeps its address during the storm."""

from __future__ import annotations

import socket
import sqlite3
import sys
import threading
from pathlib import Path

import pytest
from netns import require_tool, wait_for
from services import ServiceProc, base_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from dhcp_rig import bound_address, exchange, udhcpc_script  # noqa: E402

from pxetui.dhcp import options as o  # noqa: E402
from pxetui.dhcp.codec import Packet  # noqa: E402

pytestmark = pytest.mark.root

US, OTHER = socket.inet_aton("10.99.0.1"), socket.inet_aton("10.99.0.2")
ATTACKER = bytes.fromhex("525400dd0001")
MAX_ROUNDS = 30  # times the whole pool is declined, until the client is served (4 x 100 packets each)


def declines(round_: int) -> list[Packet]:
    out = []
    for host in range(100, 200):
        addr = socket.inet_aton(f"10.99.0.{host}")
        spoof = bytes.fromhex("02dd00") + bytes((round_, host, 1))
        for mac, sid in ((ATTACKER, US), (ATTACKER, None), (spoof, US), (spoof, OTHER)):
            opts = {o.MSG_TYPE: bytes((o.DECLINE,)), o.REQUESTED_IP: addr} | ({o.SERVER_ID: sid} if sid else {})
            out.append(Packet(xid=host, chaddr=mac, options=opts))
    return out


def test_decline_storm_quarantines_nothing(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    server, client = netns.pair()
    cfg = base_config(tmp_path, dhcp={"mode": "full", "probe_seconds": 0})
    svc = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc.wait_running()

    done, rounds, answers = threading.Event(), [0], []

    def storm() -> None:
        while not done.is_set() and rounds[0] < MAX_ROUNDS:
            answers.extend(exchange(client, declines(rounds[0]), ("255.255.255.255", 67), wait=0.2))
            rounds[0] += 1

    attacker = threading.Thread(target=storm)
    attacker.start()
    try:
        wait_for(lambda: rounds[0] >= 1, timeout=30, what="a first round of DECLINEs")
        script, log = udhcpc_script(tmp_path)
        r = client.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", str(script),
                       "-t", "5", "-T", "1", timeout=60, check=False)
        served_during = attacker.is_alive()
    finally:
        done.set()
        attacker.join(60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    # a DECLINE is never answered (the storm's socket also hears the client's broadcast replies)
    assert [a for a, _ in answers if a.chaddr[:6] == ATTACKER or a.chaddr[:3] == b"\x02\xdd\x00"] == []
    ip = bound_address(log)
    assert ip is not None and ip.startswith("10.99.0.")
    # once more, now that the legitimate client's address is known, at its address
    victim_addr = socket.inet_aton(ip)
    assert exchange(client, [Packet(xid=9, chaddr=ATTACKER, options={
        o.MSG_TYPE: bytes((o.DECLINE,)), o.REQUESTED_IP: victim_addr, o.SERVER_ID: US})],
        ("255.255.255.255", 67), wait=0.2) == []

    svc.wait_event("DhcpIgnored", reason=f"DECLINE of {ip} refused: the lease on that address is "
                                         "another client's", timeout=10)
    refused = [e for e in svc.of("DhcpIgnored") if e["msg_type"] == "DECLINE"]
    reasons = {e["reason"].split(": ", 1)[1] for e in refused}
    assert {"no server identifier (option 54)", "it is for server 10.99.0.2",
            "no running lease of ours on that address"} <= reasons, reasons
    assert len(refused) >= 200 * rounds[0]  # the spoofed MACs' (ATTACKER's own are rate limited)
    assert svc.of("LimitHit", limit="dhcp.limits.mac_rate")  # ... and that was counted
    assert not svc.of("LeaseEnded")
    with sqlite3.connect(cfg.db_path) as db:
        states = db.execute("SELECT ip, state FROM dhcp_leases").fetchall()
    assert states == [(ip, "bound")], states  # pool intact: no quarantine, the client's lease kept
    assert served_during, "the client was served only after the storm"
