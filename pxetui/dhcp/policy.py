"""Boot policy: which boot file (or none) a client gets, and why. No packets here.

The server describes the client (`ClientFacts`), the policy answers with a `BootChoice`; the
same answer serves full DHCP, proxyDHCP and the port-4011 exchange.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pxetui import archtypes
from pxetui.bootfiles import UEFI_IPXE, is_ipxe_binary
from pxetui.config import Config

# The common guides' TFTP layouts, most specific first.
DEFAULT_FILES: dict[str, tuple[str, ...]] = {
    "bios": ("pxelinux.0", "lpxelinux.0", "undionly.kpxe", "bios/pxelinux.0"),
    # shim first: Secure Boot machines need it, and it finds grubx64.efi from `file` (docs/FIELD-NOTES.md)
    "uefi64": ("shimx64.efi", "bootx64.efi", "grubx64.efi", "grubnetx64.efi", "ipxe.efi",
               "snponly.efi", "efi64/syslinux.efi"),
    "uefi32": ("bootia32.efi", "grubia32.efi", "ipxe-i386.efi", "efi32/syslinux.efi"),
    "arm64": ("shimaa64.efi", "bootaa64.efi", "grubaa64.efi", "ipxe-arm64.efi", "snponly-arm64.efi"),
}
# docs/FIELD-NOTES.md: GRUB 2.06 under proxyDHCP reads only the router's ACK and looks for grub.cfg on
# the wrong server, so under proxyDHCP UEFI clients chain iPXE when it is there.
PROXY_UEFI_FIRST = UEFI_IPXE
BOOT_ONCE_GRACE = 120.0  # one boot = several DHCP exchanges (DHCP, 4011, iPXE's own DHCP)


@dataclass(slots=True)
class ClientFacts:
    mac: str
    arch: int | None
    vendor_class: str | None
    ipxe: bool


@dataclass(slots=True)
class BootChoice:
    kind: str  # a BOOT_KINDS name, "local" (boot from disk) or "none" (not a network boot)
    boot_file: str | None
    reason: str
    vendor_class: str | None = None  # option 60 to send back: PXEClient / HTTPClient

    @property
    def local(self) -> bool:
        return self.kind == "local"


def client_kind(facts: ClientFacts) -> str | None:
    """The boot kind, or None for a client that is not network booting (an OS's dhclient)."""
    if archtypes.is_http_client(facts.vendor_class):
        return archtypes.HTTP_KIND
    if facts.ipxe:
        return "ipxe"
    if facts.arch is not None:
        return archtypes.boot_kind(facts.arch)
    if (facts.vendor_class or "").startswith(archtypes.PXE_CLIENT):
        return "bios"  # a PXE 2.x ROM that predates option 93
    return None


def is_url(name: str) -> bool:
    return name.startswith(("http://", "https://"))


class BootPolicy:
    def __init__(self, cfg: Config, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                 proxy: bool = False) -> None:
        self.cfg = cfg
        self.proxy = proxy
        self.overrides: dict[str, dict[str, Any]] = {}
        self.set_overrides(overrides or {})
        self.reservations = {r.mac: r for r in cfg.dhcp.reservations}
        self.allow = set(cfg.dhcp.allow)
        self.deny = set(cfg.dhcp.deny)
        self.local_until: dict[str, float] = {}  # MACs whose boot-once 'local' is being used
        self.defaults = self._defaults()

    # -- configuration --------------------------------------------------------------------
    def _defaults(self) -> dict[str, tuple[str, str]]:
        """kind -> (file or URL, where it came from)."""
        cfg, root, out = self.cfg, self.cfg.tftp_root, {}
        for kind, names in DEFAULT_FILES.items():
            if self.proxy and kind == "uefi64":
                names = PROXY_UEFI_FIRST + names
            found = next((n for n in names if (root / n).is_file()), None)
            if found:
                out[kind] = (found, f"default: found {found} in {root}")
            else:
                out[kind] = (names[0], f"default {names[0]} (not found in {root})")
        out["ipxe"] = (f"{cfg.http_base}/boot.ipxe", "default iPXE script URL")
        http_efi = next((n for n in UEFI_IPXE if (Path(cfg.http_root) / n).is_file()
                         or (root / n).is_file()), UEFI_IPXE[0])
        out[archtypes.HTTP_KIND] = (f"{cfg.http_base}/{http_efi}", "default HTTP boot URL")
        return out

    def set_proxy(self, proxy: bool) -> None:
        """Full mode turned proxyDHCP (another server appeared): the proxy defaults apply."""
        if proxy != self.proxy:
            self.proxy = proxy
            self.defaults = self._defaults()

    def set_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        """Per-MAC rows of pxetui.store.host_overrides (sqlite3.Row or dicts)."""
        self.overrides = {mac: dict(row) for mac, row in overrides.items()}

    # -- decisions ------------------------------------------------------------------------
    def admitted(self, mac: str) -> str | None:
        """None if `mac` may be served, else the reason it may not."""
        if mac in self.deny:
            return "denied MAC"
        if self.cfg.dhcp.allow_unknown or mac in self.allow or mac in self.reservations:
            return None
        return "unknown MAC (allow_unknown is off and it is not in the allow list)"

    def decide(self, facts: ClientFacts, now: float | None = None) -> tuple[BootChoice, bool]:
        """The choice, and whether a boot-once override was consumed (the caller clears it)."""
        now = time.time() if now is None else now
        kind = client_kind(facts)
        if kind is None:
            return BootChoice("none", None, "not a network-boot client"), False
        vc = archtypes.HTTP_CLIENT if kind == archtypes.HTTP_KIND else archtypes.PXE_CLIENT
        ov = self.overrides.get(facts.mac) or {}
        consumed = False
        if ov.get("boot_once") == "local":
            self.local_until[facts.mac] = now + BOOT_ONCE_GRACE
            ov["boot_once"] = None  # used now; the caller clears it in the database
            consumed = True
        if self.local_until.get(facts.mac, 0.0) > now:
            return BootChoice("local", None, "boot once: local disk", vc), consumed
        sticky = ov.get("boot_file")
        res = self.reservations.get(facts.mac)
        for name, why in ((sticky, "per-MAC override"), (res.boot_file if res else None, "reservation")):
            if not name:
                continue
            # docs/FIELD-NOTES.md: iPXE given an iPXE binary again chainloads forever; only a URL
            # (a script) is a sensible per-host file for a client already in iPXE.
            if kind == "ipxe" and is_ipxe_binary(name):
                continue
            return BootChoice(kind, self._full(kind, name), why, vc), consumed
        if kind == archtypes.HTTP_KIND and archtypes.menu_family(facts.arch) == "arm64":
            return BootChoice(kind, *self._arm64_http(), vc), consumed
        configured = self.cfg.dhcp.boot_files.get(kind)
        if configured:
            return BootChoice(kind, self._full(kind, configured), f"configured {kind}", vc), consumed
        if kind in self.defaults:
            name, why = self.defaults[kind]
            return BootChoice(kind, name, why, vc), consumed
        return BootChoice(kind, None, f"arch {facts.arch} has no boot file kind", vc), consumed

    def _arm64_http(self) -> tuple[str, str]:
        """ARM64 UEFI HTTP boot (option 93 = 19): the arm64 boot file (`dhcp.boot_files.arm64`,
        else its default, Debian's signed shim) as a URL on our HTTP server. The http64 URL is
        an x64 binary, and Debian's ipxe package has no arm64 build (docs/FIELD-NOTES.md
        "ARM64 UEFI")."""
        configured = self.cfg.dhcp.boot_files.get("arm64")
        name, why = (configured, "configured arm64") if configured else self.defaults["arm64"]
        return self._full(archtypes.HTTP_KIND, name), f"{why}, over HTTP"

    def _full(self, kind: str, name: str) -> str:
        """UEFI HTTP boot needs a full URL (docs/FIELD-NOTES.md): make a bare name one. (iPXE can
        fetch a bare name over TFTP, so an `ipxe` file is left as given.)"""
        if kind == archtypes.HTTP_KIND and not is_url(name):
            return f"{self.cfg.http_base}/{name.lstrip('/')}"
        return name
