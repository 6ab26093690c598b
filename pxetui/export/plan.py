"""What an exported DHCP server must do, decided once from pxetui's config and state.

Every renderer (dnsmasq, Kea, ISC dhcpd) draws from one `Plan`, and the plan asks pxetui's own
boot policy (pxetui.dhcp.policy) which file each kind of client and each host gets, so an
export says what pxetui would answer, not a second opinion. Option 93 codes come from
pxetui.archtypes. No file is written here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pxetui import __version__, archtypes
from pxetui.bootfiles import is_ipxe_binary
from pxetui.config import BOOT_KINDS, Config, parse_range
from pxetui.dhcp.policy import BootPolicy, ClientFacts, is_url
from pxetui.loaders import Loaders

MODES = ("full", "proxy")
_NOBODY = "00:00:00:00:00:00"  # a MAC no reservation or override names: the kind's default


@dataclass(frozen=True)
class KindBoot:
    """One kind of client (config `dhcp.boot_files` key) and the file pxetui gives it."""

    kind: str
    file: str
    reason: str  # the policy's: "configured uefi64", "default: found ... in ..."
    arch_codes: tuple[int, ...]  # option 93 values that ask for this kind (RFC 4578)

    @property
    def url(self) -> bool:
        return is_url(self.file)


@dataclass(frozen=True)
class Pool:
    network: ipaddress.IPv4Network
    start: str
    end: str
    router: str | None
    relayed: bool  # reached through a relay agent's giaddr (RFC 3046), not on the interface


@dataclass
class Host:
    mac: str
    ip: str | None
    hostname: str | None
    files: dict[str, str]  # kind -> file, only where this host differs from the kind's default
    source: str  # "reservation", "per-MAC override" or "allow list"
    # let in when dhcp.allow_unknown is false (a reservation or dhcp.allow; an override alone
    # does not admit a MAC: BootPolicy.admitted)
    admitted: bool = True
    notes: list[str] = field(default_factory=list)  # what has no equivalent elsewhere


@dataclass
class Plan:
    interface: str
    server_ip: str
    network: ipaddress.IPv4Network
    mode: str  # full | proxy
    pools: list[Pool]
    dns: list[str]
    domain: str | None
    lease_time: int
    boots: list[KindBoot]
    hosts: list[Host]
    deny: list[str]
    allow_unknown: bool
    tftp_root: str
    http_base: str
    notes: list[str]  # comments every format carries (what stays with pxetui)
    copy_loaders: dict[str, str]  # boot file -> where pxetui serves it from (not in tftp_root)
    version: str = __version__

    def boot(self, kind: str) -> KindBoot | None:
        return next((b for b in self.boots if b.kind == kind), None)

    def tftp_files(self) -> list[str]:
        """The TFTP names the exported server hands out (URLs are fetched from pxetui's HTTP)."""
        names = [b.file for b in self.boots] + [f for h in self.hosts for f in h.files.values()]
        return sorted({n for n in names if not is_url(n)})


def kind_codes(kind: str) -> tuple[int, ...]:
    """Option 93 codes whose clients pxetui treats as `kind` (pxetui.archtypes.boot_kind)."""
    if kind == "ipxe":
        return ()
    return tuple(c for c in sorted(archtypes.ARCHES) if archtypes.boot_kind(c) == kind)


def _facts(kind: str, mac: str) -> ClientFacts:
    """A client the policy classifies as `kind` (pxetui.dhcp.policy.client_kind)."""
    if kind == "ipxe":
        return ClientFacts(mac, 0, archtypes.PXE_CLIENT, True)
    if kind == archtypes.HTTP_KIND:
        return ClientFacts(mac, kind_codes(kind)[0], archtypes.HTTP_CLIENT, False)
    return ClientFacts(mac, kind_codes(kind)[0], archtypes.PXE_CLIENT, False)


def build(cfg: Config, overrides: Mapping[str, Mapping[str, Any]], mode: str,
          loaders: Loaders | None = None, isos: list[str] | None = None,
          mode_note: str | None = None) -> Plan:
    """The plan for `cfg` (resolved: server_ip set) with the state DB's host overrides."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: export full or proxy")
    policy = BootPolicy(cfg, overrides, proxy=mode == "proxy")
    boots = []
    for kind in BOOT_KINDS:
        choice, _ = policy.decide(_facts(kind, _NOBODY), now=0.0)
        if choice.boot_file:
            boots.append(KindBoot(kind, choice.boot_file, choice.reason, kind_codes(kind)))
    hosts = _hosts(cfg, overrides, policy, boots)
    pools = _pools(cfg, mode)
    notes = _notes(cfg, overrides, isos or [])
    if mode_note:
        notes.insert(0, mode_note)
    root = cfg.tftp_root
    copy: dict[str, str] = {}
    if loaders is not None:
        for name in {b.file for b in boots if not b.url} | {f for h in hosts for f in h.files.values()}:
            src = loaders.path(name)
            if src and not (root / name).is_file():
                copy[name] = src
    return Plan(interface=cfg.interface, server_ip=cfg.server_ip, network=cfg.network, mode=mode,
                pools=pools, dns=list(cfg.dhcp.dns), domain=cfg.dhcp.domain,
                lease_time=cfg.dhcp.lease_time, boots=boots, hosts=hosts, deny=list(cfg.dhcp.deny),
                allow_unknown=cfg.dhcp.allow_unknown, tftp_root=str(root), http_base=cfg.http_base,
                notes=notes, copy_loaders=dict(sorted(copy.items())))


def _pools(cfg: Config, mode: str) -> list[Pool]:
    if mode == "proxy":  # the site's server hands out the addresses
        return []
    start, end = parse_range(cfg.dhcp.range)
    out = [Pool(cfg.network, str(start), str(end), cfg.dhcp.router, relayed=False)]
    for p in cfg.dhcp.relay_pools:
        s, e = parse_range(p.range)
        out.append(Pool(ipaddress.IPv4Network(p.subnet), str(s), str(e), p.router, relayed=True))
    return out


def _hosts(cfg: Config, overrides: Mapping[str, Mapping[str, Any]], policy: BootPolicy,
           boots: list[KindBoot]) -> list[Host]:
    defaults = {b.kind: b.file for b in boots}
    out: dict[str, Host] = {}
    reserved = {r.mac: r for r in cfg.dhcp.reservations}
    macs = [*reserved, *(m for m in sorted(overrides) if m not in reserved),
            *(m for m in cfg.dhcp.allow if m not in reserved and m not in overrides)]
    for mac in macs:
        r = reserved.get(mac)
        ov = overrides.get(mac) or {}
        files: dict[str, str] = {}
        # boot_once is a one-shot the running pxetui clears: the export asks for the sticky
        # answer, so it is left out of what the policy sees.
        own = BootPolicy(cfg, {mac: {**ov, "boot_once": None}} if ov else {}, proxy=policy.proxy)
        for kind in BOOT_KINDS:
            choice, _ = own.decide(_facts(kind, mac), now=0.0)
            if choice.boot_file and choice.boot_file != defaults.get(kind):
                files[kind] = choice.boot_file
        source = "reservation" if r else ("per-MAC override" if ov else "allow list")
        admitted = policy.admitted(mac) is None and (r is not None or mac in cfg.dhcp.allow)
        host = Host(mac, r.ip if r else None, r.hostname if r else None, files, source, admitted)
        if ov.get("boot_once"):
            host.notes.append(f"boot once {ov['boot_once']!r} (pxetui clears it after one boot; "
                              "no equivalent)")
        if ov.get("entry"):
            host.notes.append(f"default menu entry {ov['entry']!r}: in pxetui's per-request "
                              "menus only")
        if any(is_ipxe_binary(f) for f in files.values()):
            host.notes.append("its iPXE binary is not handed to iPXE itself (no chain loop)")
        if mac not in cfg.dhcp.deny:
            out[mac] = host
    return list(out.values())


def _notes(cfg: Config, overrides: Mapping[str, Mapping[str, Any]], isos: list[str]) -> list[str]:
    notes = [
        f"iPXE scripts are rendered per request by pxetui's HTTP service ({cfg.http_base}/"
        "boot.ipxe): its menus, per-MAC defaults and callback tokens have no equivalent here; keep "
        "`pxetui serve --dhcp off` running for them.",
        "PXELINUX and GRUB menus (pxelinux.cfg/default, grub/grub.cfg) are generated per request "
        "by pxetui's TFTP service; a TFTP server of its own serves only real files, so hand "
        "clients iPXE (its script comes from pxetui's HTTP) or write those menus out yourself.",
    ]
    if isos:
        notes.append("files inside imported ISOs are served from their extents inside the .iso by "
                     f"pxetui's HTTP: {', '.join(f'{cfg.http_base}/iso/{n}/' for n in isos)}; no "
                     "DHCP/TFTP server reads them, so keep pxetui's HTTP serving or extract them.")
    notes.append("dhcp.limits (per-MAC and new-offer rate limits, docs/SECURITY.md) have no "
                 "equivalent here.")
    if cfg.dhcp.probe_seconds:
        notes.append("pxetui probes for another DHCP server before serving (dhcp.probe_seconds); "
                     "this server will not.")
    return notes
