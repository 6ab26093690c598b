"""Capture over IPv6 on a real wire, in namespaces: dnsmasq serves DHCPv6 (with `enable-ra` and
option 59) and TFTP over IPv6 to a client that asks like OVMF's PXE over IPv6
(dhcp6_pxe_client.py) and then fetches the boot URL with curl; `pxetui watch` shows the
router, the DHCPv6 lease, the TFTPv6 transfer and the client's timeline. And the capture
service beside an engine that serves IPv4 only says at once that a client asked over IPv6,
and after 10 s that nobody answered it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from netns import Netns, require_tool, wait_for
from services import ServiceProc, base_config

pytestmark = pytest.mark.root

CLIENT = Path(__file__).resolve().parent / "dhcp6_pxe_client.py"
SEND_RS = ("from scapy.all import Ether, IPv6, ICMPv6ND_RS, sendp; "
           "sendp(Ether(dst='33:33:00:00:00:02')/IPv6(dst='ff02::2', hlim=255)/ICMPv6ND_RS(),"
           " iface='eth0', verbose=False)")
LOADER = os.urandom(150_000)  # > 64 blocks of 512: a sampled ACK, and a short last block


def _no_tentative(ns: Netns) -> bool:
    out = ns.run("ip", "-6", "addr", "show", "dev", "eth0").stdout
    return "inet6 fe80" in out and "tentative" not in out


def v6_lab(netns, tmp_path: Path, dnsmasq: bool = True) -> tuple[Netns, Netns, str]:
    server, client = netns.pair()
    server.run("ip", "-6", "addr", "add", "fd99::1/64", "dev", "eth0", "nodad")
    if dnsmasq:
        require_tool("dnsmasq", package="dnsmasq-base")
        root = tmp_path / "tftp"
        root.mkdir()
        (root / "boot.0").write_bytes(LOADER)
        server.popen("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
                     "--bind-interfaces", "--dhcp-range=fd99::100,fd99::1ff,64,10m", "--enable-ra",
                     f"--dhcp-leasefile={tmp_path}/leases",
                     "--dhcp-option=option6:bootfile-url,tftp://[fd99::1]/boot.0",
                     "--enable-tftp", f"--tftp-root={root}", log=tmp_path / "dnsmasq.log")
    wait_for(lambda: _no_tentative(client) and _no_tentative(server), timeout=10, what="link-local DAD")
    mac = client.run("cat", "/sys/class/net/eth0/address").stdout.strip()
    return server, client, mac


def test_watch_follows_an_ipv6_pxe_boot(netns, tmp_path):
    require_tool("curl")
    server, client, mac = v6_lab(netns, tmp_path)
    out = tmp_path / "watch.out"
    proc = server.python("-m", "pxetui", "watch", "--interface", "eth0", "--duration", "40",
                         "--refresh", "0", "--stuck-seconds", "3", log=out)
    try:
        wait_for(lambda: out.exists() and "watching eth0" in out.read_text(), timeout=15, what="watch start")
        # dnsmasq's RAs at start may go before watch listens, and the next unsolicited one
        # comes minutes later: a Router Solicitation gets one now (RFC 4861 6.2.6).
        client.run(sys.executable, "-c", SEND_RS, timeout=30)
        wait_for(lambda: "IPv6 router" in out.read_text(), timeout=20, what="the router advertisement")
        got = client.run(sys.executable, str(CLIENT), "eth0", timeout=30).stdout.split()
        assert len(got) == 2, got
        address, url = got
        assert url == "tftp://[fd99::1]/boot.0" and address.startswith("fd99::1")
        client.run("ip", "-6", "addr", "add", f"{address}/64", "dev", "eth0", "nodad")
        client.run("curl", "-sS", "--max-time", "20", "-o", str(tmp_path / "got.0"), url, timeout=30)
        assert (tmp_path / "got.0").read_bytes() == LOADER
        wait_for(lambda: "diagnosis:" in out.read_text(), timeout=20, what="a diagnosis line")
    finally:
        server.stop(proc)  # SIGTERM: watch prints its final tables and exits
    text = out.read_text()
    assert re.search(r"router +IPv6 router fe80::[0-9a-f:]+ \([0-9a-f:]{17}\) advertises fd99::/64, M=1", text), text
    assert re.search(rf"lease +{mac} {re.escape(address)} from fe80::", text), text
    assert re.search(rf"transfer tftp {re.escape(address)} <- fd99::1 boot\.0", text), text
    assert "transfer boot.0 done (146.5 KiB)" in text, text
    assert f"Client {mac}  ip {address}  firmware uefi64" in text, text
    for stage in ("discover", "offer", "ack", "bootloader"):
        assert re.search(rf"\+ *[\d.]+s  {stage}", text), (stage, text)
    assert "file tftp://[fd99::1]/boot.0" in text


def test_capture_beside_an_ipv4_only_engine_says_the_client_asked_over_ipv6(netns, tmp_path):
    server, client, mac = v6_lab(netns, tmp_path, dnsmasq=False)
    # We serve this segment (TFTP on): our address is known, and ipv6.enabled is off.
    cfg = base_config(tmp_path, dhcp={"mode": "off"}, tftp={"enabled": True}, http={"enabled": False})
    cap = ServiceProc(server, "capture", cfg, tmp_path)
    try:
        cap.wait_running()
        client.run(sys.executable, str(CLIENT), "eth0", "--solicit-only", "2", timeout=30)
        alert = cap.wait_event("Alert", key="ipv6-not-served", timeout=15)
        sol = cap.wait_event("DhcpPacket", msg_type="SOLICIT", timeout=5)
        unanswered = cap.wait_event("Alert", key=f"unanswered6:{mac}", timeout=20)  # after 10 s
    finally:
        cap.stop()
    assert alert["mac"] == mac and "only IPv4 is served" in alert["message"] and "--ipv6" in alert["message"]
    assert sol["mac"] == mac and sol["arch"] == 7 and sol["direction"] == "wire" and sol["port"] == 547
    assert "2 DHCPv6 Solicit(s)" in unanswered["message"]
    # No address was handed out: no router advertisement is blamed (see test_capture_ipv6).
    assert not cap.of("Alert", key="ipv6-no-ra")
