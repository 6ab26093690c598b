"""The firewall model's conservative walk (pxetui/doctor/firewall.py) on rule sets as nft and
iptables-save print them, and the self-test's command built from an engine's command line."""

from __future__ import annotations

import pytest

from pxetui.doctor.engineargs import NoEngine, doctor_args
from pxetui.doctor.firewall import evaluate, parse_iptables, parse_nft


def nft(policy: str, *rules: list[dict], extra_chains: tuple[dict, ...] = ()) -> dict:
    items: list[dict] = [{"chain": {"family": "inet", "table": "f", "name": "input", "type": "filter",
                                    "hook": "input", "prio": 0, "policy": policy}}]
    items += [{"chain": c} for c in extra_chains]
    for i, r in enumerate(rules):
        chain = "input"
        if r and "chain" in r[0]:  # a leading {"chain": NAME}: the rule goes into that chain
            chain, r = r[0]["chain"], r[1:]
        items.append({"rule": {"family": "inet", "table": "f", "chain": chain, "handle": i + 2, "expr": r}})
    return {"nftables": items}


def dport(proto: str, right: object) -> dict:
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": right}}


IIF = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}
SADDR = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}}
CT_EST = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}


def blocked(chains, iface="eth0", http_port=80) -> list[str]:  # noqa: ANN001
    return [f.problem.split(" (")[0] for f in evaluate(chains, iface, http_port)]


def test_an_accepting_ruleset_has_no_finding():
    assert blocked(parse_nft(nft("accept"))) == []
    assert blocked(parse_nft(nft("drop", [dport("udp", {"set": [67, 68, 69, 4011]}), {"accept": None}],
                                 [dport("tcp", 80), {"accept": None}]))) == []


def test_drop_rules_by_port_set_range_and_interface():
    chains = parse_nft(nft("accept", [IIF, dport("udp", {"set": [67, {"range": [60, 70]}]}), {"drop": None}],
                           [dport("tcp", {"range": [80, 90]}), {"reject": {"type": "icmpx"}}]))
    assert blocked(chains) == ["UDP port 67", "UDP port 68", "UDP port 69", "TCP port 80"]
    assert blocked(chains, iface="eth1") == ["TCP port 80"]  # the udp drop is for eth0 only


def test_default_drop_is_not_opened_by_established_or_by_a_narrowed_drop():
    chains = parse_nft(nft("drop", [CT_EST, {"accept": None}], [SADDR, dport("tcp", 80), {"drop": None}]))
    assert blocked(chains) == ["UDP port 67", "UDP port 68", "UDP port 69", "UDP port 4011", "TCP port 80"]
    fixes = {f.fix for f in evaluate(chains, "eth0", 80)}
    assert 'nft insert rule inet f input iifname "eth0" udp dport 67 accept' in fixes


def test_a_narrowed_accept_ends_the_walk_without_a_finding_and_a_narrowed_drop_is_ignored():
    chains = parse_nft(nft("drop", [SADDR, {"accept": None}]))
    assert blocked(chains) == []
    chains = parse_nft(nft("accept", [SADDR, dport("udp", 67), {"drop": None}]))
    assert blocked(chains) == []


def test_jumps_are_followed_and_return_goes_back():
    sub = {"family": "inet", "table": "f", "name": "sub"}
    chains = parse_nft(nft("accept", [{"jump": {"target": "sub"}}],
                           [{"chain": "sub"}, dport("udp", 69), {"return": None}],
                           [{"chain": "sub"}, dport("udp", {"set": [69, 4011]}), {"drop": None}],
                           extra_chains=(sub,)))
    assert blocked(chains) == ["UDP port 4011"]


def test_iptables_save_with_ufw_style_chains_and_multiport():
    text = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:ufw-user-input - [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -j ufw-user-input
-A ufw-user-input -p tcp -m multiport --dports 22,80 -j ACCEPT
-A ufw-user-input -i eth0 -p udp -m udp --dport 67:69 -j ACCEPT
-A ufw-user-input -s 10.0.0.5/32 -p udp -m udp --dport 4011 -j ACCEPT
COMMIT
"""
    chains = parse_iptables(text)
    # 4011 is accepted for one source only: maybe, so not reported; 8080 meets the policy.
    found = evaluate(chains, "eth0", 8080, ufw=True)
    assert [f.problem.split(" (")[0] for f in found] == ["TCP port 8080"]
    assert found[0].fix == "ufw allow in on eth0 to any port 8080 proto tcp"
    assert "policy of iptables ip filter INPUT is drop" in found[0].problem


def test_iptables_log_and_negations():
    text = """*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 69 -j LOG --log-prefix "tftp "
-A INPUT ! -i lo -p udp -m udp --dport 67 -j DROP
-A INPUT -i eth+ -p udp -m udp --dport 69 -j REJECT --reject-with icmp-port-unreachable
COMMIT
"""
    found = evaluate(parse_iptables(text), "eth0", 80)
    assert [f.problem.split(" (")[0] for f in found] == ["UDP port 69"]  # the negated rule is not guessed
    assert found[0].fix == "iptables -I INPUT -i eth0 -p udp --dport 69 -j ACCEPT"


def test_self_test_command_from_an_engine_command_line():
    got = doctor_args(["/usr/bin/python3", "-m", "pxetui", "serve", "-v", "--interface", "eth0",
                       "--log-file", "/x.log", "--boot-file", "bios=pxelinux.0", "--log-file=/y"])
    assert got == ["doctor", "--self-test", "--json", "--interface", "eth0", "--boot-file", "bios=pxelinux.0"]
    got = doctor_args(["/opt/venv/bin/python", "/opt/venv/bin/pxetui", "-i", "eth1", "serve"])
    assert got == ["-i", "eth1", "doctor", "--self-test", "--json"]
    with pytest.raises(NoEngine, match="not `pxetui serve`"):
        doctor_args(["/usr/sbin/dnsmasq", "-k"])


def test_ipv6_probes_walk_the_ip6_and_inet_chains_only():
    from pxetui.doctor.firewall import V6_FAMILIES, probes6

    ruleset = {"nftables": [
        {"chain": {"family": "ip6", "table": "f6", "name": "input", "type": "filter", "hook": "input",
                   "policy": "drop"}},
        {"rule": {"family": "ip6", "table": "f6", "chain": "input", "handle": 2,
                  "expr": [dport("tcp", 80), {"accept": None}]}},
        {"chain": {"family": "ip", "table": "f4", "name": "input", "type": "filter", "hook": "input",
                   "policy": "drop"}},
    ]}
    v6 = parse_nft(ruleset, families=V6_FAMILIES)
    assert {c.family for c in v6} == {"ip6"}
    found = evaluate(v6, "eth0", 80, wanted=probes6(80))
    assert [f.problem.split(" is blocked")[0].split(":")[0] for f in found] == [
        "UDP port 547 (DHCPv6)", "UDP port 69 (TFTP over IPv6)", "ICMPv6 type 135 (neighbour solicitation",
        "ICMPv6 type 136 (neighbour advertisement"]
    assert 'nft insert rule ip6 f6 input iifname "eth0" udp dport 547 accept' in {f.fix for f in found}
    # the IPv4 walk sees the ip table's drop policy, not the ip6 one
    assert {c.table for c in parse_nft(ruleset)} == {"f4"}


def test_ip6tables_save_is_read_as_the_ipv6_side():
    from pxetui.doctor.firewall import probes6

    saved = ("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
             "-A INPUT -p udp -m udp --dport 547 -j ACCEPT\nCOMMIT\n")
    chains = parse_iptables(saved, "ip6")
    found = evaluate(chains, "eth0", 8080, wanted=probes6(8080))
    assert [f.problem.split(" (")[0] for f in found] == ["UDP port 69", "TCP port 80", "TCP port 8080",
                                                         "ICMPv6 type 135", "ICMPv6 type 136"]
    assert all(f.fix.startswith("ip6tables -I INPUT -i eth0 ") for f in found)
    assert found[-1].fix == "ip6tables -I INPUT -i eth0 -p ipv6-icmp --icmpv6-type 136 -j ACCEPT"


def test_the_ipv6_side_is_checked_only_with_ipv6_enabled(monkeypatch: pytest.MonkeyPatch):
    from pxetui.doctor import firewall

    v6_drop = "*filter\n:INPUT DROP [0:0]\nCOMMIT\n"
    outputs = {("iptables-save",): "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", ("ip6tables-save",): v6_drop}
    monkeypatch.setattr(firewall, "_run", lambda *cmd: outputs.get(cmd))
    found, read = firewall.check("eth0", 80)
    assert found == [] and read == ["iptables-save"]
    found, read = firewall.check("eth0", 80, ipv6=True)
    assert read == ["iptables-save", "ip6tables-save"]
    assert [f.problem.split(" (")[0] for f in found] == ["UDP port 547", "UDP port 69", "TCP port 80",
                                                         "ICMPv6 type 135", "ICMPv6 type 136"]
    found, _ = firewall.check("eth0", 80, ipv6=True, router_ads=True)
    assert [f.problem.split(" (")[0] for f in found][-1] == "ICMPv6 type 133"


def test_neighbour_discovery_is_walked_as_icmpv6_types():
    # RFC 4861: a client finds our address with a neighbour solicitation (135) and answers our
    # lookups with advertisements (136); our router advertisements answer solicitations (133).
    from pxetui.doctor.firewall import V6_FAMILIES, probes6

    def v6(policy: str, *rules: list[dict]) -> list:
        items: list[dict] = [{"chain": {"family": "ip6", "table": "f", "name": "input", "type": "filter",
                                        "hook": "input", "policy": policy}}]
        items += [{"rule": {"family": "ip6", "table": "f", "chain": "input", "handle": i + 2, "expr": r}}
                  for i, r in enumerate(rules)]
        return parse_nft({"nftables": items}, families=V6_FAMILIES)

    serving = [dport("udp", {"set": [547, 69]}), {"accept": None}], [dport("tcp", 80), {"accept": None}]

    def icmp(chains: list, router_ads: bool = True) -> list[str]:
        return [f.problem.split(" (")[0] for f in evaluate(chains, "eth0", 80, wanted=probes6(80, router_ads))]

    assert icmp(v6("drop", *serving)) == ["ICMPv6 type 135", "ICMPv6 type 136", "ICMPv6 type 133"]
    assert icmp(v6("drop", *serving), router_ads=False) == ["ICMPv6 type 135", "ICMPv6 type 136"]
    l4proto = {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "ipv6-icmp"}}
    assert icmp(v6("drop", *serving, [l4proto, {"accept": None}])) == []
    nexthdr = {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "nexthdr"}}, "right": 58}}
    assert icmp(v6("drop", *serving, [nexthdr, {"accept": None}])) == []
    nd = {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
                    "right": {"set": ["nd-neighbor-solicit", "nd-neighbor-advert", "echo-request"]}}}
    found = evaluate(v6("drop", *serving, [nd, {"accept": None}]), "eth0", 80, wanted=probes6(80, True))
    assert [f.problem.split(" (")[0] for f in found] == ["ICMPv6 type 133"]
    assert found[0].fix == 'nft insert rule ip6 f input iifname "eth0" icmpv6 type nd-router-solicit accept'
    # A type this model cannot name narrows the rule: an accept with it may let the client
    # through (no finding), a drop with it is not taken as certain.
    odd = {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
                     "right": {"set": ["nd-neighbor-solicit", "some-future-type"]}}}
    assert icmp(v6("drop", *serving, [odd, {"accept": None}]), router_ads=False) == []
    assert icmp(v6("accept", [odd, {"drop": None}]), router_ads=False) == []
    # A UDP or TCP rule never stands for ICMPv6, nor an ICMPv6 rule for a port.
    drop_nd = {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": 135}}
    found = evaluate(v6("accept", [drop_nd, {"drop": None}]), "eth0", 80, wanted=probes6(80))
    assert [f.problem.split(" (")[0] for f in found] == ["ICMPv6 type 135"]


def test_ip6tables_icmpv6_rules_by_name_number_and_code():
    from pxetui.doctor.firewall import probes6

    head = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p udp -m multiport --dports 547,69 -j ACCEPT\n" \
           "-A INPUT -p tcp --dport 80 -j ACCEPT\n"

    def icmp(rules: str) -> list[str]:
        chains = parse_iptables(head + rules + "COMMIT\n", "ip6")
        return [f.problem.split(" (")[0] for f in evaluate(chains, "eth0", 80, wanted=probes6(80, True))]

    assert icmp("-A INPUT -p ipv6-icmp -j ACCEPT\n") == []
    assert icmp("-A INPUT -p icmpv6 -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT\n"
                "-A INPUT -p 58 -m icmp6 --icmpv6-type 136/0 -j ACCEPT\n") == ["ICMPv6 type 133"]
    assert icmp("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 133 -j DROP\n-A INPUT -p ipv6-icmp -j ACCEPT\n") \
        == ["ICMPv6 type 133"]
    # Neighbour discovery is untracked by conntrack: a state rule that takes UNTRACKED lets it in,
    # one that takes only ESTABLISHED,RELATED does not.
    assert icmp("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED,UNTRACKED -j ACCEPT\n") == []
    assert icmp("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n") == [
        "ICMPv6 type 135", "ICMPv6 type 136", "ICMPv6 type 133"]
