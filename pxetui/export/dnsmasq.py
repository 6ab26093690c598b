"""A Plan as a dnsmasq configuration (DHCP and TFTP; DNS off).

Tags classify a client as pxetui's policy does (pxetui.dhcp.policy.client_kind): an HTTP boot
client (option 60 HTTPClient) first, then iPXE (user class "iPXE" or option 175 present: it
gets the script URL, never iPXE again, so no chain loop: docs/FIELD-NOTES.md "iPXE detection"),
then option 93. Every dhcp-boot line carries tags that exclude all the others, so which line
dnsmasq tries first never matters.
"""

from __future__ import annotations

from pxetui import archtypes
from pxetui.export.plan import KindBoot, Plan

# dnsmasq's names for pxe-service client system types (its man page, --pxe-service).
_CSA = {0: "x86PC", 6: "IA32_EFI", 7: "X86-64_EFI", 9: "BC_EFI", 10: "ARM32_EFI", 11: "ARM64_EFI"}


def _kind_tags(kind: str) -> list[list[str]]:
    """Tag sets (each ANDed) that mean `kind`; BIOS has two: arch 0, or a PXE ROM without
    option 93 (PXE 2.x before RFC 4578)."""
    if kind == archtypes.HTTP_KIND:
        return [["http"]]
    if kind == "ipxe":
        return [["ipxe", "!http"]]
    sets = [[kind, "!ipxe", "!http"]]
    if kind == "bios":
        sets.append(["pxe", "!arch", "!ipxe", "!http"])
    return sets


def _boot_line(tags: list[str], file: str, server: str) -> str:
    t = ",".join(f"tag:{x}" for x in tags)
    # a URL is fetched by iPXE or the UEFI HTTP client itself: no TFTP server to name
    tail = "" if file.startswith(("http://", "https://")) else f",,{server}"
    return f"dhcp-boot={t},{file}{tail}"


def render(plan: Plan) -> str:
    out = [f"# dnsmasq configuration exported by pxetui {plan.version} ({plan.mode} DHCP on "
           f"{plan.interface}, server {plan.server_ip}).",
           "# Check it: dnsmasq --test --conf-file=THIS_FILE", "#"]
    out += [f"# pxetui: {n}" for n in plan.notes]
    out += ["", "port=0  # no DNS: pxetui serves none", f"interface={plan.interface}",
            "bind-interfaces", ""]
    out += _ranges(plan)
    out += _hosts(plan)
    out += _classes(plan)
    out += _boots(plan)
    out += ["", "# TFTP: the boot loaders must be real files in tftp-root"]
    for name, src in plan.copy_loaders.items():
        out.append(f"#   cp {src} {plan.tftp_root}/{name}")
    out += ["enable-tftp", f"tftp-root={plan.tftp_root}", ""]
    return "\n".join(out)


def _ranges(plan: Plan) -> list[str]:
    out: list[str] = []
    if plan.mode == "proxy":
        return ["# proxyDHCP (PXE spec 2.1): another server hands out the addresses",
                f"dhcp-range={plan.network.network_address},proxy,{plan.network.netmask}", ""]
    for i, p in enumerate(plan.pools):
        tag = f"pool{i}"
        if p.relayed:
            out.append(f"# relayed: chosen by the relay agent's giaddr in {p.network} (RFC 3046)")
        out.append(f"dhcp-range=set:{tag},{p.start},{p.end},{p.network.netmask},{plan.lease_time}")
        if p.router:
            out.append(f"dhcp-option=tag:{tag},option:router,{p.router}")
    if plan.dns:
        out.append(f"dhcp-option=option:dns-server,{','.join(plan.dns)}")
    if plan.domain:
        out.append(f"dhcp-option=option:domain-name,{plan.domain}")
    return [*out, ""]


def _hosts(plan: Plan) -> list[str]:
    out: list[str] = []
    for mac in plan.deny:
        out.append(f"dhcp-host={mac},ignore  # dhcp.deny")
    for h in plan.hosts:
        for n in h.notes:
            out.append(f"# {h.mac}: {n}")
        parts = [h.mac] + [x for x in (h.ip, h.hostname) if x]
        if plan.mode == "full" and (h.ip or h.hostname or (h.admitted and not plan.allow_unknown)):
            out.append(f"dhcp-host={','.join(parts)}  # {h.source}")
    if not plan.allow_unknown and plan.mode == "full":
        out.append("dhcp-ignore=tag:!known  # dhcp.allow_unknown = false")
    return [*out, ""] if out else out


def _classes(plan: Plan) -> list[str]:
    out = ["# what the client is (pxetui.dhcp.policy)",
           "dhcp-vendorclass=set:http,HTTPClient", "dhcp-vendorclass=set:pxe,PXEClient",
           "dhcp-userclass=set:ipxe,iPXE", "dhcp-match=set:ipxe,175",
           "dhcp-match=set:arch,option:client-arch"]
    for b in plan.boots:
        for code in b.arch_codes:
            if b.kind != archtypes.HTTP_KIND:  # HTTP boot is known by its vendor class
                out.append(f"dhcp-match=set:{b.kind},option:client-arch,{code}  # {archtypes.label(code)}")
    for i, h in enumerate(plan.hosts):
        if h.files:
            out.append(f"dhcp-mac=set:host{i},{h.mac}")
        for kind in h.files:
            out.append(f"dhcp-mac=set:host-{kind},{h.mac}")
    if plan.boot(archtypes.HTTP_KIND):
        # UEFI HTTP boot takes an offer only when option 60 says HTTPClient (UEFI spec, HTTP Boot)
        out.append("dhcp-option-force=tag:http,option:vendor-class,HTTPClient")
    return [*out, ""]


def _boots(plan: Plan) -> list[str]:
    out = ["# boot files (pxetui's policy: per host, else per kind)"]
    for i, h in enumerate(plan.hosts):
        for kind, file in h.files.items():
            out += _kind_lines(plan, kind, file, [f"host{i}"], f"{h.mac} ({h.source})")
    for b in plan.boots:
        excl = [f"!host-{b.kind}"] if any(b.kind in h.files for h in plan.hosts) else []
        out += _kind_lines(plan, b.kind, b.file, excl, b.reason, b)
    return out


def _kind_lines(plan: Plan, kind: str, file: str, extra: list[str], why: str,
                boot: KindBoot | None = None) -> list[str]:
    out = [f"# {kind}: {why}"]
    if plan.mode == "proxy":
        return out + _proxy_lines(plan, kind, file, extra, boot)
    for tags in _kind_tags(kind):
        out.append(_boot_line([*extra, *tags], file, plan.server_ip))
    return out


def _proxy_lines(plan: Plan, kind: str, file: str, extra: list[str], boot: KindBoot | None) -> list[str]:
    """proxyDHCP: dnsmasq answers PXE clients through pxe-service, per client system type (its
    man page); a name with its suffix (pxelinux.0, snponly.efi) is used as it is. iPXE is a PXE
    client too: it gets the script URL as its service, for every system type iPXE is built for."""
    if kind == archtypes.HTTP_KIND:
        return ["# (dnsmasq's proxyDHCP answers PXE clients only: UEFI HTTP boot needs the site's "
                "DHCP server to send this URL)"]
    if kind == "ipxe":
        codes = sorted({c for b in plan.boots for c in b.arch_codes if b.kind != archtypes.HTTP_KIND} | {0})
        tags = [*extra, "ipxe"]
    else:
        codes = list(boot.arch_codes if boot else next((b.arch_codes for b in plan.boots if b.kind == kind), ()))
        tags = [*extra, "!ipxe"]
    t = ",".join(f"tag:{x}" for x in tags)
    server = "" if file.startswith(("http://", "https://")) else f",{plan.server_ip}"
    return [f'pxe-service={t},{_CSA.get(code, str(code))},"pxetui {kind}",{file}{server}' for code in codes]
