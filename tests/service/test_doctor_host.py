"""`pxetui doctor --json` inside a namespace the test made, with real nftables and iptables rules
(they live in that namespace only), a real DHCP client, a foreign listener, strict rp_filter, a
peer without carrier and a small MTU; then the fix commands doctor prints, run as given, clear
the firewall findings."""

from __future__ import annotations

import json
import shlex
import sys

import pytest
from netns import require_tool, wait_for

pytestmark = pytest.mark.root


def doctor(ns, tmp_path, *extra: str) -> tuple[int, dict]:
    r = ns.run(sys.executable, "-m", "pxetui", "doctor", "--json", "--interface", "eth0", "--http-port", "8080",
               "--state-dir", str(tmp_path / "state"), *extra, check=False)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def problems(doc: dict, check: str) -> list[str]:
    return [f["problem"] for f in doc["findings"] if f["check"] == check]


def test_doctor_reads_real_firewall_rules_and_their_fixes_work(netns, tmp_path):
    require_tool("nft", "iptables", "iptables-save", package="nftables, iptables")
    server, _client = netns.pair()
    code, doc = doctor(server, tmp_path)
    assert code == 0 and doc["findings"] == [] and doc["ok"], doc
    assert set(doc["firewall_read"]) == {"nft", "iptables-save"}

    # nftables: DHCP and TFTP dropped on eth0; another table drops by policy and lets only
    # established traffic and TCP 80 in; a drop narrowed to one source address is not reported.
    for rule in ("add table inet t1",
                 "add chain inet t1 input { type filter hook input priority 0 ; policy accept ; }",
                 'add rule inet t1 input iifname "eth0" udp dport { 67, 69 } drop',
                 "add rule inet t1 input ip saddr 10.99.0.77 udp dport 68 drop",
                 "add table inet t2",
                 "add chain inet t2 input { type filter hook input priority 10 ; policy drop ; }",
                 "add rule inet t2 input ct state established,related accept",
                 "add rule inet t2 input udp dport { 67, 68, 69, 4011 } accept",
                 "add rule inet t2 input tcp dport 80 accept"):
        server.run("nft", *shlex.split(rule))
    # iptables (ufw's way of writing rules): a chain INPUT jumps to, rejecting proxyDHCP.
    server.run("iptables", "-N", "pxt-user-input")
    server.run("iptables", "-A", "INPUT", "-j", "pxt-user-input")
    server.run("iptables", "-A", "pxt-user-input", "-i", "eth0", "-p", "udp", "--dport", "4011", "-j", "REJECT")

    code, doc = doctor(server, tmp_path)
    assert code == 1 and not doc["ok"]
    blocked = problems(doc, "firewall")
    assert any(p.startswith("UDP port 67 ") and "a rule drops it (nft rule inet t1 input" in p for p in blocked)
    assert any(p.startswith("UDP port 69 ") and "drops" in p for p in blocked)
    assert any(p.startswith("UDP port 4011 ") and "rejects it (-A pxt-user-input" in p for p in blocked)
    assert any(p.startswith("TCP port 8080 ") and "policy of nft inet t2 input is drop" in p for p in blocked)
    assert not any(p.startswith(("UDP port 68 ", "TCP port 80 ")) for p in blocked), blocked

    for f in doc["findings"]:
        server.run(*shlex.split(f["fix"]))
    code, doc = doctor(server, tmp_path)
    assert problems(doc, "firewall") == [] and code == 0, doc


def test_doctor_finds_listener_dhcp_client_rp_filter_carrier_and_mtu(netns, tmp_path):
    require_tool("busybox", package="busybox-static")
    server, client = netns.pair()
    server.python("-c", "import socket, time\n"
                  "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 69))\n"
                  "time.sleep(60)")
    wait_for(lambda: ":69 " in server.run("ss", "-lun").stdout, timeout=10, what="the foreign TFTP socket")
    server.popen("busybox", "udhcpc", "-i", "eth0", "-f", "-t", "100", "-T", "1", "-s", "/bin/true")
    server.run("sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1")
    server.run("ip", "link", "set", "eth0", "mtu", "1400")
    client.run("ip", "link", "set", "eth0", "down")  # the far end gone: no carrier

    def found(doc: dict) -> set[str]:
        return {f["check"] for f in doc["findings"]}
    wait_for(lambda: "dhcp-client" in found(doctor(server, tmp_path)[1]), timeout=10, what="udhcpc seen")
    code, doc = doctor(server, tmp_path)
    assert code == 1
    assert any("UDP port 69 is held by python" in p for p in problems(doc, "listener")), doc
    assert any(p.startswith("udhcpc (PID ") and "on eth0" in p for p in problems(doc, "dhcp-client"))
    assert problems(doc, "rp_filter") and problems(doc, "carrier") == [
        "eth0 has no carrier: no cable, or the switch port is off"]
    mtu = [f for f in doc["findings"] if f["check"] == "mtu"]
    assert mtu and mtu[0]["severity"] == "warning" and "cut to 1368 bytes" in mtu[0]["problem"]
    fixes = {f["check"]: f["fix"] for f in doc["findings"]}
    assert fixes["rp_filter"] == "sysctl -w net.ipv4.conf.eth0.rp_filter=2"
    server.run(*shlex.split(fixes["rp_filter"]))
    client.run("ip", "link", "set", "eth0", "up")
    wait_for(lambda: "carrier" not in found(doctor(server, tmp_path)[1]), timeout=10, what="carrier back")
    assert "rp_filter" not in found(doctor(server, tmp_path)[1])
