"""Spoofed-MAC DISCOVER flood (issue 13, docs/SECURITY.md "DHCP on a network that is not ours"):
a host sends thousands of DISCOVERs from random MACs and never REQUESTs. The flood is bounded
(the rate of new offers; dropped DISCOVERs cost no event), it cannot empty the pool (a full
pool reclaims the oldest unanswered offer), hitting a limit is an event per interval, not per
packet, and a real client (busybox udhcpc) in the same namespace gets an address during it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from netns import REPO, require_tool, wait_for
from services import ServiceProc, base_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from dhcp_rig import bound_address, udhcpc_script  # noqa: E402

pytestmark = pytest.mark.root

DORA = str(REPO / "bench" / "dhcp" / "dora.py")
POOL = ("10.99.0.100", "10.99.0.119")  # 20 addresses: the flood fills it many times over
OFFER_RATE = 300  # dhcp.limits.new_offers_per_second for this test (default 1000: less CPU here)
FLOOD_RATE, FLOOD_SECONDS = 400, 15  # over the offer rate; at most 6,000 DISCOVERs


def test_spoofed_discover_flood_neither_empties_the_pool_nor_starves_a_client(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    server, client = netns.pair()
    cfg = base_config(tmp_path, dhcp={
        "mode": "full", "probe_seconds": 0, "range": "-".join(POOL),
        "limits": {"new_offers_per_second": OFFER_RATE, "new_offers_burst": OFFER_RATE}})
    svc = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc.wait_running()
    flood = client.popen(sys.executable, DORA, "flood", "--iface", "eth0", "--rate", str(FLOOD_RATE),
                         "--seconds", str(FLOOD_SECONDS), "--count", str(FLOOD_RATE * FLOOD_SECONDS),
                         stdout=subprocess.PIPE)
    # the flood has filled the pool and is past the offer rate
    wait_for(lambda: svc.of("LimitHit", limit="dhcp.range")
             and svc.of("LimitHit", limit="dhcp.limits.new_offers_per_second"),
             timeout=15, what="the flood hitting the pool and the offer rate")

    script, log = udhcpc_script(tmp_path)
    r = client.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", str(script),
                   "-t", "12", "-T", "1", timeout=60, check=False)
    still_flooding = flood.poll() is None
    out, _ = flood.communicate(timeout=FLOOD_SECONDS + 20)
    sent = json.loads(out)["sent"]
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert still_flooding, "udhcpc was served only after the flood ended"
    ip = bound_address(log)
    assert ip is not None and POOL[0] <= ip <= POOL[1] and len(ip) == len(POOL[0]), ip
    mac = client.run("cat", "/sys/class/net/eth0/address").stdout.strip()
    assert svc.wait_event("LeaseGranted", ip=ip)["mac"] == mac
    assert not svc.of("PoolExhausted")  # the pool never looked empty to anyone

    # Bounded: DISCOVERs past the offer rate were dropped before they cost an event, and each
    # limit was reported once per interval with a count, not once per packet.
    offers = len(svc.of("DhcpPacket", direction="out", msg_type="OFFER"))
    seen = len(svc.of("DhcpPacket", direction="in", msg_type="DISCOVER"))
    assert sent >= 2000 and offers <= seen < sent, (sent, seen, offers)
    for limit in ("dhcp.limits.new_offers_per_second", "dhcp.range"):
        events = svc.of("LimitHit", limit=limit)
        assert 1 <= len(events) <= 4, events  # the flood lasts at most 15 s: intervals of 10 s
        assert all(e["ip"] is None for e in events)  # folded into one key, whatever the MACs
