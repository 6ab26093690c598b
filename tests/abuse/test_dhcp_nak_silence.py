"""No NAK for other servers' clients (issue 13, RFC 2131 4.3.2, docs/SECURITY.md "DHCP on a
network that is not ours"): in full mode, INIT-REBOOT, REBINDING and RENEWING requests about
addresses that are not ours (another network, or the part of our subnet another server hands
out) get no answer at all, nor does an INIT-REBOOT from a client we have no record of; a client
we know asking for an address of ours held by another client still gets a NAK; and a real client
(busybox udhcpc) in the same namespace is served throughout."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from netns import require_tool
from services import ServiceProc, base_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from dhcp_rig import bound_address, exchange, udhcpc_script  # noqa: E402

from pxetui.dhcp import options as o  # noqa: E402
from pxetui.dhcp.codec import BROADCAST_FLAG, Packet  # noqa: E402

pytestmark = pytest.mark.root

STRANGER = bytes.fromhex("525400ff0001")  # another server's client, rebooting or renewing


def request(xid: int, requested: str | None = None, ciaddr: str = "0.0.0.0") -> Packet:
    opts = {o.MSG_TYPE: bytes((o.REQUEST,))}
    if requested:
        opts[o.REQUESTED_IP] = socket.inet_aton(requested)
    return Packet(xid=xid, flags=BROADCAST_FLAG, chaddr=STRANGER, ciaddr=socket.inet_aton(ciaddr),
                  options=opts)


def test_requests_about_other_servers_addresses_get_no_nak(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    server, client = netns.pair()
    # ours: .100-.149; the site's server (not running here) would hand out .150-.199
    cfg = base_config(tmp_path, dhcp={"mode": "full", "probe_seconds": 0, "range": "10.99.0.100-10.99.0.149"})
    svc = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc.wait_running()
    script, log = udhcpc_script(tmp_path)
    r = client.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", str(script),
                   "-t", "5", "-T", "1", timeout=30, check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    ours = bound_address(log)
    assert ours is not None
    client.run("ip", "addr", "flush", "dev", "eth0")  # the stranger has no address of ours

    strangers = [
        request(1, requested="192.0.2.10"),                      # INIT-REBOOT, another network
        request(2, requested="10.99.0.160"),                     # INIT-REBOOT, the site's lease
        request(3, ciaddr="192.0.2.11"),                         # REBINDING, another network
        request(4, ciaddr="10.99.0.161"),                        # REBINDING, the site's lease
    ]
    replies = exchange(client, strangers, ("255.255.255.255", 67), wait=2)
    assert [p for p, _ in replies if p.chaddr[:6] == STRANGER] == []
    # RENEWING: unicast to us, from the stranger's own address
    client.run("ip", "addr", "add", "10.99.0.162/24", "dev", "eth0")
    assert exchange(client, [request(5, ciaddr="10.99.0.162")], ("10.99.0.1", 67), wait=2) == []
    client.run("ip", "addr", "flush", "dev", "eth0")
    silent = [e for e in svc.of("DhcpIgnored", msg_type="REQUEST") if "not ours" in e["reason"]]
    assert len(silent) == 5, silent
    assert not svc.of("DhcpPacket", direction="out", msg_type="NAK")

    # The stranger asking for the client's address: we have no record of the stranger, so
    # RFC 2131 4.3.2 wants silence here too (and nothing is bound for it).
    assert exchange(client, [request(6, requested=ours)], ("255.255.255.255", 67), wait=2) == []
    assert "no record" in svc.of("DhcpIgnored", msg_type="REQUEST")[-1]["reason"]
    # An address of ours is still ours to defend: once we know the stranger (it DISCOVERed and
    # holds an offer), its INIT-REBOOT for the client's address gets a NAK.
    discover = Packet(xid=7, flags=BROADCAST_FLAG, chaddr=STRANGER, options={o.MSG_TYPE: bytes((o.DISCOVER,))})
    (offer, _), = exchange(client, [discover], ("255.255.255.255", 67), expect=1)
    assert o.msg_type(offer) == o.OFFER and offer.yiaddr != socket.inet_aton(ours)
    (nak, _), = exchange(client, [request(8, requested=ours)], ("255.255.255.255", 67), expect=1)
    assert o.msg_type(nak) == o.NAK and nak.chaddr[:6] == STRANGER
    # and the real client is still served
    r = client.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", str(script),
                   "-t", "5", "-T", "1", timeout=30, check=False)
    assert r.returncode == 0 and bound_address(log) == ours
