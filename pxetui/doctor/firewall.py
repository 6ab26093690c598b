"""Does the host's firewall let a booting client reach pxetui? nftables (`nft -j list ruleset`) and
iptables (`iptables-save`, ufw's chains included) are read into one model of input chains and
each port PXE needs is walked through them. With ipv6.enabled the IPv6 side too: DHCPv6, TFTP
and HTTP through the ip6/inet chains of nftables and `ip6tables-save` (docs/IPV6.md).

Conservative: a rule is only taken as matching when every condition in it is one understood here
(protocol, destination port or ICMPv6 type, input interface, conntrack state). A drop with any other condition
(a source address, a mark, a rate limit) may spare the client and is not reported; an accept
with one ends the walk without a finding, as it may let the client through.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pxetui.dhcp.ports import CLIENT_PORT, PXE_PORT, SERVER_PORT
from pxetui.dhcp6.codec import SERVER_PORT as DHCP6_PORT
from pxetui.doctor.finding import Finding

TFTP_PORT = 69
MAX_DEPTH = 16  # jumps followed; a loop in the rules cannot hang doctor
ICMP6 = "icmpv6"  # the protocol name rules are read into (nft ipv6-icmp, iptables icmpv6, 58)
ND_ROUTER_SOLICIT, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 133, 135, 136  # RFC 4861 section 4
# ICMPv6 type names as nft and ip6tables print them (RFC 4443, RFC 4861, RFC 3810); a name not
# here makes its rule one this model does not evaluate.
ICMP6_TYPES = {
    "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
    "echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
    "mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133,
    "router-solicitation": 133, "nd-router-advert": 134, "router-advertisement": 134,
    "nd-neighbor-solicit": 135, "neighbour-solicitation": 135, "neighbor-solicitation": 135,
    "nd-neighbor-advert": 136, "neighbour-advertisement": 136, "neighbor-advertisement": 136,
    "nd-redirect": 137, "redirect": 137, "router-renumbering": 138, "ind-neighbor-solicit": 141,
    "ind-neighbor-advert": 142, "mld2-listener-report": 143,
}
NFT_ICMP6_NAMES = {133: "nd-router-solicit", 135: "nd-neighbor-solicit", 136: "nd-neighbor-advert"}
L4_NAMES = {"ipv6-icmp": ICMP6, "icmpv6": ICMP6, "icmp6": ICMP6, "58": ICMP6, "6": "tcp", "17": "udp"}


def l4(name: str) -> str:
    """A protocol as nft and iptables name it, in this model's words (udp, tcp, icmpv6)."""
    name = name.lower()
    return L4_NAMES.get(name, name)


def icmp6_types(values: Iterable[int | str]) -> list[tuple[int, int]] | None:
    """Type numbers or names (ip6tables also writes "135/0": type/code) as ranges; None when
    one is not understood."""
    out = []
    for v in values:
        if isinstance(v, str):
            head = v.split("/")[0]
            v = int(head) if head.isdigit() else ICMP6_TYPES.get(head.lower(), -1)
        if not 0 <= v <= 255:
            return None
        out.append((v, v))
    return out


@dataclass(frozen=True)
class Probe:
    proto: str  # udp | tcp
    port: int
    why: str  # what uses the port, for the finding's words


def probes(http_port: int) -> list[Probe]:
    out = [Probe("udp", SERVER_PORT, "DHCP requests"), Probe("udp", CLIENT_PORT, "DHCP replies to the probe"),
           Probe("udp", TFTP_PORT, "TFTP"), Probe("udp", PXE_PORT, "proxyDHCP"),
           Probe("tcp", 80, "HTTP")]
    if http_port != 80:
        out.append(Probe("tcp", http_port, "HTTP (http.port)"))
    return out


def probes6(http_port: int, router_ads: bool = False) -> list[Probe]:
    """What an IPv6 client needs (docs/IPV6.md): DHCPv6 to us, then TFTP or HTTP, and neighbour
    discovery (RFC 4861) both ways: a client finds our address with a neighbour solicitation,
    and answers ours with an advertisement before we can send it a TFTP block or an HTTP reply.
    With our router advertisements on, a client's router solicitation too. ICMPv6 is a Probe
    whose `port` is the message type."""
    out = [Probe("udp", DHCP6_PORT, "DHCPv6"), Probe("udp", TFTP_PORT, "TFTP over IPv6"),
           Probe("tcp", 80, "HTTP over IPv6")]
    if http_port != 80:
        out.append(Probe("tcp", http_port, "HTTP over IPv6 (http.port)"))
    out += [Probe(ICMP6, ND_NEIGHBOR_SOLICIT, "neighbour solicitation: a client looking up our address"),
            Probe(ICMP6, ND_NEIGHBOR_ADVERT, "neighbour advertisement: a client answering our lookup")]
    if router_ads:
        out.append(Probe(ICMP6, ND_ROUTER_SOLICIT, "router solicitation, answered by our "
                                                   "advertisements (ipv6.router_advertisements)"))
    return out


V4_FAMILIES, V6_FAMILIES = ("ip", "inet"), ("ip6", "inet")  # nftables families each one passes


@dataclass
class Rule:
    verdict: str  # accept | drop | reject | jump | goto | return | "" (no verdict: counter, log)
    text: str
    protos: set[str] | None = None  # None: any protocol
    ports: list[tuple[int, int]] | None = None  # destination port ranges; None: any port
    ifaces: list[str] | None = None  # input interfaces ("eth*" / "eth+" wildcards); None: any
    new: bool = True  # False: matches only established/related/invalid, never a client's request
    untracked: bool = False  # a conntrack state match that takes untracked packets: neighbour
    # discovery is never tracked (docs/IPV6.md), so such a rule can match it
    narrowed: bool = False  # a condition not understood here
    target: str = ""  # jump/goto target
    handle: int | None = None  # nft rule handle


@dataclass
class Chain:
    tool: str  # nft | iptables
    family: str
    table: str
    name: str
    hook: str | None  # "input" for a base chain of the input path
    policy: str  # accept | drop
    rules: list[Rule] = field(default_factory=list)


def iface_matches(pattern: str, iface: str) -> bool:
    if pattern.endswith(("*", "+")):
        return iface.startswith(pattern[:-1])
    return pattern == iface


def port_in(port: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def walk(chain: Chain, chains: dict[tuple[str, str, str], Chain], probe: Probe, iface: str | None,
         depth: int = 0) -> tuple[str, Chain, Rule | None] | None:
    """("accept" | "drop" | "maybe", chain, rule) where the walk ends, or None: fell through a
    non-base chain (back to its caller)."""
    if depth > MAX_DEPTH:
        return ("maybe", chain, None)
    for rule in chain.rules:
        if (not rule.new and not (rule.untracked and probe.proto == ICMP6)) or (
                rule.protos is not None and probe.proto not in rule.protos):
            continue
        if rule.ports is not None and (rule.protos is None or not port_in(probe.port, rule.ports)):
            continue
        iface_unknown = rule.ifaces is not None and iface is None
        if rule.ifaces is not None and iface is not None and not any(iface_matches(p, iface) for p in rule.ifaces):
            continue
        partial = rule.narrowed or iface_unknown
        if rule.verdict in ("jump", "goto"):
            sub = chains.get((chain.family, chain.table, rule.target))
            if sub is None:
                continue
            got = walk(sub, chains, probe, iface, depth + 1)
            if got is not None:
                if partial and got[0] == "drop":
                    continue  # the jump may not apply to this client
                return got
            if rule.verdict == "goto":
                return None
            continue
        if rule.verdict == "return":
            if partial:
                continue
            return None
        if rule.verdict == "accept":
            return ("maybe" if partial else "accept", chain, rule)
        if rule.verdict in ("drop", "reject") and not partial:
            return ("drop", chain, rule)
    if chain.hook is not None and chain.policy == "drop":
        return ("drop", chain, None)
    return None


# -- nftables ---------------------------------------------------------------------------------


def _nft_values(right: Any) -> tuple[list[tuple[int, int]] | None, list[str] | None]:
    """A match's right side as port ranges or names (None where it is neither)."""
    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
    ports: list[tuple[int, int]] = []
    names: list[str] = []
    for it in items:
        if isinstance(it, int):
            ports.append((it, it))
        elif isinstance(it, str):
            names.append(it)
        elif isinstance(it, dict) and "range" in it and all(isinstance(v, int) for v in it["range"]):
            ports.append((it["range"][0], it["range"][1]))
        else:
            return None, None
    return (ports or None), (names or None)


def _nft_rule(r: dict[str, Any]) -> Rule:
    rule = Rule(verdict="", text="", handle=r.get("handle"))
    for e in r.get("expr", []):
        key = next(iter(e), "")
        if key in ("accept", "drop", "reject", "return"):
            rule.verdict = key
        elif key in ("jump", "goto"):
            rule.verdict, rule.target = key, e[key].get("target", "")
        elif key in ("counter", "log", "comment"):
            pass
        elif key == "match":
            _nft_match(rule, e["match"])
        else:
            rule.narrowed = True  # limit, mark, set lookups, xt: not evaluated
    return rule


def _nft_match(rule: Rule, m: dict[str, Any]) -> None:
    left, right, op = m.get("left"), m.get("right"), m.get("op", "==")
    ports, names = _nft_values(right)
    if not isinstance(left, dict):
        rule.narrowed = True
        return
    if "ct" in left and left["ct"].get("key") == "state" and op in ("==", "in"):
        states = names if names is not None else []
        if "new" not in states:
            rule.new = False
        rule.untracked = "untracked" in states
        return
    if op not in ("==", "in"):
        rule.narrowed = True  # a negation: not worth getting wrong
        return
    payload, meta = left.get("payload"), left.get("meta")
    if payload and payload.get("field") == "dport" and payload.get("protocol") in ("udp", "tcp") and ports:
        rule.protos, rule.ports = {payload["protocol"]}, ports
    elif payload and payload.get("protocol") == "icmpv6" and payload.get("field") == "type" and (ports or names):
        types = icmp6_types([*(lo for lo, _ in ports or []), *(names or [])])
        rule.protos, rule.ports = {ICMP6}, types
        rule.narrowed |= types is None or any(lo != hi for lo, hi in ports or [])
    elif (payload and (payload.get("protocol"), payload.get("field")) in (("ip", "protocol"), ("ip6", "nexthdr"))
          or meta and meta.get("key") == "l4proto") and (names or ports):
        rule.protos = {l4(str(v)) for v in [*(names or []), *(lo for lo, _ in ports or [])]}
    elif meta and meta.get("key") in ("iifname", "iif") and names:
        rule.ifaces = names
    else:
        rule.narrowed = True


def parse_nft(ruleset: dict[str, Any], skip_tables: Iterable[tuple[str, str]] = (),
              families: tuple[str, ...] = V4_FAMILIES) -> list[Chain]:
    """Input chains of `families` (IPv4: ip, inet; IPv6: ip6, inet) of `nft -j list ruleset`."""
    skip = set(skip_tables)
    chains: dict[tuple[str, str, str], Chain] = {}
    items = ruleset.get("nftables", [])
    for it in items:
        c = it.get("chain")
        if c and c.get("family") in families and (c["family"], c["table"]) not in skip:
            hook = "input" if c.get("hook") == "input" and c.get("type", "filter") == "filter" else None
            chains[(c["family"], c["table"], c["name"])] = Chain(
                "nft", c["family"], c["table"], c["name"], hook, c.get("policy", "accept"))
    for it in items:
        r = it.get("rule")
        if r and (r.get("family"), r.get("table"), r.get("chain")) in chains:
            rule = _nft_rule(r)
            rule.text = f"nft rule {r['family']} {r['table']} {r['chain']} handle {r.get('handle')}"
            chains[(r["family"], r["table"], r["chain"])].rules.append(rule)
    return list(chains.values())


# -- iptables ---------------------------------------------------------------------------------

# Options that take one value and say nothing about whether a client's request matches.
_NEUTRAL = {"-m", "--comment"}


def _ipt_ports(spec: str) -> list[tuple[int, int]] | None:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition(":")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return None
        out.append((int(lo), int(hi or lo)))
    return out


def _ipt_rule(args: list[str]) -> Rule:
    rule = Rule(verdict="", text="-A " + " ".join(shlex.quote(a) for a in args))
    i = 1  # args[0] is the chain
    while i < len(args):
        a = args[i]
        if a == "!":
            rule.narrowed = True
            i += 1
            continue
        val = args[i + 1] if i + 1 < len(args) else ""
        if a in ("-p", "--protocol"):
            rule.protos = {l4(val)}
        elif a == "--icmpv6-type":
            rule.ports = icmp6_types([val])
            rule.narrowed |= rule.ports is None
        elif a in ("-i", "--in-interface"):
            rule.ifaces = [val]
        elif a in ("--dport", "--dports", "--destination-port", "--destination-ports"):
            rule.ports = _ipt_ports(val)
            rule.narrowed |= rule.ports is None
        elif a in ("--state", "--ctstate"):
            states = val.upper().split(",")
            if "NEW" not in states:
                rule.new = False
            rule.untracked = "UNTRACKED" in states
        elif a in ("-j", "--jump", "-g", "--goto"):
            v = val.upper()
            if v in ("ACCEPT", "DROP", "REJECT", "RETURN"):
                rule.verdict = v.lower()
            elif v in ("LOG", "NFLOG"):
                pass
            elif a in ("-g", "--goto"):
                rule.verdict, rule.target = "goto", val
            else:
                rule.verdict, rule.target = "jump", val
            if v in ("LOG", "NFLOG", "REJECT"):  # their own options follow; none changes the match
                return rule
        elif a in _NEUTRAL:
            pass
        else:
            rule.narrowed = True  # -s, -d, --sport, -m mark, limit, ...
            if not val.startswith("-") and val != "!":
                i += 2
                continue
            i += 1
            continue
        i += 2
    return rule


def parse_iptables(text: str, family: str = "ip") -> list[Chain]:
    """The filter table of `iptables-save` (or, family "ip6", of `ip6tables-save`): INPUT and
    every chain it can reach."""
    chains: dict[tuple[str, str, str], Chain] = {}
    table = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:]
        elif table != "filter" or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            chains[(family, "filter", name)] = Chain("iptables", family, "filter", name,
                                                     "input" if name == "INPUT" else None,
                                                     "drop" if policy == "DROP" else "accept")
        elif line.startswith("-A "):
            args = shlex.split(line[3:])
            c = chains.get((family, "filter", args[0]))
            if c is not None:
                c.rules.append(_ipt_rule(args))
    return list(chains.values())


# -- findings ---------------------------------------------------------------------------------


def _fix(chain: Chain, probe: Probe, iface: str | None, ufw: bool) -> str:
    on = f" on {iface}" if iface else ""
    if probe.proto == ICMP6:
        return _fix_icmp6(chain, probe.port, iface, ufw)
    if ufw:
        return f"ufw allow in{on} to any port {probe.port} proto {probe.proto}"
    if chain.tool == "nft":
        dev = f'iifname "{iface}" ' if iface else ""
        return f"nft insert rule {chain.family} {chain.table} {chain.name} {dev}{probe.proto} dport {probe.port} accept"
    dev = f"-i {iface} " if iface else ""
    tool = "ip6tables" if chain.family == "ip6" else "iptables"
    return f"{tool} -I {chain.name} {dev}-p {probe.proto} --dport {probe.port} -j ACCEPT"


def _fix_icmp6(chain: Chain, icmp_type: int, iface: str | None, ufw: bool) -> str:
    dev = f"-i {iface} " if iface else ""
    rule = f"-p ipv6-icmp --icmpv6-type {icmp_type} -j ACCEPT"
    if ufw:  # ufw's own syntax has no ICMPv6 types: its before6.rules hold them
        return f"add '-A ufw6-before-input {dev}{rule}' to /etc/ufw/before6.rules, then ufw reload"
    if chain.tool == "nft":
        nft_dev = f'iifname "{iface}" ' if iface else ""
        return (f"nft insert rule {chain.family} {chain.table} {chain.name} {nft_dev}icmpv6 type "
                f"{NFT_ICMP6_NAMES.get(icmp_type, icmp_type)} accept")
    return f"ip6tables -I {chain.name} {dev}{rule}"


def what_of(probe: Probe) -> str:
    if probe.proto == ICMP6:
        return f"ICMPv6 type {probe.port}"
    return f"{probe.proto.upper()} port {probe.port}"


def evaluate(chains: list[Chain], iface: str | None, http_port: int, ufw: bool = False,
             wanted: list[Probe] | None = None) -> list[Finding]:
    """Findings for each probe (`wanted`, else the IPv4 ones) walked through `chains`."""
    index = {(c.family, c.table, c.name): c for c in chains}
    found: list[Finding] = []
    for probe in probes(http_port) if wanted is None else wanted:
        for base in (c for c in chains if c.hook == "input"):
            got = walk(base, index, probe, iface)
            if got is None or got[0] != "drop":
                continue
            _, chain, rule = got
            where = f"{chain.tool} {chain.family} {chain.table} {chain.name}"
            if rule is None:
                what = f"the input policy of {where} is drop and no rule accepts it"
            else:
                verb = "rejects" if rule.verdict == "reject" else "drops"
                what = f"a rule {verb} it ({rule.text})"
            found.append(Finding("firewall", "error",
                                 f"{what_of(probe)} ({probe.why}) is blocked: {what}",
                                 _fix(chain, probe, iface, ufw)))
    return found


def _run(*cmd: str) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def ufw_active() -> bool:
    out = _run("ufw", "status")
    return bool(out and out.startswith("Status: active"))


def check(iface: str | None, http_port: int, ipv6: bool = False,
          router_ads: bool = False) -> tuple[list[Finding], list[str]]:
    """Findings, and which rule sets were read (for the report: 'none' means not checked); the
    IPv6 side too with `ipv6` (ipv6.enabled), router solicitations with `router_ads`."""
    chains: list[Chain] = []
    chains6: list[Chain] = []
    read: list[str] = []
    skip: list[tuple[str, str]] = []
    for tool, family in (("iptables", "ip"), ("ip6tables", "ip6")) if ipv6 else (("iptables", "ip"),):
        saved = _run(f"{tool}-save")
        if saved is None:
            continue
        (chains6 if family == "ip6" else chains).extend(parse_iptables(saved, family))
        read.append(f"{tool}-save")
        if "nf_tables" in (_run(tool, "--version") or ""):
            # iptables-nft keeps its rules in nftables' `ip filter` (`ip6 filter`), with xt
            # expressions this model does not read: they were evaluated from the save above.
            skip.append((family, "filter"))
    out = _run("nft", "-j", "list", "ruleset")
    if out is not None:
        try:
            ruleset = json.loads(out or "{}")
            chains += parse_nft(ruleset, skip)
            if ipv6:
                chains6 += parse_nft(ruleset, skip, V6_FAMILIES)
            read.append("nft")
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return [Finding("firewall", "warning", f"cannot read `nft -j list ruleset`: {exc}",
                            "check the rules by hand: nft list ruleset")], read
    ufw = any(c.name.startswith("ufw-") for c in chains + chains6) and ufw_active()
    found = evaluate(chains, iface, http_port, ufw)
    if ipv6:
        found += evaluate(chains6, iface, http_port, ufw, probes6(http_port, router_ads))
    return found, read
