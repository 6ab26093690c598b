"""A Plan as an ISC dhcpd configuration (dhcpd.conf, ISC DHCP 4.4).

One if/elsif chain classifies as pxetui's policy does (pxetui.dhcp.policy.client_kind): HTTP
boot (option 60 HTTPClient), then iPXE (user class "iPXE" or option 175: the script URL, never
iPXE again: docs/FIELD-NOTES.md "iPXE detection"), then option 93. Per-host boot files sit in
the host declarations, whose scope wins over the global chain (dhcpd.conf(5)). ISC dhcpd has
no proxyDHCP: in proxy mode the chain is for the site's own dhcpd to take over.
"""

from __future__ import annotations

from pxetui import archtypes
from pxetui.export.plan import Plan

_HTTP = 'substring(option vendor-class-identifier, 0, 10) = "HTTPClient"'
_IPXE = '(exists ipxe.bus-id or option user-class = "iPXE")'
_PXE = 'substring(option vendor-class-identifier, 0, 9) = "PXEClient"'


def _test(kind: str, codes: tuple[int, ...]) -> str:
    if kind == archtypes.HTTP_KIND:
        return _HTTP
    if kind == "ipxe":
        return _IPXE
    arch = " or ".join(f"option pxetui-arch = {c}" for c in codes)
    if kind == "bios":  # a PXE 2.x ROM without option 93 (before RFC 4578)
        arch = f"{arch} or (not exists pxetui-arch and {_PXE})"
    return arch


def _stmts(plan: Plan, kind: str, file: str, indent: str) -> list[str]:
    out = [f'{indent}filename "{file}";']
    if not file.startswith(("http://", "https://")):
        out.append(f"{indent}next-server {plan.server_ip};")
    if kind == archtypes.HTTP_KIND:  # UEFI HTTP boot wants option 60 HTTPClient back (UEFI spec)
        out.append(f'{indent}option vendor-class-identifier "HTTPClient";')
    return out


def _chain(plan: Plan, files: dict[str, str], indent: str) -> list[str]:
    """if/elsif over the kinds in the policy's order: HTTP, iPXE, then the firmware."""
    order = [archtypes.HTTP_KIND, "ipxe", *(k for k in files if k not in (archtypes.HTTP_KIND, "ipxe"))]
    out: list[str] = []
    for kind in order:
        if kind not in files:
            continue
        b = plan.boot(kind)
        word = "if" if not out else "} elsif"
        out.append(f"{indent}{word} {_test(kind, b.arch_codes if b else ())} {{")
        out += _stmts(plan, kind, files[kind], indent + "  ")
    if out:
        out.append(f"{indent}}}")
    return out


def render(plan: Plan) -> str:
    out = [f"# ISC dhcpd configuration exported by pxetui {plan.version} ({plan.mode} DHCP on "
           f"{plan.interface}, server {plan.server_ip}).", "# Check it: dhcpd -t -cf THIS_FILE", "#"]
    out += [f"# pxetui: {n}" for n in plan.notes]
    if plan.copy_loaders:
        out.append(f"# TFTP: dhcpd serves no files; a TFTP server on {plan.server_ip} needs these "
                   "boot loaders as real files in its root:")
        out += [f"#   cp {src} {plan.tftp_root}/{name}" for name, src in plan.copy_loaders.items()]
    out += ["", "option pxetui-arch code 93 = unsigned integer 16;  # RFC 4578",
            "option space ipxe;", "option ipxe-encap-opts code 175 = encapsulate ipxe;",
            "option ipxe.bus-id code 177 = string;", "",
            f"default-lease-time {plan.lease_time};", f"max-lease-time {plan.lease_time};"]
    if plan.mode == "full":
        out.append("authoritative;")
    if plan.dns:
        out.append(f"option domain-name-servers {', '.join(plan.dns)};")
    if plan.domain:
        out.append(f'option domain-name "{plan.domain}";')
    out += ["", "# boot files (pxetui's policy, per kind)"]
    out += _chain(plan, {b.kind: b.file for b in plan.boots}, "")
    out.append("")
    for i, mac in enumerate(plan.deny):
        out += [f"host pxetui-deny{i} {{  # dhcp.deny", f"  hardware ethernet {mac};",
                "  deny booting;", "}"]
    for i, h in enumerate(plan.hosts):
        out += [f"# {h.mac}: {n}" for n in h.notes]
        if not plan.allow_unknown and not h.admitted:
            out.append(f"# {h.mac}: pxetui would not admit it (dhcp.allow_unknown = false, no "
                       "reservation): this declaration makes it known to dhcpd")
        out += [f"host pxetui-host{i} {{  # {h.source}", f"  hardware ethernet {h.mac};"]
        if h.ip and plan.mode == "full":
            out.append(f"  fixed-address {h.ip};")
        if h.hostname:
            out.append(f'  option host-name "{h.hostname}";')
        out += _chain(plan, h.files, "  ")
        out.append("}")
    out.append("")
    if plan.mode == "proxy":
        out += ["# proxy mode: the site's DHCP server hands out the addresses; ISC dhcpd has no "
                "proxyDHCP, so move the boot chain above into its configuration",
                f"subnet {plan.network.network_address} netmask {plan.network.netmask} {{", "}"]
    for p in plan.pools:
        if p.relayed:
            out.append(f"# relayed: chosen by the relay agent's giaddr in {p.network} (RFC 3046)")
        out.append(f"subnet {p.network.network_address} netmask {p.network.netmask} {{")
        if p.router:
            out.append(f"  option routers {p.router};")
        if plan.allow_unknown:
            out.append(f"  range {p.start} {p.end};")
        else:
            out += ["  pool {", f"    range {p.start} {p.end};",
                    "    deny unknown-clients;  # dhcp.allow_unknown = false", "  }"]
        out.append("}")
    return "\n".join(out) + "\n"
