"""Typed configuration (TOML), validated on load; every error names the key and the problem.

Precedence: defaults (from the chosen interface) < config file < command line.
`load()` builds the raw tree, `Config.from_dict()` types and checks it, and `resolve()` fills
in what depends on the interface (server address, subnet, a default range).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pxetui.archtypes import HTTP_KIND, MENU_FAMILIES
from pxetui.netinfo import InterfaceInfo, check_interface, ipv6_addresses

DEFAULT_CONFIG = Path("/etc/pxetui/pxetui.toml")  # read when it exists and --config is not given

# `dhcp.boot_files` keys: a firmware family (pxetui.archtypes), UEFI HTTP boot, or iPXE.
BOOT_KINDS = (*MENU_FAMILIES, HTTP_KIND, "ipxe")
DHCP_MODES = ("auto", "full", "proxy", "off")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class ConfigError(ValueError):
    """One or more problems, each prefixed with the key it concerns."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def normalize_mac(value: str) -> str:
    mac = value.strip().lower().replace("-", ":")
    if not MAC_RE.match(mac):
        raise ValueError(f"{value!r} is not a MAC address (expected aa:bb:cc:dd:ee:ff)")
    return mac


@dataclass
class Reservation:
    mac: str
    ip: str | None = None
    hostname: str | None = None
    boot_file: str | None = None  # per-host boot file or URL


@dataclass
class RelayPool:
    """A pool served through a relay agent: chosen by giaddr (RFC 3046 / RFC 2131 4.3.1)."""

    subnet: str
    range: str
    router: str | None = None


@dataclass
class DhcpLimits:
    """Rate limits and caps of the DHCP server (docs/SECURITY.md, "DHCP on a network that is
    not ours"); the defaults hold a 1,000-client boot storm and 10,000 clients."""

    mac_rate: float = 10.0  # messages per second from one MAC (token bucket) ...
    mac_burst: int = 20  # ... and its burst
    mac_table: int = 16384  # MACs the per-MAC limit remembers (least recently seen forgotten)
    new_offers_per_second: float = 1000.0  # offers to MACs with no lease or offer yet ...
    new_offers_burst: int = 2000  # ... and their burst; excess DISCOVERs are dropped, counted
    max_offers: int = 8192  # offers not yet REQUESTed; the oldest is reclaimed past this
    offer_hold_seconds: float = 15.0  # an offered address is set aside this long


@dataclass
class DhcpConfig:
    mode: str = "auto"
    range: str = ""  # START-END; empty = a slice of the interface subnet
    router: str | None = None
    dns: list[str] = field(default_factory=list)
    domain: str | None = None
    lease_time: int = 3600
    probe_seconds: float = 3.0
    allow_unknown: bool = True
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    boot_files: dict[str, str] = field(default_factory=dict)
    reservations: list[Reservation] = field(default_factory=list)
    relay_pools: list[RelayPool] = field(default_factory=list)
    # full mode: seconds between probes for a DHCP server that appeared after start (0: only
    # listen for other servers' replies); one that answers turns us into proxyDHCP
    recheck_seconds: float = 60.0
    limits: DhcpLimits = field(default_factory=DhcpLimits)


@dataclass
class TftpConfig:
    enabled: bool = True
    root: str = ""  # empty = <state_dir>/tftp
    port: int = 69
    windowsize_max: int = 64
    blksize_max: int = 65464
    case_insensitive: bool = False
    uploads_dir: str = ""  # empty = uploads refused (TFTP error 2)
    # Limits (docs/SECURITY.md): what one host on the LAN can take.
    max_transfers: int = 1024  # at once, all TFTP processes together
    max_per_client: int = 8  # at once from one client address (pxelinux and firmware fetch one by one)
    idle_timeout: float = 30.0  # a silent client's transfer ends after this, whatever timeout it asked for
    oack_timeout: float = 5.0  # a client never heard from (no ACK of our OACK or block 1) is dropped after this
    pump_threads: int = 64  # C pump threads per TFTP process; lock-step transfers past them run in Python


@dataclass
class HttpConfig:
    enabled: bool = True
    root: str = ""  # empty = <state_dir>/http
    port: int = 80
    max_connections: int = 512
    header_timeout: float = 10.0  # a request head must arrive within this (slowloris cut-off)
    idle_timeout: float = 30.0  # keep-alive connections idle longer than this are closed
    # Per-boot callback and seed tokens live this long (docs/SECURITY.md, "Callbacks and seeds").
    token_ttl: float = 14400.0
    max_per_client: int = 16  # connections at once from one client address (more: 503)
    send_timeout: float = 60.0  # a client that reads nothing of a response for this long is cut
    min_rate: int = 1024  # bytes/s a response must move, averaged over min_rate_window (0: off)
    min_rate_window: float = 30.0  # seconds


@dataclass
class CaptureConfig:
    enabled: bool = True
    pcap: str = ""  # record DHCP traffic here when set
    all_boot_traffic: bool = False
    # The recording rotates (docs/SECURITY.md, "Bounded disk and memory"): a new file past
    # max_bytes and at every start, NAME.1.pcap ... older, at most `files` in all.
    max_bytes: int = 100 * 1024 * 1024
    files: int = 5


@dataclass
class TrackerConfig:
    stuck_seconds: float = 90.0
    # Bounded memory and disk (docs/SECURITY.md, "Bounded disk and memory"); the defaults hold
    # 10,000 clients.
    max_clients: int = 10000  # past this the least recently active client is forgotten
    idle_expiry: float = 7 * 86400.0  # seconds without activity before a client is forgotten
    history_days: float = 30.0  # recorded boots older than this are deleted
    max_boots_per_client: int = 50  # recorded boots kept per client
    max_files_per_client: int = 200  # file rows per boot; the oldest are dropped (and counted)
    max_events_per_client: int = 200  # events kept per boot for the diagnosis
    max_addresses_per_client: int = 4  # IP addresses mapped to one MAC


@dataclass
class LogConfig:
    """The engine's own log (`pxetui serve --log-file`; the UI's engine writes
    <state_dir>/engine.log): rotated by size, engine.log.1 ... engine.log.N older."""

    file: str = ""  # empty: stderr (journald rotates)
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 3
    # Info lines a second, at most (0: no limit); the rest is counted in one line a second.
    # Warnings and errors always go out. A storm's per-packet lines cost the engine CPU that
    # serving needs, and nobody reads 30,000 lines a second (pxetui/logfmt.py).
    rate: int = 500


@dataclass
class EventsConfig:
    # Events a service holds while its reader (the supervisor) is behind; serving never waits
    # for it. 100,000 is ~4 s of a 5,000 DORA/s storm (5 events per DORA), ~40 MB at worst.
    queue_max: int = 100_000
    # Events queued for one attached UI before the engine cuts it loose (it reattaches and gets
    # the state replayed).
    ui_queue_max: int = 20_000
    # Bytes the kernel holds of one UI's stream (the kernel doubles it for its bookkeeping): a
    # UI is sent at most this much per turn of the engine's loop (pxetui/supervisor.py).
    ui_send_buffer: int = 4 * 1024 * 1024
    # Per-packet events (DhcpPacket, BootDecision) a service makes a second, at most (0: no limit); beyond
    # them the packet is served and counted, its event never made: 1,000 DORA/s are watched
    # packet by packet, a storm above it costs the DHCP service no event work that nobody
    # could read (pxetui/emitter.py; the message counters stay exact, EventsDropped.packets).
    packet_rate: int = 4000


@dataclass
class SecurityConfig:
    # Services drop to this user once their sockets are open (docs/SECURITY.md); "nobody" when
    # it does not exist; "root" keeps every privilege (logged as a warning).
    user: str = "pxetui"


@dataclass
class MetricsConfig:
    # Prometheus text at GET /metrics from the engine's own fold, on a listener of its own
    # (pxetui/metrics_server.py). Off by default and on loopback: the counters say how many
    # machines boot and what fails, which a customer's LAN has no business reading
    # (docs/SECURITY.md, "Metrics").
    enabled: bool = False
    address: str = "127.0.0.1"  # a local address: 127.0.0.1, or the interface's for a LAN scraper
    port: int = 9419
    allow: list[str] = field(default_factory=lambda: ["127.0.0.0/8"])  # scrapers (CIDRs) let in
    max_connections: int = 8  # scrapes at once; more are closed (a LimitHit)


@dataclass
class Ipv6Config:
    # DHCPv6 (RFC 8415) with the boot options of RFC 5970, and TFTP/HTTP over IPv6, beside
    # IPv4 on the same interface (docs/IPV6.md). The server's address is the interface's first
    # global or ULA address; the pool is in its /64.
    enabled: bool = False
    mode: str = "full"  # full: IA_NA addresses and the boot URL; proxy: the boot URL only
    range: str = ""  # START-END inside the interface's /64; empty = <prefix>::1000-<prefix>::1fff
    lease_time: int = 3600  # preferred lifetime; valid is twice it
    rapid_commit: bool = True  # Solicit with option 14 gets the Reply at once (RFC 8415 §18.3.1)
    # Router advertisements (RFC 4861) with the on-link prefix and the M flag, for segments
    # without a router: an OS's DHCPv6 client starts on the M flag and routes the /64 on-link
    # by the prefix (OVMF's PXE boots on-link without one, docs/IPV6.md). "auto": only while no
    # other router advertises on the interface.
    router_advertisements: str = "auto"  # auto | on | off
    # Option 60 (RFC 5970 section 3.2): parameters sent with the boot-file URL; none by default.
    boot_file_params: list[str] = field(default_factory=list)


@dataclass
class LogsConfig:
    # Installer syslog and kernel netconsole receivers (docs/CLIENT-LOGS.md). Off by default:
    # a syslog port takes unauthenticated lines from any host on a customer's segment, and may
    # be the port of a collector already on this host; a field tech turns it on for the job.
    enabled: bool = False
    syslog_port: int = 514  # UDP, and TCP for Anaconda's inst.syslog (rsyslog forwards over TCP)
    syslog_tcp: bool = True
    netconsole_port: int = 6666  # the kernel's default target port
    menu_args: bool = True  # menu entries get their family's log arguments (an entry may opt out)
    rate: float = 200.0  # lines per second from one source address (token bucket) ...
    burst: int = 1000  # ... and its burst; lines past it are dropped and counted (a LimitHit)
    max_lines_per_client: int = 5000  # stored per MAC; the oldest go first
    max_line_bytes: int = 2048  # longer lines are cut there
    max_connections: int = 64  # syslog TCP connections at once
    idle_timeout: float = 3600.0  # a syslog TCP connection silent this long is closed


@dataclass
class Config:
    interface: str = ""
    state_dir: str = "/var/lib/pxetui"
    dhcp: DhcpConfig = field(default_factory=DhcpConfig)
    tftp: TftpConfig = field(default_factory=TftpConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    ipv6: Ipv6Config = field(default_factory=Ipv6Config)
    logs: LogsConfig = field(default_factory=LogsConfig)
    # Filled in by resolve(); not config-file keys.
    server_ip: str = ""
    netmask: str = ""
    mtu: int = 1500
    server_ip6: str = ""  # the interface's global/ULA IPv6 address, when ipv6.enabled
    prefix6: str = ""  # its /64, e.g. "fd99::/64"

    # -- paths ---------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def tftp_root(self) -> Path:
        return Path(self.tftp.root) if self.tftp.root else self.state_path / "tftp"

    @property
    def http_root(self) -> Path:
        return Path(self.http.root) if self.http.root else self.state_path / "http"

    @property
    def db_path(self) -> Path:
        return self.state_path / "pxetui.db"

    @property
    def tracker_db_path(self) -> Path:
        """The tracker's history: its own file, so its batched writes never hold the lock
        the DHCP service's lease commits wait for (docs/ARCHITECTURE.md, "The event path")."""
        return self.state_path / "tracker.db"

    @property
    def http_base(self) -> str:
        port = "" if self.http.port == 80 else f":{self.http.port}"
        return f"http://{self.server_ip}{port}"

    @property
    def http_base6(self) -> str:
        """The HTTP base URL over IPv6 (RFC 3986: the address in brackets)."""
        port = "" if self.http.port == 80 else f":{self.http.port}"
        return f"http://[{self.server_ip6}]{port}"

    def http_base_for(self, client_ip: str | None) -> str:
        """The base URL in the family the client came over: an IPv6 client gets IPv6 URLs."""
        if self.server_ip6 and client_ip and ":" in client_ip and not client_ip.startswith("::ffff:"):
            return self.http_base6
        return self.http_base

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Interface(f"{self.server_ip}/{self.netmask}").network

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Config:
        d = json.loads(text)
        extra = {k: d.pop(k) for k in RESOLVED if k in d}
        cfg = cls.from_dict(d)
        for k, v in extra.items():
            setattr(cfg, k, v)
        return cfg

    # -- typing and validation -----------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Config:
        problems: list[str] = []
        cfg = _build(cls, raw, "", problems)
        if not problems:
            _check(cfg, problems)
        if problems:
            raise ConfigError(problems)
        return cfg


RESOLVED = ("server_ip", "netmask", "mtu", "server_ip6", "prefix6")  # filled by resolve()


def _build(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    """Type-check `raw` against dataclass `cls`, collecting every problem with its key."""
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.') or 'config'}: expected a table")
        return cls()
    hints = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        f = hints.get(name)
        where = f"{prefix}{key}"
        if f is None or name in RESOLVED:
            problems.append(f"{where}: unknown key")
            continue
        kwargs[name] = _coerce(f.type, value, where, problems)
    return cls(**kwargs)


_NESTED: dict[str, type] = {}


def _coerce(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    t = str(tp)
    if t in _NESTED:
        return _build(_NESTED[t], value, where + ".", problems)
    if t.startswith("list[") and t[5:-1] in _NESTED:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list of tables")
            return []
        return [_build(_NESTED[t[5:-1]], v, f"{where}[{i}].", problems) for i, v in enumerate(value)]
    checks: dict[str, tuple[type | tuple[type, ...], str]] = {
        "str": (str, "a string"),
        "str | None": ((str, type(None)), "a string"),
        "int": (int, "an integer"),
        "float": ((int, float), "a number"),
        "bool": (bool, "true or false"),
        "list[str]": (list, "a list of strings"),
        "dict[str, str]": (dict, "a table of strings"),
    }
    want, what = checks.get(t, (object, "a value"))
    bad = not isinstance(value, want) or (t in ("int", "float") and isinstance(value, bool))
    if t == "list[str]" and not bad:
        bad = not all(isinstance(v, str) for v in value)
    if t == "dict[str, str]" and not bad:
        bad = not all(isinstance(v, str) for v in value.values())
    if bad:
        problems.append(f"{where}: expected {what}, got {value!r}")
        return None
    return float(value) if t == "float" else value


for _cls in (DhcpConfig, DhcpLimits, TftpConfig, HttpConfig, CaptureConfig, TrackerConfig, SecurityConfig,
             Reservation, RelayPool, EventsConfig, LogConfig, MetricsConfig, Ipv6Config, LogsConfig):
    _NESTED[_cls.__name__] = _cls


def parse_range(text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """'10.0.0.50-10.0.0.99' -> addresses; ValueError names what is wrong."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"{text!r} is not START-END")
    try:
        start, end = (ipaddress.IPv4Address(p.strip()) for p in parts)
    except ipaddress.AddressValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from exc
    if int(end) < int(start):
        raise ValueError(f"{start}-{end} ends before it starts")
    return start, end


def _ip(value: str, where: str, problems: list[str]) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ipaddress.AddressValueError:
        problems.append(f"{where}: {value!r} is not an IPv4 address")


def _check(cfg: Config, problems: list[str]) -> None:
    """Checks that need no interface."""
    d = cfg.dhcp
    if d.mode not in DHCP_MODES:
        problems.append(f"dhcp.mode: {d.mode!r} is not one of {', '.join(DHCP_MODES)}")
    if d.range:
        try:
            parse_range(d.range)
        except ValueError as exc:
            problems.append(f"dhcp.range: {exc}")
    if d.router:
        _ip(d.router, "dhcp.router", problems)
    for i, s in enumerate(d.dns):
        _ip(s, f"dhcp.dns[{i}]", problems)
    if not 60 <= d.lease_time <= 31536000:
        problems.append(f"dhcp.lease_time: {d.lease_time} is outside 60..31536000 seconds")
    if not 0 <= d.probe_seconds <= 30:
        problems.append(f"dhcp.probe_seconds: {d.probe_seconds} is outside 0..30")
    if not (d.recheck_seconds == 0 or 1 <= d.recheck_seconds <= 3600):
        problems.append(f"dhcp.recheck_seconds: {d.recheck_seconds} is neither 0 (off) nor 1..3600")
    _check_dhcp_limits(d.limits, problems)
    for key in ("allow", "deny"):
        macs = getattr(d, key)
        for i, m in enumerate(macs):
            try:
                macs[i] = normalize_mac(m)
            except ValueError as exc:
                problems.append(f"dhcp.{key}[{i}]: {exc}")
    for kind in d.boot_files:
        if kind not in BOOT_KINDS:
            problems.append(f"dhcp.boot_files.{kind}: unknown kind; use one of {', '.join(BOOT_KINDS)}")
    seen: dict[str, int] = {}
    for i, r in enumerate(d.reservations):
        try:
            r.mac = normalize_mac(r.mac)
        except ValueError as exc:
            problems.append(f"dhcp.reservations[{i}].mac: {exc}")
        if r.mac in seen:
            problems.append(f"dhcp.reservations[{i}].mac: {r.mac} is already reserved in [{seen[r.mac]}]")
        seen[r.mac] = i
        if r.ip:
            _ip(r.ip, f"dhcp.reservations[{i}].ip", problems)
    for i, p in enumerate(d.relay_pools):
        try:
            net = ipaddress.IPv4Network(p.subnet)
            s, e = parse_range(p.range)
            if s not in net or e not in net:
                problems.append(f"dhcp.relay_pools[{i}].range: {p.range} is outside {net}")
        except ValueError as exc:
            problems.append(f"dhcp.relay_pools[{i}]: {exc}")
    for key, port in (("tftp.port", cfg.tftp.port), ("http.port", cfg.http.port)):
        if not 1 <= port <= 65535:
            problems.append(f"{key}: {port} is not a port number (1..65535)")
    if not 1 <= cfg.tftp.windowsize_max <= 64:
        problems.append(f"tftp.windowsize_max: {cfg.tftp.windowsize_max} is outside 1..64")
    if not 8 <= cfg.tftp.blksize_max <= 65464:
        problems.append(f"tftp.blksize_max: {cfg.tftp.blksize_max} is outside 8..65464")
    if not 60 <= cfg.http.token_ttl <= 604800:
        problems.append(f"http.token_ttl: {cfg.http.token_ttl} is outside 60..604800 seconds")
    if not 1 <= cfg.http.max_connections <= 100000:
        problems.append(f"http.max_connections: {cfg.http.max_connections} is outside 1..100000")
    for key in ("header_timeout", "idle_timeout", "send_timeout", "min_rate_window"):
        if not 0 < getattr(cfg.http, key) <= 3600:
            problems.append(f"http.{key}: {getattr(cfg.http, key)} is outside 0..3600 seconds")
    _limits(cfg, problems)
    if cfg.tftp.uploads_dir and cfg.tftp.root:
        up, root = Path(cfg.tftp.uploads_dir).resolve(), Path(cfg.tftp.root).resolve()
        if up == root or root in up.parents:
            problems.append(f"tftp.uploads_dir: {up} is inside tftp.root; uploads must not overwrite served files")
    if cfg.tracker.stuck_seconds <= 0:
        problems.append(f"tracker.stuck_seconds: {cfg.tracker.stuck_seconds} must be positive")
    _check_bounds(cfg, problems)
    _check_metrics(cfg.metrics, problems)
    _check_ipv6(cfg.ipv6, problems)
    _check_logs(cfg.logs, problems)
    for key in ("queue_max", "ui_queue_max"):
        if not 100 <= getattr(cfg.events, key) <= 10_000_000:
            problems.append(f"events.{key}: {getattr(cfg.events, key)} is outside 100..10000000 events")
    if not 65536 <= cfg.events.ui_send_buffer <= 256 * 1024 * 1024:
        problems.append(f"events.ui_send_buffer: {cfg.events.ui_send_buffer} is outside 65536..268435456 bytes")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}\$?", cfg.security.user):
        problems.append(f"security.user: {cfg.security.user!r} is not a user name")


def _limits(cfg: Config, problems: list[str]) -> None:
    """The TFTP and HTTP limits (docs/SECURITY.md)."""
    t, h = cfg.tftp, cfg.http
    if not 1 <= t.max_transfers <= 100000:
        problems.append(f"tftp.max_transfers: {t.max_transfers} is outside 1..100000")
    elif not 1 <= t.max_per_client <= t.max_transfers:
        problems.append(f"tftp.max_per_client: {t.max_per_client} is outside 1..tftp.max_transfers ({t.max_transfers})")
    if not 1 <= t.idle_timeout <= 600:
        problems.append(f"tftp.idle_timeout: {t.idle_timeout} is outside 1..600 seconds")
    if not 0.5 <= t.oack_timeout <= 60:
        problems.append(f"tftp.oack_timeout: {t.oack_timeout} is outside 0.5..60 seconds")
    if not 0 <= t.pump_threads <= 1024:
        problems.append(f"tftp.pump_threads: {t.pump_threads} is outside 0..1024 (0: lock-step in Python only)")
    if 1 <= h.max_connections <= 100000 and not 1 <= h.max_per_client <= h.max_connections:
        problems.append(f"http.max_per_client: {h.max_per_client} is outside 1..http.max_connections ({h.max_connections})")
    if not 0 <= h.min_rate <= 1 << 30:
        problems.append(f"http.min_rate: {h.min_rate} is outside 0..1073741824 bytes/s (0: off)")


def parse_range6(text: str) -> tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]:
    """`START-END` of IPv6 addresses (the dash cannot be in an address), START <= END."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"{text!r}: expected START-END, e.g. fd99::1000-fd99::1fff")
    a, b = ipaddress.IPv6Address(start.strip()), ipaddress.IPv6Address(end.strip())
    if int(a) > int(b):
        raise ValueError(f"{text!r}: START is after END")
    return a, b


def _check_ipv6(v6: Ipv6Config, problems: list[str]) -> None:
    if v6.mode not in ("full", "proxy"):
        problems.append(f"ipv6.mode: {v6.mode!r} is not one of full, proxy")
    if v6.router_advertisements not in ("auto", "on", "off"):
        problems.append(f"ipv6.router_advertisements: {v6.router_advertisements!r} is not one of auto, on, off")
    if not 60 <= v6.lease_time <= 31_536_000:
        problems.append(f"ipv6.lease_time: {v6.lease_time} is outside 60..31536000 seconds")
    for i, p in enumerate(v6.boot_file_params):
        if not p or len(p.encode()) > 255:
            problems.append(f"ipv6.boot_file_params[{i}]: {len(p.encode())} bytes, 1..255 expected")
    if v6.range:
        try:
            parse_range6(v6.range)
        except ValueError as exc:
            problems.append(f"ipv6.range: {exc}")


def log_port_problems(syslog_port: int, netconsole_port: int, prefix: str = "logs.") -> list[str]:
    """What is wrong with a pair of log ports (the logs service's keys, or `watch`/`analyze`'s
    options: `prefix` names them)."""
    problems = [f"{prefix}{key}: {value} is not a port number (1..65535)"
                for key, value in (("syslog_port", syslog_port), ("netconsole_port", netconsole_port))
                if not 1 <= value <= 65535]
    if syslog_port == netconsole_port:
        problems.append(f"{prefix}netconsole_port: {netconsole_port} is also {prefix}syslog_port")
    return problems


def _check_logs(lg: LogsConfig, problems: list[str]) -> None:
    problems += log_port_problems(lg.syslog_port, lg.netconsole_port)
    for key, low, high, unit in (("rate", 0.1, 1_000_000, "lines/s"), ("burst", 1, 10_000_000, "lines"),
                                 ("max_lines_per_client", 10, 10_000_000, "lines"),
                                 ("max_line_bytes", 256, 65535, "bytes"),
                                 ("max_connections", 1, 10_000, "connections"),
                                 ("idle_timeout", 1, 86400, "seconds")):
        value = getattr(lg, key)
        if not low <= value <= high:
            problems.append(f"logs.{key}: {value} is outside {_num(low)}..{_num(high)} {unit}")


def _check_metrics(m: MetricsConfig, problems: list[str]) -> None:
    _ip(m.address, "metrics.address", problems)
    if not 1 <= m.port <= 65535:
        problems.append(f"metrics.port: {m.port} is outside 1..65535")
    if not 1 <= m.max_connections <= 1024:
        problems.append(f"metrics.max_connections: {m.max_connections} is outside 1..1024")
    for i, net in enumerate(m.allow):
        try:
            ipaddress.IPv4Network(net, strict=False)
        except ValueError as exc:
            problems.append(f"metrics.allow[{i}]: {exc} (an IPv4 address or CIDR, e.g. 10.0.0.5/32)")


def _check_bounds(cfg: Config, problems: list[str]) -> None:
    """Caps on memory and disk: tracker state, the engine log, the capture recording."""
    t, lg, cap = cfg.tracker, cfg.log, cfg.capture
    for key, value, low, high, unit in (
            ("tracker.max_clients", t.max_clients, 1, 10_000_000, "clients"),
            ("tracker.idle_expiry", t.idle_expiry, 60, 366 * 86400, "seconds"),
            ("tracker.history_days", t.history_days, 0.01, 3660, "days"),
            ("tracker.max_boots_per_client", t.max_boots_per_client, 1, 100_000, "boots"),
            ("tracker.max_files_per_client", t.max_files_per_client, 1, 100_000, "files"),
            ("tracker.max_events_per_client", t.max_events_per_client, 10, 100_000, "events"),
            ("tracker.max_addresses_per_client", t.max_addresses_per_client, 1, 1024, "addresses"),
            ("log.max_bytes", lg.max_bytes, 4096, 1 << 40, "bytes"),
            ("log.backups", lg.backups, 0, 1000, "files"),
            ("log.rate", lg.rate, 0, 10_000_000, "lines/s"),
            ("events.packet_rate", cfg.events.packet_rate, 0, 10_000_000, "events/s"),
            ("capture.max_bytes", cap.max_bytes, 1 << 20, 1 << 40, "bytes"),
            ("capture.files", cap.files, 1, 1000, "files")):
        if not low <= value <= high:
            problems.append(f"{key}: {value} is outside {_num(low)}..{_num(high)} {unit}")


def _num(x: float) -> str:
    return f"{x:.0f}" if x == int(x) else f"{x:g}"


def _check_dhcp_limits(lim: DhcpLimits, problems: list[str]) -> None:
    for key, low, high in (("mac_rate", 0.1, 10000), ("mac_burst", 1, 100000),
                           ("mac_table", 64, 10000000), ("new_offers_per_second", 1, 1000000),
                           ("new_offers_burst", 1, 1000000), ("max_offers", 1, 10000000),
                           ("offer_hold_seconds", 1, 300)):
        value = getattr(lim, key)
        if not low <= value <= high:
            problems.append(f"dhcp.limits.{key}: {value} is outside {low}..{high}")


def default_range(info: InterfaceInfo) -> str:
    """A slice of the interface's subnet that excludes the interface's own address.

    For a /24 at .1 that is .100-.199 (the common guides' choice); small subnets get what is left.
    """
    net = info.network
    assert net is not None and info.address
    own = ipaddress.IPv4Address(info.address)
    hosts = [h for h in net.hosts()]
    if net.num_addresses >= 256:
        base = int(net.network_address) + (int(own) - int(net.network_address)) // 256 * 256
        start, end = ipaddress.IPv4Address(base + 100), ipaddress.IPv4Address(base + 199)
        if start <= own <= end:
            start, end = ipaddress.IPv4Address(base + 10), ipaddress.IPv4Address(base + 99)
            if start <= own <= end:
                start, end = ipaddress.IPv4Address(base + 200), ipaddress.IPv4Address(base + 250)
        return f"{start}-{end}"
    free = [h for h in hosts if h != own]
    half = free[len(free) // 2 :] if len(free) > 4 else free
    return f"{half[0]}-{half[-1]}"


def resolve(cfg: Config, info: InterfaceInfo | None = None) -> Config:
    """Fill in what depends on the interface; raise ConfigError for what does not fit it."""
    if not cfg.interface:
        raise ConfigError(["interface: not set; name the interface to serve on (--interface IFACE)"])
    try:
        info = info or check_interface(cfg.interface)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from exc
    assert info.address and info.netmask
    cfg.server_ip, cfg.netmask, cfg.mtu = info.address, info.netmask, info.mtu
    net = info.network
    problems: list[str] = []
    if not cfg.dhcp.range:
        cfg.dhcp.range = default_range(info)
    else:
        start, end = parse_range(cfg.dhcp.range)
        for a in (start, end):
            if a not in net:
                problems.append(f"dhcp.range: {a} is outside {cfg.interface}'s subnet {net}")
                break
        else:
            own = ipaddress.IPv4Address(info.address)
            if start <= own <= end and int(end) == int(start):
                problems.append(f"dhcp.range: holds only {own}, {cfg.interface}'s own address")
    if cfg.dhcp.router and ipaddress.IPv4Address(cfg.dhcp.router) not in net:
        problems.append(f"dhcp.router: {cfg.dhcp.router} is outside {cfg.interface}'s subnet {net}")
    for i, r in enumerate(cfg.dhcp.reservations):
        if r.ip and ipaddress.IPv4Address(r.ip) not in net and not cfg.dhcp.relay_pools:
            problems.append(f"dhcp.reservations[{i}].ip: {r.ip} is outside {cfg.interface}'s subnet {net}")
    if cfg.ipv6.enabled:
        _resolve_ipv6(cfg, problems)
    if problems:
        raise ConfigError(problems)
    return cfg


def _resolve_ipv6(cfg: Config, problems: list[str]) -> None:
    """The interface's first global/ULA address and its /64; the pool inside that /64."""
    found = ipv6_addresses(cfg.interface)
    if not found:
        problems.append(f"ipv6.enabled: {cfg.interface} has no global or ULA IPv6 address; add one, "
                        f"e.g. `ip -6 addr add fd99::1/64 dev {cfg.interface}` (docs/IPV6.md)")
        return
    addr, plen = found[0]
    if plen != 64:
        problems.append(f"ipv6.enabled: {addr}/{plen} on {cfg.interface}: DHCPv6 addresses and "
                        "router advertisements need a /64 on the link (RFC 4862)")
        return
    net = ipaddress.IPv6Interface(f"{addr}/64").network
    cfg.server_ip6, cfg.prefix6 = addr, str(net)
    if not cfg.ipv6.range:
        base = int(net.network_address)
        cfg.ipv6.range = f"{ipaddress.IPv6Address(base + 0x1000)}-{ipaddress.IPv6Address(base + 0x1fff)}"
        return
    for a in parse_range6(cfg.ipv6.range):
        if a not in net:
            problems.append(f"ipv6.range: {a} is outside {cfg.interface}'s prefix {net}")
            return


def read_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"{p}: no such config file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{p}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror}"]) from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Config file (optional) with command-line overrides on top, typed and checked."""
    raw = read_file(path) if path else {}
    return Config.from_dict(merge(raw, overrides or {}))
