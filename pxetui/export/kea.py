"""A Plan as a Kea DHCPv4 configuration (kea-dhcp4.conf; Kea 2.x).

Client classes classify as pxetui's policy does (pxetui.dhcp.policy.client_kind): HTTP boot
(option 60 HTTPClient), then iPXE (user class "iPXE" or option 175: the script URL, never iPXE
again: docs/FIELD-NOTES.md "iPXE detection"), then option 93. Each class's test excludes the
ones before it, so a client is in exactly one; per-host boot files are classes on the MAC
defined before them (Kea takes the boot file of the first class that sets one). Kea has no
proxyDHCP: in proxy mode the classes are for the site's own Kea to take over.
"""

from __future__ import annotations

import json
from typing import Any

from pxetui import archtypes
from pxetui.export.plan import Plan

_HTTP = "substring(option[60].hex,0,10) == 'HTTPClient'"
_IPXE = "(option[77].hex == 'iPXE' or option[175].exists)"
ALLOWED = "pxetui-allowed"
_PXE = "substring(option[60].hex,0,9) == 'PXEClient'"


def _kind_test(kind: str, codes: tuple[int, ...]) -> str:
    if kind == archtypes.HTTP_KIND:
        return _HTTP
    if kind == "ipxe":
        return f"{_IPXE} and not {_HTTP}"
    arch = " or ".join(f"option[93].hex == 0x{c:04x}" for c in codes)
    if kind == "bios":  # a PXE 2.x ROM without option 93 (before RFC 4578)
        arch = f"{arch} or (not option[93].exists and {_PXE})"
    return f"({arch}) and not {_IPXE} and not {_HTTP}"


def _fields(plan: Plan, kind: str, file: str) -> dict[str, Any]:
    d: dict[str, Any] = {"boot-file-name": file}
    if not file.startswith(("http://", "https://")):
        d["next-server"] = plan.server_ip
    if kind == archtypes.HTTP_KIND:
        # UEFI HTTP boot takes an offer only when option 60 says HTTPClient (UEFI spec)
        d["option-data"] = [{"name": "vendor-class-identifier", "data": "HTTPClient"}]
    return d


def _classes(plan: Plan) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if plan.deny:
        tests = " or ".join(f"hexstring(pkt4.mac, ':') == '{m}'" for m in plan.deny)
        out.append({"name": "DROP", "test": tests, "comment": "dhcp.deny"})
    if not plan.allow_unknown:
        tests = " or ".join(f"hexstring(pkt4.mac, ':') == '{h.mac}'" for h in plan.hosts
                            if h.admitted) or "'no' == 'hosts'"
        out.append({"name": ALLOWED, "test": tests,
                    "comment": "dhcp.allow_unknown = false: reservations and dhcp.allow only"})
    for i, h in enumerate(plan.hosts):
        for kind, file in h.files.items():
            test = f"hexstring(pkt4.mac, ':') == '{h.mac}' and {_kind_test(kind, plan_codes(plan, kind))}"
            out.append({"name": f"pxetui-host{i}-{kind}", "test": test,
                        "comment": f"{h.source}: {h.mac}", **_fields(plan, kind, file)})
    for b in plan.boots:
        out.append({"name": f"pxetui-{b.kind}", "test": _kind_test(b.kind, b.arch_codes),
                    "comment": b.reason, **_fields(plan, b.kind, b.file)})
    return out


def plan_codes(plan: Plan, kind: str) -> tuple[int, ...]:
    b = plan.boot(kind)
    return b.arch_codes if b else ()


def _subnets(plan: Plan) -> list[dict[str, Any]]:
    reservations = []
    for h in plan.hosts:
        if not (h.ip or h.hostname):  # Kea wants a resource; its boot files are classes
            continue
        r: dict[str, Any] = {"hw-address": h.mac}
        if h.ip:
            r["ip-address"] = h.ip
        if h.hostname:
            r["hostname"] = h.hostname
        if h.notes:
            r["comment"] = "; ".join(h.notes)
        reservations.append(r)
    if plan.mode == "proxy":
        return [{"id": 1, "subnet": str(plan.network), "interface": plan.interface,
                 "comment": "proxy mode: the site's DHCP server hands out addresses; merge the "
                            "client classes into its configuration", "reservations": reservations}]
    out = []
    for i, p in enumerate(plan.pools, 1):
        pool: dict[str, Any] = {"pool": f"{p.start} - {p.end}"}
        if not plan.allow_unknown:
            pool["client-class"] = ALLOWED  # dhcp.allow_unknown = false
        s: dict[str, Any] = {"id": i, "subnet": str(p.network), "pools": [pool]}
        if p.relayed:
            s["comment"] = "relayed: chosen by the relay agent's giaddr (RFC 3046)"
        else:
            s["interface"] = plan.interface
            s["reservations"] = reservations
        if p.router:
            s["option-data"] = [{"name": "routers", "data": p.router}]
        out.append(s)
    return out


def config(plan: Plan) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    if plan.dns:
        options.append({"name": "domain-name-servers", "data": ", ".join(plan.dns)})
    if plan.domain:
        options.append({"name": "domain-name", "data": plan.domain})
    dhcp4: dict[str, Any] = {
        "interfaces-config": {"interfaces": [plan.interface]},
        "lease-database": {"type": "memfile", "lfc-interval": 3600},
        "valid-lifetime": plan.lease_time,
        "option-data": options,
        "client-classes": _classes(plan),
        "subnet4": _subnets(plan),
    }
    return {"Dhcp4": dhcp4}


def render(plan: Plan) -> str:
    head = [f"// Kea DHCPv4 configuration exported by pxetui {plan.version} ({plan.mode} DHCP on "
            f"{plan.interface}, server {plan.server_ip}).", "// Check it: kea-dhcp4 -t THIS_FILE"]
    head += [f"// pxetui: {n}" for n in plan.notes]
    if plan.copy_loaders:
        head.append(f"// TFTP: Kea serves no files; a TFTP server on {plan.server_ip} needs these "
                    "boot loaders as real files in its root:")
        head += [f"//   cp {src} {plan.tftp_root}/{name}" for name, src in plan.copy_loaders.items()]
    return "\n".join(head) + "\n" + json.dumps(config(plan), indent=2) + "\n"
