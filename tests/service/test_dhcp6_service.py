"""The DHCPv6 service (issue 17.1, docs/IPV6.md) in a server namespace with fd99::1/64 on eth0:
a real DHCPv6 client (ISC dhclient -6) gets an address from the pool and the events show it;
a PXE Solicit built by scapy (arch 7, vendor class PXEClient) gets option 59
`tftp://[fd99::1]/...`; and the client namespace hears our router advertisement (M and O
flags, router lifetime 0, the /64 on-link)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import Netns, require_tool, wait_for
from services import ServiceProc, base_config, collect, served_roots

from pxetui.config import Config
from pxetui.control import is_live, socket_path

pytestmark = pytest.mark.root

V6 = "fd99::1"
CLIENT_MAC = "52:54:00:aa:bb:66"

DHCLIENT_SCRIPT = """#!/bin/sh
echo "$reason $new_ip6_address" >> "{log}"
"""

# Run in the client namespace: a PXE Solicit as OVMF sends it, built and read by scapy (an
# independent codec), to ff02::1:2 from port 546; prints what the answer carried.
PXE_CLIENT = r"""
import json, socket, sys
from scapy.layers.dhcp6 import (DHCP6, DHCP6_Solicit, DHCP6OptClientArchType, DHCP6OptClientId,
    DHCP6OptElapsedTime, DHCP6OptIA_NA, DHCP6OptOptReq, DHCP6OptVendorClass, DUID_LL,
    DHCP6OptBootFileUrl, DHCP6OptServerId, DHCP6OptIAAddress, VENDOR_CLASS_DATA)
from scapy.layers.dhcp6 import DHCP6OptVendorClass as VC
mac = sys.argv[1]
vc, arch = (sys.argv[2].encode(), int(sys.argv[3])) if len(sys.argv) > 3 else (b"PXEClient:Arch:00007:UNDI:003016", 7)
sol = (DHCP6_Solicit(trid=0x4242)
       / DHCP6OptClientId(duid=DUID_LL(lladdr=mac))
       / DHCP6OptIA_NA(iaid=7)
       / DHCP6OptOptReq(reqopts=[59, 60])
       / DHCP6OptElapsedTime()
       / DHCP6OptVendorClass(enterprisenum=343,
                             vcdata=[VENDOR_CLASS_DATA(data=vc)])
       / DHCP6OptClientArchType(archtypes=[arch]))
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.bind(("::", 546))
s.settimeout(2)
idx = socket.if_nametoindex("eth0")
for _ in range(5):  # bounded: RFC 8415 retransmits; the service may still be binding
    s.sendto(bytes(sol), ("ff02::1:2", 547, 0, idx))
    try:
        data, src = s.recvfrom(4096)
    except socket.timeout:
        continue
    m = DHCP6(data)
    url = m[DHCP6OptBootFileUrl].optdata.decode() if DHCP6OptBootFileUrl in m else None
    addr = m[DHCP6OptIAAddress].addr if DHCP6OptIAAddress in m else None
    echo = ([m[VC].enterprisenum] + [d.data.decode() for d in m[VC].vcdata]) if VC in m else None
    print(json.dumps({"type": m.msgtype, "trid": m.trid, "url": url, "addr": addr, "vc": echo,
                      "server_id": DHCP6OptServerId in m, "src": src[0]}))
    break
"""

# Run in the client namespace: the first router advertisement heard on eth0 (bounded).
RA_SNIFFER = r"""
import json, sys
from scapy.all import sniff
from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, IPv6
got = sniff(iface="eth0", lfilter=lambda p: ICMPv6ND_RA in p, count=1, timeout=float(sys.argv[1]))
if got:
    p = got[0]
    ra, pio = p[ICMPv6ND_RA], p[ICMPv6NDOptPrefixInfo]
    print(json.dumps({"src": p[IPv6].src, "hlim": p[IPv6].hlim, "M": ra.M, "O": ra.O,
                      "lifetime": ra.routerlifetime, "prefix": pio.prefix, "plen": pio.prefixlen,
                      "L": pio.L, "A": pio.A}))
"""


def link_local_ready(ns: Netns) -> None:
    """A DHCPv6 client sends from its link-local address: wait until DAD made it usable."""
    def ready() -> bool:
        out = ns.run("ip", "-6", "addr", "show", "dev", "eth0", "scope", "link").stdout
        return "fe80" in out and "tentative" not in out
    wait_for(ready, timeout=15, what="the client's link-local address")


def dhclient6(client: Netns, tmp_path: Path) -> str:
    """ISC dhclient -6 in the foreground (stopped by PID with the namespace): its address."""
    require_tool("dhclient", package="isc-dhcp-client")
    log, script, conf = tmp_path / "dhclient.log", tmp_path / "dhclient.sh", tmp_path / "dhclient6.conf"
    script.write_text(DHCLIENT_SCRIPT.format(log=log))
    script.chmod(0o755)
    conf.write_text("timeout 30;\n")
    client.popen("dhclient", "-6", "-d", "-1", "-v", "-cf", str(conf), "-lf", str(tmp_path / "d6.leases"),
                 "-pf", str(tmp_path / "d6.pid"), "-sf", str(script), "eth0", log=tmp_path / "dhclient.out")
    wait_for(lambda: log.exists() and "BOUND6 " in log.read_text(), timeout=40, what="a DHCPv6 lease")
    return log.read_text().split("BOUND6 ", 1)[1].split()[0]


# Run in the client namespace: another router on the segment, one RA a second for N seconds.
OTHER_ROUTER = r"""
import sys, time
from scapy.all import Ether, sendp
from scapy.layers.inet6 import IPv6, ICMPv6ND_RA, ICMPv6NDOptPrefixInfo
src, seconds = sys.argv[1], float(sys.argv[2])
ra = (Ether(dst="33:33:00:00:00:01") / IPv6(src=src, dst="ff02::1", hlim=255)
      / ICMPv6ND_RA(routerlifetime=1800) / ICMPv6NDOptPrefixInfo(prefix="2001:db8:7::", prefixlen=64, A=0))
end = time.monotonic() + seconds
while time.monotonic() < end:
    sendp(ra, iface="eth0", verbose=False)
    time.sleep(1)
"""

# Run in the client namespace: how many RAs from a source arrive within N seconds.
RA_COUNTER = r"""
import sys
from scapy.all import sniff
from scapy.layers.inet6 import ICMPv6ND_RA, IPv6
src, seconds = sys.argv[1], float(sys.argv[2])
print(len(sniff(iface="eth0", lfilter=lambda p: ICMPv6ND_RA in p and p[IPv6].src == src, timeout=seconds)))
"""


def link_local(ns: Netns) -> str:
    out = ns.run("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link").stdout
    return out.split("inet6 ", 1)[1].split("/", 1)[0]


@pytest.fixture
def dhcp6(netns, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Netns, Netns, ServiceProc]]:
    server, client = netns.pair()
    server.run("ip", "-6", "addr", "add", f"{V6}/64", "dev", "eth0", "nodad")
    client.run("ip", "link", "set", "eth0", "address", CLIENT_MAC)
    tftp_root = tmp_path / "tftp"
    tftp_root.mkdir()
    (tftp_root / "grubnetx64.efi").write_bytes(b"loader")
    cfg = base_config(tmp_path, tftp={"root": str(tftp_root)},
                      ipv6={"enabled": True, "router_advertisements": "auto",
                            "mode": getattr(request, "param", "full")})
    cfg.server_ip6, cfg.prefix6, cfg.ipv6.range = V6, "fd99::/64", "fd99::1000-fd99::1fff"
    link_local_ready(client)
    svc = ServiceProc(server, "dhcp6", cfg, tmp_path)
    try:
        svc.wait_running()
        yield server, client, svc
    finally:
        svc.stop()


def test_dhclient_gets_an_address_and_the_events_show_it(dhcp6, tmp_path: Path) -> None:
    server, client, svc = dhcp6
    got = dhclient6(client, tmp_path)
    assert ipaddress.IPv6Address(got) in ipaddress.IPv6Network("fd99::/64")
    assert 0x1000 <= int(ipaddress.IPv6Address(got)) & 0xFFFF <= 0x1FFF  # from the pool
    granted = svc.wait_event("LeaseGranted", ip=got)
    assert granted["server_ip"] == V6 and granted["mac"] == CLIENT_MAC  # DUID-LLT carries the MAC
    kinds = [(e["direction"], e["msg_type"]) for e in svc.of("DhcpPacket")]
    assert ("in", "SOLICIT") in kinds and ("out", "REPLY") in kinds
    assert any(e["yiaddr"] == got for e in svc.of("DhcpPacket", direction="out", msg_type="REPLY"))
    # the binding is on disk before the Reply: a new service process restores and announces it
    svc.stop()
    cfg_file = tmp_path / "dhcp6-config.json"
    (tmp_path / "again").mkdir()
    again = ServiceProc(server, "dhcp6", Config.from_json(cfg_file.read_text()), tmp_path / "again")
    try:
        restored = again.wait_event("LeaseGranted", timeout=15, ip=got)
        assert restored["mac"] == CLIENT_MAC and restored["expires"] == granted["expires"]
    finally:
        again.stop()


def test_pxe_solicit_gets_a_tftp_url_and_the_client_hears_our_ra(dhcp6, tmp_path: Path) -> None:
    _, client, svc = dhcp6
    (tmp_path / "pxe.py").write_text(PXE_CLIENT)
    (tmp_path / "ra.py").write_text(RA_SNIFFER)
    sniffer = client.popen(sys.executable, str(tmp_path / "ra.py"), "25", stdout=-1)
    r = client.run(sys.executable, str(tmp_path / "pxe.py"), CLIENT_MAC, timeout=60)
    answer = json.loads(r.stdout)
    assert answer["type"] == 2 and answer["trid"] == 0x4242 and answer["server_id"]  # ADVERTISE
    assert answer["url"] == f"tftp://[{V6}]/grubnetx64.efi" and answer["vc"] is None
    assert ipaddress.IPv6Address(answer["addr"]) in ipaddress.IPv6Network("fd99::/64")
    assert answer["src"].startswith("fe80:")  # answered from our link-local address
    decision = svc.wait_event("BootDecision", mac=CLIENT_MAC)
    assert decision["boot_file"] == answer["url"] and decision["arch"] == 7
    out = svc.wait_event("DhcpPacket", direction="out", msg_type="ADVERTISE")
    assert out["boot_file"] == answer["url"] and out["port"] == 547

    stdout, _ = sniffer.communicate(timeout=40)
    ra = json.loads(stdout)
    assert ra["src"].startswith("fe80:") and ra["hlim"] == 255
    assert (ra["M"], ra["O"], ra["lifetime"]) == (1, 1, 0)  # DHCPv6, and not a default router
    assert (ra["prefix"], ra["plen"], ra["L"], ra["A"]) == ("fd99::", 64, 1, 0)


def test_serve_ipv6_runs_dhcp6_beside_dhcp_and_the_engine_shows_the_lease(netns, tmp_path: Path) -> None:
    """`pxetui serve --ipv6`: the supervisor starts dhcp6 beside dhcp, and a UI attached to
    the control socket sees the DHCPv6 lease of a real client."""
    server, client = netns.pair()
    server.run("ip", "-6", "addr", "add", f"{V6}/64", "dev", "eth0", "nodad")
    client.run("ip", "link", "set", "eth0", "address", CLIENT_MAC)
    tftp_root, http_root, state = served_roots(tmp_path, b"loader", b"kernel")
    server.popen(sys.executable, "-m", "pxetui", "serve", "--interface", "eth0", "--dhcp", "full", "--ipv6",
                 "--state-dir", str(state), "--tftp-root", str(tftp_root), "--http-root", str(http_root),
                 log=tmp_path / "serve.log")
    sock = socket_path(state)
    wait_for(lambda: is_live(sock), timeout=20, what="the control socket")

    def running(evs: list[dict]) -> bool:
        return any(e.get("type") == "ServiceState" and e.get("service") == "dhcp6" and e.get("state") == "running"
                   for e in evs)
    evs = asyncio.run(collect(sock, running, timeout=30))
    (up,) = [e for e in evs if e.get("type") == "ServiceState" and e.get("service") == "dhcp6"
             and e.get("state") == "running"][-1:]
    assert up["ports"] == [547]
    # it dropped root after binding 547 and opening the raw ICMPv6 socket (docs/SECURITY.md)
    status = dict(line.split(":", 1) for line in Path(f"/proc/{up['pid']}/status").read_text().splitlines())
    assert status["Uid"].split()[0] != "0" and int(status["CapEff"], 16) == 0
    assert int(status["CapPrm"], 16) == 0 and status["NoNewPrivs"].strip() == "1"
    link_local_ready(client)
    got = dhclient6(client, tmp_path)

    def leased(evs: list[dict]) -> bool:
        return any(e.get("type") == "LeaseGranted" and e.get("ip") == got for e in evs)
    evs = asyncio.run(collect(sock, leased, timeout=20))
    lease = [e for e in evs if e.get("type") == "LeaseGranted" and e.get("ip") == got][0]
    assert lease["mac"] == CLIENT_MAC and lease["server_ip"] == V6


def test_auto_router_advertisements_stop_while_another_router_advertises(dhcp6, tmp_path: Path) -> None:
    server, client, svc = dhcp6
    (tmp_path / "router.py").write_text(OTHER_ROUTER)
    (tmp_path / "count.py").write_text(RA_COUNTER)
    client.popen(sys.executable, str(tmp_path / "router.py"), link_local(client), "30")
    note = wait_for(lambda: [e for e in svc.of("Log") if "advertises on eth0: pxetui sends no" in e["message"]],
                    timeout=15, what="the service noticing the other router")
    assert link_local(client) in note[0]["message"]
    # longer than RA_INTERVAL: an advertiser that had not stopped would be heard here
    r = client.run(sys.executable, str(tmp_path / "count.py"), link_local(server), "13", timeout=40)
    assert int(r.stdout) == 0


@pytest.mark.parametrize("dhcp6", ["proxy"], indirect=True)
def test_proxy_mode_answers_the_pxe_solicit_with_the_url_and_no_address(dhcp6, tmp_path: Path) -> None:
    _, client, svc = dhcp6
    (tmp_path / "pxe.py").write_text(PXE_CLIENT)
    answer = json.loads(client.run(sys.executable, str(tmp_path / "pxe.py"), CLIENT_MAC, timeout=60).stdout)
    assert answer["type"] == 2 and answer["url"] == f"tftp://[{V6}]/grubnetx64.efi"
    assert answer["addr"] is None  # the IA_NA says NoAddrsAvail: addresses are the site server's
    assert not svc.of("LeaseGranted")


def test_uefi_http_boot_solicit_gets_an_http_url_and_the_httpclient_echo(dhcp6, tmp_path: Path) -> None:
    _, client, _svc = dhcp6
    (tmp_path / "pxe.py").write_text(PXE_CLIENT)
    r = client.run(sys.executable, str(tmp_path / "pxe.py"), CLIENT_MAC, "HTTPClient:Arch:00016:UNDI:003001",
                   "16", timeout=60)
    answer = json.loads(r.stdout)
    assert answer["type"] == 2 and answer["url"].startswith(f"http://[{V6}]/")
    assert answer["vc"] == [343, "HTTPClient"]  # docs/IPV6.md: OVMF cancels the boot without it


def test_full_mode_steps_back_to_proxy_beside_another_dhcpv6_server(netns, tmp_path: Path) -> None:
    """A site DHCPv6 server (dnsmasq) already hands out addresses: pxetui's probe hears its
    Advertise, says so, and from then on answers only boot clients, without addresses."""
    require_tool("dnsmasq", package="dnsmasq-base")
    ours, site, client = netns.lan("10.99.0.1/24", "10.99.0.2/24", None)
    ours.run("ip", "-6", "addr", "add", f"{V6}/64", "dev", "eth0", "nodad")
    site.run("ip", "-6", "addr", "add", "fd99::2/64", "dev", "eth0", "nodad")
    client.run("ip", "link", "set", "eth0", "address", CLIENT_MAC)
    link_local_ready(site)  # else dnsmasq answers from fd99::2 (RFC 6724: no usable link-local yet)
    site.popen("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
               "--bind-interfaces", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
               f"--dhcp-leasefile={tmp_path / 'dnsmasq.leases'}", "--dhcp-range=fd99::100,fd99::1ff,64,10m",
               log=tmp_path / "dnsmasq.log")
    wait_for(lambda: site.run("ss", "-ulnH", "sport", "= :547", check=False).stdout.strip(),
             timeout=10, what="dnsmasq listening on port 547")
    link_local_ready(ours)
    tftp_root = tmp_path / "tftp"
    tftp_root.mkdir()
    (tftp_root / "grubnetx64.efi").write_bytes(b"loader")
    cfg = base_config(tmp_path, tftp={"root": str(tftp_root)}, dhcp={"probe_seconds": 2},
                      ipv6={"enabled": True, "mode": "full", "router_advertisements": "off"})
    cfg.server_ip6, cfg.prefix6, cfg.ipv6.range = V6, "fd99::/64", "fd99::1000-fd99::1fff"
    svc = ServiceProc(ours, "dhcp6", cfg, tmp_path)
    try:
        svc.wait_running(timeout=20)
        alert = svc.wait_event("Alert")
        assert alert["key"].startswith(("foreign-dhcp6:fe80:", "foreign-dhcp6:fd99::2")), alert
        assert "proxy mode" in alert["message"], alert
        foreign = svc.wait_event("ForeignDhcpServer")
        assert ipaddress.IPv6Address(foreign["offered"]) in ipaddress.IPv6Network("fd99::/64")
        link_local_ready(client)
        (tmp_path / "pxe.py").write_text(PXE_CLIENT)
        client.run(sys.executable, str(tmp_path / "pxe.py"), CLIENT_MAC, timeout=60)  # dnsmasq may answer first
        out = svc.wait_event("DhcpPacket", direction="out", msg_type="ADVERTISE")
        assert out["boot_file"] == f"tftp://[{V6}]/grubnetx64.efi" and out["yiaddr"] is None
        assert not svc.of("LeaseGranted")
    finally:
        svc.stop()
