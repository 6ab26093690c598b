"""Which source answers which URL (boot policy, no HTTP framing here).

  /<path>                                  a file under cfg.http_root, else a virtual provider
                                           (generated menus, imported ISOs: iso/<name>/<file>,
                                           iso/<name>.iso)
  /boot.ipxe?mac=${net0/mac}&arch=${buildarch}&platform=${platform}
                                           the per-client iPXE script (no query: by client IP)
  /callback/<token>/<stage>?entry=..       a milestone the script (or the booted system)
                                           reports; counts only with this boot's callback token
                                           and from the machine's own address
  /seed/<token>/<mac-or-entry>/<file>      autoinstall / preseed / kickstart seeds, only with
                                           this boot's seed token

Who asks is attributed by source address (pxetui.attribution), never by `?mac=`: a claimed MAC
that disagrees is ignored, and one that cannot be checked only picks the per-MAC default of
boot.ipxe. Tokens: pxetui.tokens; why: docs/SECURITY.md "Callbacks and seeds". A URL without a
token (an old menu, or a host on the LAN trying its luck) is 403 and an Alert, one per source
per interval.

A real file in the root wins over a generated one (issue 6: an existing tree is served as it
is), so boot.ipxe and seeds are a Provider placed first among the virtual ones.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from pxetui import attribution, tokens
from pxetui.config import Config, normalize_mac
from pxetui.digits import ascii_int
from pxetui.events import Alert, BootCallback, Event, Log
from pxetui.files import Client, Forbidden, Provider, Resolver, Source, virtual
from pxetui.library import provider as library

_STAGE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_SEED_PART = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
REPORT_INTERVAL = 10.0  # seconds between two alerts of one kind about one source
REPORT_SOURCES = 32  # sources alerted on per kind and interval; past that they fold into one
READ_METHODS = ("GET", "HEAD")  # what every path answers
SEED_METHODS = ("GET", "HEAD", "POST")  # seed URLs: see Router.methods

# iPXE ${buildarch} + ${platform} -> DHCP option 93 (RFC 4578, docs/FIELD-NOTES.md "Option 93").
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
    if arch.isascii() and arch.isdigit():  # a number; too long or over 16 bits (option 93): unknown
        value = ascii_int(arch, 5)
        return value if value is not None and value <= 0xFFFF else None
    a = arch.lower()
    return _IPXE_ARCH.get((a, (platform or _DEFAULT_PLATFORM.get(a, "efi")).lower()))


def _mac_or_none(text: str) -> str | None:
    try:
        return normalize_mac(text)
    except ValueError:
        return None


class TokenCheck(Protocol):
    def verify(self, token: str, purpose: str) -> tokens.Grant | None: ...


class Refusals:
    """Refused callbacks and seeds as Alerts (key `<kind>:<ip>`): at most one per kind and
    source per REPORT_INTERVAL, with the number of refusals since the last one; past
    REPORT_SOURCES sources of one kind in an interval (a spoofed flood) the rest fold into one
    alert `<kind>:many`, so an attack never floods the event stream."""

    MAX_KEYS = 4096

    def __init__(self, emit: Callable[[Event], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.emit, self.clock = emit, clock
        self._last: dict[tuple[str, str], list[float]] = {}  # (kind, ip) -> [last alert, refused since]
        self._budget: dict[str, list[float]] = {}  # kind -> [interval start, sources alerted]

    def report(self, kind: str, ip: str | None, message: str, alert: bool = True) -> None:
        self._report(kind, ip, ip or "?", message, alert)

    def _report(self, kind: str, ip: str | None, who: str, message: str, alert: bool) -> None:
        now = self.clock()
        st = self._last.get((kind, who))
        if st is not None and now - st[0] < REPORT_INTERVAL:
            st[1] += 1
            return
        if st is None and who != "many":
            budget = self._budget.setdefault(kind, [now, 0])
            if now - budget[0] >= REPORT_INTERVAL:
                budget[0], budget[1] = now, 0
            budget[1] += 1
            if budget[1] > REPORT_SOURCES:
                self._report(kind, None, "many", f"many hosts refused like this; latest {message}", alert)
                return
        since = int(st[1]) if st is not None else 0
        if len(self._last) >= self.MAX_KEYS:
            self._last = {k: v for k, v in self._last.items() if now - v[0] < REPORT_INTERVAL}
        self._last[(kind, who)] = [now, 0]
        if since:
            message += f" ({since} more since the last alert)"
        if alert:
            self.emit(Alert(service="http", ip=ip, key=f"{kind}:{who}", severity="warning", message=message))
        else:
            self.emit(Log(service="http", ip=ip, level_name="info", message=message))

    def refuse(self, kind: str, ip: str | None, path: str, why: str) -> Forbidden:
        """Report and return the 403 to raise."""
        self.report(kind, ip, f"{ip or '?'}: {path[:80]} refused: {why} (docs/SECURITY.md)")
        return Forbidden(path, why)


class BootFiles:
    """boot.ipxe and seed/<token>/<mac-or-entry>/<file>, rendered by the menu library per client."""

    def __init__(self, cfg: Config, boot: ModuleType | Any, check: TokenCheck, refusals: Refusals) -> None:
        """`boot` renders (ipxe_script, seed_file): pxetui.library.provider, or a test's stand-in."""
        self.cfg, self.boot, self.check, self.refusals = cfg, boot, check, refusals

    def lookup(self, path: str, client: Client) -> Source | None:
        if path == "boot.ipxe":
            try:
                text = self.boot.ipxe_script(self.cfg, client.mac, client.arch, client.ip)
            except sqlite3.Error as exc:  # the menu lives in the state database
                raise Unavailable(f"boot menus unavailable: state database: {exc}") from exc
            return virtual("boot.ipxe", text.encode("utf-8"))
        if path.startswith("seed/"):
            return self._seed(path, client)
        return None

    def _seed(self, path: str, client: Client) -> Source | None:
        parts = path.split("/")
        if not all(_SEED_PART.match(p) for p in parts[1:]):
            return None
        if len(parts) == 3:
            raise self.refusals.refuse("untokened", client.ip, path, "a seed URL without a per-boot token")
        if len(parts) != 4:
            return None
        token, key, name = parts[1:]
        grant = self.check.verify(token, "seed") or self.check.verify(token, "answer")
        if grant is None:
            raise self.refusals.refuse("badtoken", client.ip, f"seed/{key}/{name}",
                                       "the seed token is unknown, expired or from an earlier boot")
        if grant.purpose == "answer" and (client.ip != grant.ip or client.mac != grant.mac):
            # Option 250 went out in a broadcast reply that every host on the segment hears
            # (pxetui/dhcp/answer.py): its token serves only the address it was given with,
            # while the wire says that address is the token's machine (docs/SECURITY.md).
            who = f"it is {client.mac}" if client.mac else "no lease of ours, not on our segment"
            raise self.refusals.refuse("misattributed", client.ip, f"seed/{key}/{name}",
                                       f"the answer token is {grant.mac}'s for {grant.ip}, and this "
                                       f"address is not ({who})")
        mac = _mac_or_none(key)
        if mac is not None and mac != grant.mac:
            raise self.refusals.refuse("misattributed", client.ip, f"seed/{key}/{name}",
                                       f"a seed of {mac} asked with the token of {grant.mac}")
        # By MAC: the seed for that machine. By entry: `<entry>/<file>` names the entry's seed.
        try:
            data = self.boot.seed_file(self.cfg, mac, name if mac else f"{key}/{name}")
        except sqlite3.Error as exc:
            raise Unavailable(f"seeds unavailable: state database: {exc}") from exc
        # Named without the token: the name goes into transfer events and the client's file list.
        return None if data is None else virtual(f"seed/{key}/{name}", data)


class Router:
    def __init__(self, cfg: Config, emit: Callable[[Event], None],
                 log: Callable[[str, str], None] | None = None,
                 boot: ModuleType | Any | None = None,
                 attribute: Callable[[str | None], str | None] | None = None,
                 check: TokenCheck | None = None) -> None:
        """`boot` is the menu library (ipxe_script, seed_file, virtual_providers); by default
        pxetui.library.provider. `attribute` (IP -> MAC) and `check` (token verification)
        default to the state dir's."""
        self.cfg, self.emit = cfg, emit
        self.log = log or (lambda msg, level: None)
        self.boot = boot if boot is not None else library
        self.attribute = attribute or attribution.for_config(cfg).mac_for
        self.check: TokenCheck = check or tokens.for_config(cfg)
        self.refusals = Refusals(emit)
        self.resolver = self._build()

    # -- (re)loading ---------------------------------------------------------------------
    def _build(self) -> Resolver:
        providers: list[Provider] = [BootFiles(self.cfg, self.boot, self.check, self.refusals)]
        try:
            providers.extend(self.boot.virtual_providers(self.cfg))
        except Exception as exc:  # noqa: BLE001 - a bad library must not stop the disk files
            self.log(f"http: generated menus and ISOs unavailable: {exc}", "error")
        return Resolver(self.cfg.http_root, providers)

    def reload(self) -> None:
        """SIGHUP: menus or the ISO library changed; providers re-read the state directory."""
        self.resolver = self._build()

    # -- clients -------------------------------------------------------------------------
    def identify(self, ip: str, query: dict[str, str]) -> Client:
        """The machine behind `ip` as the wire says (neighbour table, our leases), and the arch
        from the query (iPXE fills it in). `?mac=` decides nothing here: a claim that disagrees
        is ignored, and a request we cannot attribute has no MAC, so its transfers are never
        put on another machine's record (docs/SECURITY.md). The arch is never remembered: an
        address can pass to another machine, and a wrong arch would mean a wrong menu."""
        claimed, arch = self._from_query(query)
        mac = self.attribute(ip)
        if claimed is not None and mac is None:
            self.refusals.report("claimed", ip, f"{ip} says it is {claimed}, which its address cannot "
                                 "confirm (no lease of ours, not on our segment): treated as a claim only",
                                 alert=False)
        return Client(ip=ip, mac=mac, arch=arch)

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
    @staticmethod
    def methods(path: str) -> tuple[str, ...]:
        """The methods `path` answers. Proxmox's automated installer POSTs its system
        information (JSON) to its answer URL and takes the answer from the response
        (docs/FIELD-NOTES.md, "Proxmox's answer URL"), so a seed URL answers POST as GET."""
        return SEED_METHODS if path.lstrip("/").startswith("seed/") else READ_METHODS

    def route(self, path: str, query: dict[str, str], client: Client, method: str = "GET") -> Routed:
        """Raises files.NotFound / files.Forbidden, BadRequest or Unavailable."""
        rel = path.lstrip("/")
        if rel.startswith("callback/"):
            return self._callback(rel[len("callback/"):], query, client, report=method == "GET")
        if rel == "boot.ipxe":
            # Only what this request says: with no query the library's script asks iPXE for its
            # MAC and build arch and chains back. The claimed MAC picks the menu only when the
            # address cannot be attributed; the library mints tokens for attributed MACs only.
            mac, arch = self._from_query(query)
            client = Client(ip=client.ip, mac=mac, arch=arch)
        src = self.resolver.resolve(path, client)
        # Generated per request (menus carry the asking machine's tokens): never cached.
        return Routed(src, dynamic=src.origin == "virtual")

    def _callback(self, rest: str, query: dict[str, str], client: Client, report: bool) -> Routed:
        parts = rest.split("/")
        stage = parts[-1]
        if not _STAGE.match(stage) or len(parts) > 2:
            raise BadRequest(f"callback stage {rest[:40]!r} is not a word of 1..32 letters, digits, '_-.'")
        where = f"callback/{stage}"
        if len(parts) == 1:
            raise self.refusals.refuse("untokened", client.ip, where, "a callback without a per-boot token")
        grant = self.check.verify(parts[0], "callback")
        if grant is None:
            raise self.refusals.refuse("badtoken", client.ip, where,
                                       "the callback token is unknown, expired or from an earlier boot")
        sender = self.attribute(client.ip)
        if sender != grant.mac:
            who = f"it is {sender}" if sender else "no lease of ours, not on our segment"
            raise self.refusals.refuse("misattributed", client.ip, where,
                                       f"the token is {grant.mac}'s but this address is not ({who})")
        entry = query.get("entry") or None
        if report:  # a HEAD (a probe, a link checker) is not the machine booting
            self.emit(BootCallback(stage=stage, mac=grant.mac, ip=client.ip,
                                   entry=entry[:200] if entry else None,
                                   detail=query.get("detail", "")[:200]))
        return Routed(virtual("callback", b"ok\n"), dynamic=True, quiet=True)
