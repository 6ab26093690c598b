"""Full mode beside a DHCP server that appears after start (docs/SECURITY.md): pxetui hears it
(re-probe from a made-up MAC, and other servers' replies on port 68), stops handing out
addresses, says so, and goes on adding boot information as proxyDHCP."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from dhcp_rig import exchange, write_script
from netns import require_tool, wait_for
from services import ServiceProc, base_config
from test_dhcp_proxy import DATA, SITE_RANGE, boot_root, site_dnsmasq

from pxetui.dhcp import options as o
from pxetui.dhcp.codec import BROADCAST_FLAG, Packet, parse

pytestmark = pytest.mark.root
US, SITE = socket.inet_aton("10.99.0.1"), socket.inet_aton("10.99.0.2")


def plain_discover(mac: str, xid: int) -> Packet:
    return Packet(xid=xid, flags=BROADCAST_FLAG, chaddr=bytes.fromhex(mac.replace(":", "")),
                  options={o.MSG_TYPE: bytes((o.DISCOVER,))})


def test_full_mode_turns_proxy_when_another_server_appears(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    ours, site, client = netns.lan("10.99.0.1/24", "10.99.0.2/24", None)
    boot_root(tmp_path)
    cfg = base_config(tmp_path, dhcp={"mode": "auto", "probe_seconds": 1, "recheck_seconds": 2,
                                      "range": "10.99.0.100-10.99.0.149"})
    svc = ServiceProc(ours, "dhcp", cfg, tmp_path)
    assert svc.wait_event("DhcpModeDecided", timeout=20)["mode"] == "full"
    assert svc.wait_running()["ports"] == [67, 68, 4011]
    # alone on the segment: we hand out addresses
    (offer, _), = exchange(client, [plain_discover("52:54:00:cc:00:01", 1)], ("255.255.255.255", 67),
                           expect=1)
    assert offer.options[o.SERVER_ID] == US and offer.ip("yiaddr").startswith("10.99.0.1")

    site_dnsmasq(site, tmp_path, f"--dhcp-range={SITE_RANGE}", "--no-ping")
    decided = svc.wait_event("DhcpModeDecided", timeout=30, mode="proxy")
    assert decided["other_server"] == "10.99.0.2" and "stopped handing out addresses" in decided["reason"]
    alert = svc.wait_event("Alert", key="foreign-dhcp:10.99.0.2")
    assert alert["severity"] == "error"
    svc.wait_event("ServiceState", state="running", ports=[67, 4011])  # port 68 let go
    switched_at = decided["ts"]

    # A PXE client: its address from the site's server, its boot file from us.
    ovmf = parse((DATA / "ovmf_pxe_discover.bin").read_bytes())
    replies = exchange(client, [ovmf], ("255.255.255.255", 67), expect=2, wait=6)
    by_server = {r.options[o.SERVER_ID]: r for r, _ in replies}
    assert by_server[SITE].ip("yiaddr").startswith("10.99.0.1")
    assert by_server[US].ip("yiaddr") == "0.0.0.0" and by_server[US].file == b"ipxe.efi"
    # A plain client (busybox udhcpc) leases from the site's server only.
    log = tmp_path / "udhcpc.log"
    script = write_script(tmp_path / "u.sh", f'echo "$1 $ip $serverid" >> "{log}"\n')
    r = client.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", str(script),
                   "-t", "5", "-T", "1", timeout=30, check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    bound = log.read_text().split("bound ", 1)[1].split()
    assert bound[1] == "10.99.0.2" and 150 <= int(bound[0].rsplit(".", 1)[1]) <= 199
    wait_for(lambda: svc.of("DhcpIgnored", reason="not a PXE client (proxy mode)"), timeout=5,
             what="the plain client ignored")
    # Not one address offered by us since the switch.
    late = [e for e in svc.of("DhcpPacket", direction="out") if e["ts"] >= switched_at]
    assert late and all(e["yiaddr"] is None for e in late), late
    assert not [e for e in svc.of("LeaseGranted") if e["ts"] >= switched_at]


def test_a_foreign_offer_heard_on_port_68_is_enough(netns, tmp_path: Path) -> None:
    """No re-probe (recheck_seconds = 0): another server's broadcast OFFER to a client is heard."""
    ours, site, client = netns.lan("10.99.0.1/24", "10.99.0.2/24", None)
    cfg = base_config(tmp_path, dhcp={"mode": "full", "probe_seconds": 0, "recheck_seconds": 0,
                                      "range": "10.99.0.100-10.99.0.149"})
    svc = ServiceProc(ours, "dhcp", cfg, tmp_path)
    svc.wait_running()
    site_dnsmasq(site, tmp_path, f"--dhcp-range={SITE_RANGE}", "--no-ping")
    replies = exchange(client, [plain_discover("52:54:00:cc:00:02", 2)], ("255.255.255.255", 67),
                       expect=2, wait=6)
    assert {r.options[o.SERVER_ID] for r, _ in replies} == {US, SITE}  # both answered this one
    decided = svc.wait_event("DhcpModeDecided", timeout=10, mode="proxy")
    assert decided["other_server"] == "10.99.0.2"
    assert "OFFER of 10.99.0.1" in decided["reason"]
    after = exchange(client, [plain_discover("52:54:00:cc:00:03", 3)], ("255.255.255.255", 67),
                     expect=2, wait=3)
    assert [r.options[o.SERVER_ID] for r, _ in after] == [SITE]  # we no longer offer addresses
