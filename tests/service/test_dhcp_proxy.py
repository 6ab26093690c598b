"""proxyDHCP beside a site DHCP server (dnsmasq) on one bridged segment, auto mode's probe,
and a relayed client served from the relay's pool."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from dhcp_rig import exchange, write_script
from netns import require_tool, wait_for
from services import ServiceProc, base_config

from pxetui.dhcp import options as o
from pxetui.dhcp.codec import BROADCAST_FLAG, Packet, parse

pytestmark = pytest.mark.root
DATA = Path(__file__).resolve().parent.parent / "data" / "dhcp"
SITE_RANGE = "10.99.0.150,10.99.0.199,1h"


def site_dnsmasq(ns, tmp_path: Path, *extra: str, iface: str = "eth0"):  # type: ignore[no-untyped-def]
    """dnsmasq as the site's DHCP server (or relay), returned once it listens on port 67."""
    require_tool("dnsmasq", package="dnsmasq-base")
    proc = ns.popen("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                    f"--pid-file={tmp_path / 'dnsmasq.pid'}", f"--dhcp-leasefile={tmp_path / 'dnsmasq.leases'}",
                    f"--interface={iface}", "--bind-interfaces", *extra, log=tmp_path / "dnsmasq.log")
    wait_for(lambda: ns.run("ss", "-ulnH", "sport", "= :67", check=False).stdout.strip(),
             timeout=10, what="dnsmasq listening on port 67")
    return proc


def boot_root(tmp_path: Path) -> Path:
    root = tmp_path / "state" / "tftp"
    root.mkdir(parents=True)
    for name in ("pxelinux.0", "grubx64.efi", "ipxe.efi"):
        (root / name).write_bytes(b"boot")
    return root


def test_proxy_beside_site_server(netns, tmp_path: Path) -> None:
    ours, site, client = netns.lan("10.99.0.1/24", "10.99.0.2/24", None)
    # --no-ping: dnsmasq would otherwise hold each offer ~3 s while it checks the address
    # (the probe waits for such late answers, see probe.LATE_ANSWER)
    site_dnsmasq(site, tmp_path, f"--dhcp-range={SITE_RANGE}", "--no-ping")
    boot_root(tmp_path)
    svc = ServiceProc(ours, "dhcp", base_config(tmp_path, dhcp={"mode": "auto", "probe_seconds": 1}),
                      tmp_path)
    decided = svc.wait_event("DhcpModeDecided", timeout=20)
    assert decided["mode"] == "proxy" and decided["other_server"] == "10.99.0.2", decided
    assert svc.wait_event("ForeignDhcpServer")["server_ip"] == "10.99.0.2"
    assert svc.wait_running()["ports"] == [67, 4011]

    # OVMF native PXE (captured packet): the site offers an address, we offer boot information.
    ovmf = parse((DATA / "ovmf_pxe_discover.bin").read_bytes())
    replies = exchange(client, [ovmf], ("255.255.255.255", 67), expect=2, wait=6)
    by_server = {r.options[o.SERVER_ID]: r for r, _ in replies}
    site_offer = by_server[socket.inet_aton("10.99.0.2")]
    proxy_offer = by_server[socket.inet_aton("10.99.0.1")]
    assert site_offer.ip("yiaddr").startswith("10.99.0.1")
    assert proxy_offer.ip("yiaddr") == "0.0.0.0" and proxy_offer.ip("siaddr") == "10.99.0.1"
    assert proxy_offer.options[o.VENDOR_CLASS] == b"PXEClient"
    assert proxy_offer.file == b"ipxe.efi"  # docs/FIELD-NOTES.md: prefer iPXE for UEFI under proxyDHCP
    assert proxy_offer.options[o.CLIENT_UUID] == ovmf.options[o.CLIENT_UUID]

    # ... then, with the site's address, asks our port 4011 from its own port 4011.
    client.run("ip", "addr", "add", site_offer.ip("yiaddr") + "/24", "dev", "eth0")
    req = Packet(xid=ovmf.xid + 1, chaddr=ovmf.chaddr, ciaddr=site_offer.yiaddr, options={
        o.MSG_TYPE: b"\x03", o.CLIENT_ARCH: ovmf.options[o.CLIENT_ARCH],
        o.VENDOR_CLASS: ovmf.options[o.VENDOR_CLASS], o.CLIENT_UUID: ovmf.options[o.CLIENT_UUID]})
    (ack, src), = exchange(client, [req], ("10.99.0.1", 4011), sport=4011, expect=1)
    assert src == ("10.99.0.1", 4011) and o.msg_type(ack) == o.ACK and ack.file == b"ipxe.efi"

    # A BIOS PXE ROM: option 43 boot menu in the offer, then xid 0 + 43/71 to port 4011 from 68.
    bios = Packet(xid=0x1234, chaddr=bytes.fromhex("525400cc0001"), options={
        o.MSG_TYPE: b"\x01", o.CLIENT_ARCH: b"\x00\x00",
        o.VENDOR_CLASS: b"PXEClient:Arch:00000:UNDI:002001"})
    replies = exchange(client, [bios], ("255.255.255.255", 67), expect=2, wait=6)
    proxy_offer = next(r for r, _ in replies if r.options[o.SERVER_ID] == socket.inet_aton("10.99.0.1"))
    subs = o.suboptions(proxy_offer.options[o.VENDOR_SPECIFIC])
    assert subs[o.PXE_DISCOVERY_CONTROL] == b"\x03" and subs[o.PXE_BOOT_SERVERS][3:] == socket.inet_aton("10.99.0.1")
    item = b"\x80\x00\x00\x00"
    req = Packet(xid=0, chaddr=bios.chaddr, ciaddr=site_offer.yiaddr, options={
        o.MSG_TYPE: b"\x03", o.CLIENT_ARCH: b"\x00\x00", o.VENDOR_CLASS: bios.options[o.VENDOR_CLASS],
        o.VENDOR_SPECIFIC: o.encode_suboptions({o.PXE_BOOT_ITEM: item}, end=True)})
    (ack, src), = exchange(client, [req], ("10.99.0.1", 4011), sport=68, expect=1)
    assert src == ("10.99.0.1", 4011) and ack.xid == 0 and ack.file == b"pxelinux.0"
    assert o.suboptions(ack.options[o.VENDOR_SPECIFIC])[o.PXE_BOOT_ITEM] == item

    # A plain client gets only the site's offer; we say why we kept quiet.
    plain = parse((DATA / "udhcpc_discover.bin").read_bytes())
    plain.flags = BROADCAST_FLAG  # so that the site's offer reaches our listening socket
    replies = exchange(client, [plain], ("255.255.255.255", 67), wait=1.5)
    assert {r.options[o.SERVER_ID] for r, _ in replies} == {socket.inet_aton("10.99.0.2")}
    wait_for(lambda: svc.of("DhcpIgnored", reason="not a PXE client (proxy mode)"), timeout=5,
             what="ignored event")


def test_auto_mode_picks_full_when_alone(netns, tmp_path: Path) -> None:
    server, client = netns.pair()
    svc = ServiceProc(server, "dhcp", base_config(tmp_path, dhcp={"mode": "auto", "probe_seconds": 1}),
                      tmp_path)
    decided = svc.wait_event("DhcpModeDecided", timeout=15)
    assert decided["mode"] == "full" and decided["other_server"] is None
    assert svc.wait_running()["ports"] == [67, 68, 4011]  # 68: listening for other servers
    assert not svc.of("ForeignDhcpServer")


def test_forced_full_refuses_beside_another_server(netns, tmp_path: Path) -> None:
    ours, site = netns.lan("10.99.0.1/24", "10.99.0.2/24")
    site_dnsmasq(site, tmp_path, f"--dhcp-range={SITE_RANGE}", "--no-ping")
    svc = ServiceProc(ours, "dhcp", base_config(tmp_path, dhcp={"mode": "full", "probe_seconds": 1}),
                      tmp_path)
    decided = svc.wait_event("DhcpModeDecided", timeout=20)
    assert decided["mode"] == "off" and "refusing" in decided["reason"]
    assert svc.wait_running()["ports"] == []


def test_relayed_client_gets_an_address_from_the_relay_pool(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    server, router = netns.pair(server_addr="10.99.0.1/24", client_addr="10.99.0.254/24")
    client = netns.new("pxc")
    netns.link(router, client, "10.98.0.1/24", None, a_if="eth1")
    router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    server.run("ip", "route", "add", "10.98.0.0/24", "via", "10.99.0.254")
    site_dnsmasq(router, tmp_path, "--dhcp-relay=10.98.0.1,10.99.0.1", iface="eth1")
    cfg = base_config(tmp_path, dhcp={"mode": "full", "probe_seconds": 0, "relay_pools": [
        {"subnet": "10.98.0.0/24", "range": "10.98.0.100-10.98.0.120", "router": "10.98.0.1"}]})
    svc = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc.wait_running()
    log = tmp_path / "udhcpc.log"
    script = write_script(tmp_path / "u.sh", f'echo "$1 $ip $router" >> "{log}"\n')
    r = client.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", str(script),
                   "-t", "5", "-T", "1", timeout=30, check=False)
    assert r.returncode == 0, (r.stdout, r.stderr, (tmp_path / "dnsmasq.log").read_text())
    bound = log.read_text().split("bound ", 1)[1].split()
    assert bound[0].startswith("10.98.0.1") and bound[1] == "10.98.0.1"
    granted = svc.wait_event("LeaseGranted", ip=bound[0])
    assert granted["ours"]
    offer = svc.wait_event("DhcpPacket", direction="out", msg_type="OFFER")
    assert offer["ip"] == "10.98.0.1" and offer["port"] == 67  # to the relay, on port 67


def test_auto_mode_falls_back_to_proxy_when_it_cannot_probe(netns, tmp_path: Path) -> None:
    server, client = netns.pair()
    # something else holds port 68 on the server (a DHCP client on the same interface)
    holder = server.python("-c", "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                                 "s.bind(('0.0.0.0', 68)); print('bound', flush=True); time.sleep(60)",
                           stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"bound"
    svc = ServiceProc(server, "dhcp", base_config(tmp_path, dhcp={"mode": "auto", "probe_seconds": 1}),
                      tmp_path)
    decided = svc.wait_event("DhcpModeDecided", timeout=15)
    assert decided["mode"] == "proxy" and "could not probe" in decided["reason"]
    assert svc.wait_running()["ports"] == [67, 4011]
