"""Spoofed RELEASE (issue 13, docs/SECURITY.md "DHCP on a network that is not ours"): a host
tries to drop a victim's lease with RELEASEs from its own MAC, with another server's identifier
or none, and with the victim's MAC from another address. All are ignored, with the reason as an
event; the victim's lease stays in the store, and the victim (busybox udhcpc, in the same
namespace as the attacker) renews it afterwards."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import sys
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
ATTACKER = bytes.fromhex("525400ee0001")
ROGUE_ADDR = "10.99.0.77"  # an address the attacker adds beside the victim's


def release(mac: bytes, ciaddr: bytes, sid: bytes | None, xid: int) -> Packet:
    opts = {o.MSG_TYPE: bytes((o.RELEASE,))} | ({o.SERVER_ID: sid} if sid else {})
    return Packet(xid=xid, chaddr=mac, ciaddr=ciaddr, options=opts)


def test_spoofed_release_leaves_the_victims_lease(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    server, client = netns.pair()
    cfg = base_config(tmp_path, dhcp={"mode": "full", "probe_seconds": 0})
    svc = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc.wait_running()
    script, log = udhcpc_script(tmp_path)
    victim_proc = client.popen("busybox", "udhcpc", "-i", "eth0", "-f", "-s", str(script), "-t", "5", "-T", "1",
                               log=tmp_path / "udhcpc.out")
    ip = wait_for(lambda: bound_address(log), timeout=20, what="the victim's lease")
    victim = bytes.fromhex(client.run("cat", "/sys/class/net/eth0/address").stdout.strip().replace(":", ""))
    addr = socket.inet_aton(ip)

    # RELEASE is unicast to the server; from this namespace it leaves from the victim's address
    # unless bound to the rogue one.
    client.run("ip", "addr", "add", f"{ROGUE_ADDR}/24", "dev", "eth0")
    attacks = [
        (release(ATTACKER, addr, US, 1), "0.0.0.0", "the lease on that address is another client's"),
        (release(victim, addr, OTHER, 2), "0.0.0.0", "it is for server 10.99.0.2"),
        (release(victim, addr, None, 3), "0.0.0.0", "no server identifier (option 54)"),
        (release(victim, addr, US, 4), ROGUE_ADDR, f"sent from {ROGUE_ADDR}, not from the released address"),
    ]
    for pkt, bind, why in attacks:
        assert exchange(client, [pkt], ("10.99.0.1", 67), bind=bind, wait=0.2) == []
        svc.wait_event("DhcpIgnored", msg_type="RELEASE", reason=f"RELEASE of {ip} refused: {why}")
    client.run("ip", "addr", "del", f"{ROGUE_ADDR}/24", "dev", "eth0")

    assert not svc.of("LeaseEnded")
    with sqlite3.connect(cfg.db_path) as db:
        row = db.execute("SELECT mac, state FROM dhcp_leases WHERE ip=?", (ip,)).fetchone()
    assert row == (victim.hex(":"), "bound")
    # the victim is still served: its renewal (unicast RENEWING) is ACKed
    os.kill(victim_proc.pid, signal.SIGUSR1)
    wait_for(lambda: f"renew {ip}" in log.read_text(), timeout=15, what="the victim's renewal")
    assert len(svc.of("LeaseGranted", ip=ip, mac=victim.hex(":"))) >= 2
