"""Which source answers which URL (boot policy, no HTTP framing here).

  /<path>                                  a file under cfg.http_root, else a virtual provider
                                           (generated menus, imported ISOs: iso/<name>/<file>,
                                           iso/<name>.iso)
  /boot.ipxe?mac=${net0/mac}&arch=${buildarch}&platform=${platform}
                                           the per-client iPXE script (no query: by client IP)
  /callback/<stage>?mac=..&entry=..        a milestone the script reports just before `boot`
  /seed/<mac-or-entry>/<file>              autoinstall / preseed / kickstart seeds

A real file in the root wins over a generated one (issue 6: an existing tree is served as it
is), so boot.ipxe and seeds are a Provider placed first among the virtual ones.
"""

from __future__ import annotations

import importlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pxetui.config import Config, normalize_mac
from pxetui.events import BootCallback, Event
from pxetui.files import Client, Provider, Resolver, Source, virtual

BOOT_MODULE = "pxetui.library.provider"
_STAGE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_SEED_PART = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_REMEMBER = 4096  # clients whose MAC/arch we keep by IP (a bounded LRU)

# iPXE ${buildarch} + ${platform} -> DHCP option 93 (RFC 4578, REFERENCE.md "Option 93").
# A BIOS iPXE (undionly.kpxe) is built for i386; EFI builds are x86_64/arm64/...
_IPXE_ARCH: dict[tuple[str, str], int] = {
    ("i386", "pcbios"): 0, ("x86_64", "pcbios"): 0,
    ("i386", "efi"): 6, ("x86_64", "efi"): 7,
    ("arm32", "efi"): 10, ("arm64", "efi"): 11,
    ("riscv32", "efi"): 25, ("riscv64", "efi"): 27, ("loong64", "efi"): 39,
}
_DEFAULT_PLATFORM = {"i386": "pcbios"}  # every other build arch is EFI in practice


class BadRequest(ValueError):
    """The URL is understood but its parameters are wrong (400)."""


class Unavailable(RuntimeError):
    """The boot menus cannot be produced right now (503)."""


@dataclass(frozen=True)
class Routed:
    source: Source
    dynamic: bool = False  # generated per request: never cached
    quiet: bool = False  # not a transfer (callbacks): no Transfer* events


def arch_code(arch: str | None, platform: str | None = None) -> int | None:
    """Option 93 value from `arch=7` or from iPXE's `arch=${buildarch}&platform=${platform}`."""
    if not arch:
        return None
    if arch.isdigit():
        value = int(arch)
        return value if value <= 0xFFFF else None
    a = arch.lower()
    return _IPXE_ARCH.get((a, (platform or _DEFAULT_PLATFORM.get(a, "efi")).lower()))


def _mac_or_none(text: str) -> str | None:
    try:
        return normalize_mac(text)
    except ValueError:
        return None


class BootFiles:
    """boot.ipxe and seed/<mac-or-entry>/<file>, rendered by the menu library per client."""

    def __init__(self, cfg: Config, boot: ModuleType | Any) -> None:
        self.cfg, self.boot = cfg, boot

    def lookup(self, path: str, client: Client) -> Source | None:
        if path == "boot.ipxe":
            if self.boot is None:
                raise Unavailable(f"boot menus unavailable: {BOOT_MODULE} could not be loaded")
            text = self.boot.ipxe_script(self.cfg, client.mac, client.arch, client.ip)
            return virtual("boot.ipxe", text.encode("utf-8"))
        if path.startswith("seed/"):
            parts = path.split("/")
            if len(parts) != 3 or not all(_SEED_PART.match(p) for p in parts[1:]):
                return None
            if self.boot is None:
                raise Unavailable(f"seeds unavailable: {BOOT_MODULE} could not be loaded")
            key, name = parts[1], parts[2]
            mac = _mac_or_none(key)
            # By MAC: the seed for that machine. By entry: `<entry>/<file>` names the entry's seed.
            data = self.boot.seed_file(self.cfg, mac, name if mac else f"{key}/{name}")
            return None if data is None else virtual(path, data)
        return None


class Router:
    def __init__(self, cfg: Config, emit: Callable[[Event], None],
                 log: Callable[[str, str], None] | None = None,
                 boot: ModuleType | Any | None = None) -> None:
        """`boot` is the menu library (ipxe_script, seed_file, virtual_providers); by default
        pxetui.library.provider, loaded lazily so a broken library never stops file serving."""
        self.cfg, self.emit = cfg, emit
        self.log = log or (lambda msg, level: None)
        self._boot_given = boot
        self._seen: OrderedDict[str, str] = OrderedDict()  # IP -> MAC, most recent last
        self.resolver = self._build()

    # -- (re)loading ---------------------------------------------------------------------
    def _load_boot(self) -> ModuleType | Any | None:
        if self._boot_given is not None:
            return self._boot_given
        try:
            return importlib.import_module(BOOT_MODULE)
        except Exception as exc:  # noqa: BLE001 - any import failure: serve files anyway
            self.log(f"http: boot menus disabled: cannot import {BOOT_MODULE}: {exc}", "error")
            return None

    def _build(self) -> Resolver:
        boot = self._load_boot()
        providers: list[Provider] = [BootFiles(self.cfg, boot)]
        if boot is not None:
            try:
                providers.extend(boot.virtual_providers(self.cfg))
            except Exception as exc:  # noqa: BLE001 - a bad library must not stop the disk files
                self.log(f"http: generated menus and ISOs unavailable: {exc}", "error")
        return Resolver(self.cfg.http_root, providers)

    def reload(self) -> None:
        """SIGHUP: menus or the ISO library changed; providers re-read the state directory."""
        self.resolver = self._build()

    # -- clients -------------------------------------------------------------------------
    def identify(self, ip: str, query: dict[str, str]) -> Client:
        """MAC and arch from the query (iPXE fills them in). A request without `mac=` (a kernel
        named in the script) gets the MAC this IP gave before, so its transfer is attributed to
        the machine; the arch is never remembered, since an address can pass to another machine
        and a wrong arch would mean a wrong menu."""
        mac, arch = self._from_query(query)
        if mac is not None:
            self._seen.pop(ip, None)
            self._seen[ip] = mac
            while len(self._seen) > _REMEMBER:
                self._seen.popitem(last=False)
        return Client(ip=ip, mac=mac or self._seen.get(ip), arch=arch)

    @staticmethod
    def _from_query(query: dict[str, str]) -> tuple[str | None, int | None]:
        raw_mac = query.get("mac", "")
        mac = None
        if raw_mac:  # empty when iPXE's ${net0/mac} is unset
            try:
                mac = normalize_mac(raw_mac)
            except ValueError as exc:
                raise BadRequest(f"mac: {exc}") from None
        return mac, arch_code(query.get("arch"), query.get("platform"))

    # -- routing -------------------------------------------------------------------------
    def route(self, path: str, query: dict[str, str], client: Client, method: str = "GET") -> Routed:
        """Raises files.NotFound / files.Forbidden, BadRequest or Unavailable."""
        rel = path.lstrip("/")
        if rel.startswith("callback/"):
            return self._callback(rel[len("callback/"):], query, client, report=method == "GET")
        if rel == "boot.ipxe":
            # Only what this request says: with no query the library's script asks iPXE for its
            # MAC and build arch and chains back, rather than trusting what an IP said before.
            mac, arch = self._from_query(query)
            client = Client(ip=client.ip, mac=mac, arch=arch)
        src = self.resolver.resolve(path, client)
        dynamic = src.origin == "virtual" and (src.name == "boot.ipxe" or src.name.startswith("seed/"))
        return Routed(src, dynamic=dynamic)

    def _callback(self, stage: str, query: dict[str, str], client: Client, report: bool) -> Routed:
        if not _STAGE.match(stage):
            raise BadRequest(f"callback stage {stage[:40]!r} is not a word of 1..32 letters, digits, '_-.'")
        entry = query.get("entry") or None
        if report:  # a HEAD (a probe, a link checker) is not the machine booting
            self.emit(BootCallback(stage=stage, mac=client.mac, ip=client.ip,
                                   entry=entry[:200] if entry else None,
                                   detail=query.get("detail", "")[:200]))
        return Routed(virtual("callback", b"ok\n"), dynamic=True, quiet=True)
