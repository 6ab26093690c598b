"""The event vocabulary shared by services, the supervisor, the tracker and the UI.

Every observation a service makes becomes one of these dataclasses, serialised as one JSON
line: ``{"type": "TransferStarted", "ts": ..., "service": "tftp", "mac": ..., "ip": ..., ...}``.
The UI and the tracker consume events; nobody downstream parses packets.

Rules for adding an event: a frozen-by-convention dataclass deriving from `Event`, only JSON
types in its fields (str, int, float, bool, None, list, dict), defaults for every field so an
older reader can load a newer line. `@register` makes it loadable by name.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import orjson

EVENT_TYPES: dict[str, type[Event]] = {}

E = TypeVar("E", bound="Event")


# A DHCP storm emits thousands of events a second: orjson writes a DhcpPacket line in ~2 µs
# (json.dumps: ~20 µs), the same compact JSON (non-ASCII as UTF-8 rather than \u escapes).
def dumps(obj: Any) -> bytes:
    """An event (dict) as one compact JSON document: how every event line is written."""
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS)


def loads(data: str | bytes) -> Any:
    """The matching decoder for event lines (several times faster than json.loads); raises ValueError."""
    return orjson.loads(data)


def register(cls: type[E]) -> type[E]:
    EVENT_TYPES[cls.__name__] = cls
    return cls


@dataclass(kw_only=True)
class Event:
    ts: float = field(default_factory=time.time)
    service: str = ""
    mac: str | None = None
    ip: str | None = None

    level: ClassVar[str] = "info"
    # "Latest value wins": the field naming the slot a newer event of the same type replaces
    # an older one still queued for a reader that fell behind (pxetui/emitter.py).
    coalesce: ClassVar[str | None] = None

    def tally(self) -> str | None:
        """What a running counter counts this event as, when it is dropped unread
        (EventsDropped.packets); None: nothing."""
        return None

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it costs ~90 µs an event, and a DHCP storm emits thousands a
        # second. Fields hold JSON types only, so copying the containers is enough.
        d = self.__dict__.copy()
        for k in _containers(type(self)):
            d[k] = copy.deepcopy(d[k])
        d["type"] = type(self).__name__
        return d

    def to_json(self) -> str:
        return dumps(self.to_dict()).decode()

    def view(self) -> dict[str, Any]:
        """The event as a dict for a reader that only reads it now (a log line): shares its
        lists and dicts with the event, so it costs one shallow copy, not to_dict's."""
        return {**self.__dict__, "type": type(self).__name__}

    @property
    def type(self) -> str:
        return type(self).__name__


@functools.cache
def _containers(cls: type) -> tuple[str, ...]:
    """The fields of `cls` that hold a list or dict (copied by to_dict), found once per class."""
    return tuple(f.name for f in dataclasses.fields(cls)
                 if "list" in str(f.type) or "dict" in str(f.type) or "Any" in str(f.type))


def shares_containers(cls: type) -> bool:
    """Whether from_dict's event shares lists or dicts with the dict it was built from."""
    return bool(_containers(cls))


_NONE = object()


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...]:
    """How from_dict builds `cls`, found once per class: each field in order (what a line
    holds besides them is ignored), with its default or its default factory."""
    return tuple((f.name, f.default, None if f.default_factory is dataclasses.MISSING else f.default_factory)
                 for f in dataclasses.fields(cls))


@functools.cache
def _line_keys(cls: type) -> frozenset[str]:
    """The keys of a complete line of `cls`: its fields and "type"."""
    return frozenset([*(f.name for f in dataclasses.fields(cls)), "type"])


def is_complete(d: dict[str, Any], cls: type) -> bool:
    """A line from this version: every field of `cls` and "type", nothing more."""
    return d.keys() == _line_keys(cls)


class EventDecodeError(ValueError):
    """A line that is not a known event."""


def from_dict(d: dict[str, Any]) -> Event:
    """The event a line's dict stands for. The supervisor rebuilds every line it relays (a
    storm: thousands a second), so this fills the instance's fields directly: a third of what
    the generated __init__ costs with twenty keyword arguments, the same object (every field
    has a default, the rules above, and no event has a __post_init__)."""
    name = d.get("type")
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise EventDecodeError(f"unknown event type {name!r}")
    ev = object.__new__(cls)
    if is_complete(d, cls):
        ev.__dict__.update(d)
        del ev.__dict__["type"]
        return ev
    values = {}
    for k, default, factory in _plan(cls):
        v = d.get(k, _NONE)
        values[k] = v if v is not _NONE else default if factory is None else factory()
    ev.__dict__.update(values)
    return ev


def from_json(line: str | bytes) -> Event:
    try:
        d = loads(line)
    except ValueError as exc:  # orjson's error is a ValueError, invalid UTF-8 included
        raise EventDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(d, dict):
        raise EventDecodeError("not a JSON object")
    return from_dict(d)


# --- supervision and logging ------------------------------------------------------------


@register
@dataclass(kw_only=True)
class Log(Event):
    """A plain log line from a service or the supervisor."""

    level_name: str = "info"  # debug | info | warning | error
    message: str = ""


@register
@dataclass(kw_only=True)
class ServiceState(Event):
    """Health of one service: starting, running, restarting, stopped or failed (with reason)."""

    state: str = "starting"
    reason: str = ""
    pid: int | None = None
    restarts: int = 0
    ports: list[int] = field(default_factory=list)


@register
@dataclass(kw_only=True)
class EventsDropped(Event):
    """Events that never reached their reader: a service's queue (or a UI's link) was full
    because the reader fell behind, and serving never waits for it. Counts since the previous
    EventsDropped from the same place; `service` names the queue ("ui": a UI cut loose)."""

    level: ClassVar[str] = "warning"
    counts: dict[str, int] = field(default_factory=dict)  # event type -> how many dropped
    total: int = 0
    # Among the dropped DhcpPacket events, the messages by "in.DISCOVER", "out.ACK", ...
    # (Event.tally): the fold still counts them, so the DHCP counters stay exact under load.
    packets: dict[str, int] = field(default_factory=dict)


@register
@dataclass(kw_only=True)
class EngineStarted(Event):
    """The supervisor is up: what it serves and where."""

    interface: str = ""
    address: str = ""
    netmask: str = ""
    dhcp_mode: str = ""
    dhcp_mode_reason: str = ""
    http_port: int = 0
    tftp_root: str = ""
    http_root: str = ""
    version: str = ""
    state_dir: str = ""  # where the menu and ISO library live (the UI edits them there)


@register
@dataclass(kw_only=True)
class Alert(Event):
    """Something the user should see on the dashboard (port in use, missing loader, ...)."""

    level: ClassVar[str] = "warning"
    key: str = ""  # stable id so the same alert replaces itself
    severity: str = "warning"  # info | warning | error
    message: str = ""
    cleared: bool = False


# --- DHCP -------------------------------------------------------------------------------


@register
@dataclass(kw_only=True)
class DhcpPacket(Event):
    """A DHCP message received or sent by our server (or seen on the wire by capture)."""

    direction: str = "in"  # in | out | wire
    msg_type: str = ""  # DISCOVER OFFER REQUEST ACK NAK RELEASE DECLINE INFORM
    xid: int = 0
    server_ip: str | None = None  # option 54 / sender of a reply
    server_mac: str | None = None
    yiaddr: str | None = None
    siaddr: str | None = None
    arch: int | None = None  # option 93
    vendor_class: str | None = None  # option 60
    user_class: str | None = None  # option 77
    uuid: str | None = None  # option 97
    hostname: str | None = None
    boot_file: str | None = None
    next_server: str | None = None
    ipxe: bool = False
    port: int = 67
    ours: bool = True
    requested_ip: str | None = None  # option 50: the address a client asks for (REQUEST)

    def tally(self) -> str | None:
        return packet_tally(self.direction, self.msg_type)


def packet_tally(direction: object, msg_type: object) -> str:
    """A DhcpPacket's key in EventsDropped.packets: "in.DISCOVER", "out.ACK"."""
    return f"{'out' if direction == 'out' else 'in'}.{msg_type}"


def admit_all(kind: str, tally: str | None) -> bool:
    """An `admit` with no budget: every per-packet event is made (pxetui/emitter.py `admit`
    has one: events.packet_rate)."""
    return True


@register
@dataclass(kw_only=True)
class DhcpIgnored(Event):
    """A packet the DHCP server chose not to answer, and why."""

    level: ClassVar[str] = "debug"
    reason: str = ""
    msg_type: str = ""


@register
@dataclass(kw_only=True)
class DhcpModeDecided(Event):
    """The outcome of auto mode's probe (or the mode forced by config)."""

    mode: str = ""  # full | proxy | off
    reason: str = ""
    other_server: str | None = None


@register
@dataclass(kw_only=True)
class LeaseGranted(Event):
    """An address bound to a MAC (ours, or seen on the wire from another server)."""

    expires: float = 0.0
    hostname: str | None = None
    server_ip: str | None = None
    ours: bool = True
    state: str = "bound"  # offered | bound


@register
@dataclass(kw_only=True)
class LeaseEnded(Event):
    """An address freed: released, expired, declined (quarantined) or forgotten."""

    reason: str = "released"
    ours: bool = True


@register
@dataclass(kw_only=True)
class PoolExhausted(Event):
    level: ClassVar[str] = "warning"
    pool: str = ""


@register
@dataclass(kw_only=True)
class ForeignDhcpServer(Event):
    """Another DHCP server answering on our segment."""

    level: ClassVar[str] = "warning"
    server_ip: str = ""
    server_mac: str | None = None
    offered: str | None = None
    boot_file: str | None = None


@register
@dataclass(kw_only=True)
class RouterAdvert(Event):
    """An IPv6 router advertising on the segment, as capture saw it (RFC 4861 section 4.2):
    reported when first seen and when what it says changes. `ip` is the router's address."""

    router_mac: str | None = None
    managed: bool = False  # M flag: addresses from DHCPv6
    other: bool = False  # O flag: other configuration from DHCPv6
    lifetime: int = 0  # router lifetime, seconds (0: not a default router)
    prefixes: list[str] = field(default_factory=list)  # "fd99::/64"


@register
@dataclass(kw_only=True)
class BootDecision(Event):
    """What the boot policy chose for a client, and why."""

    arch: int | None = None
    firmware: str = ""  # bios | uefi32 | uefi64 | arm64 | http64 | ipxe ...
    boot_file: str = ""
    reason: str = ""


# --- transfers (TFTP and HTTP) ----------------------------------------------------------


@register
@dataclass(kw_only=True)
class TransferStarted(Event):
    transfer_id: str = ""
    protocol: str = "tftp"  # tftp | http
    path: str = ""
    size: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # blksize, windowsize, range ...
    ours: bool = True


@register
@dataclass(kw_only=True)
class TransferProgress(Event):
    level: ClassVar[str] = "debug"
    coalesce: ClassVar[str | None] = "transfer_id"  # only the newest count of a transfer matters
    transfer_id: str = ""
    protocol: str = "tftp"
    bytes_done: int = 0
    size: int | None = None
    rate: float = 0.0  # bytes per second
    retransmits: int = 0


@register
@dataclass(kw_only=True)
class TransferFinished(Event):
    transfer_id: str = ""
    protocol: str = "tftp"
    path: str = ""
    bytes_done: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    retransmits: int = 0
    status: int | None = None  # HTTP status


@register
@dataclass(kw_only=True)
class TransferFailed(Event):
    level: ClassVar[str] = "warning"
    transfer_id: str = ""
    protocol: str = "tftp"
    path: str = ""
    reason: str = ""
    bytes_done: int = 0
    status: int | None = None  # HTTP status or TFTP error code


@register
@dataclass(kw_only=True)
class TransferClosed(Event):
    """A transfer the fold concluded will never end, though no service said so: its client
    moved on (booted, started over, finished a later transfer) or the service serving it went
    away (pxetui/state.py). The fold infers it from the same events everywhere; the event
    carries it in a replay. A later event of the same transfer reopens it."""

    level: ClassVar[str] = "debug"
    transfer_id: str = ""
    protocol: str = "tftp"
    reason: str = ""


@register
@dataclass(kw_only=True)
class BootCallback(Event):
    """The iPXE script (or an installed system) reported a boot milestone over HTTP."""

    stage: str = "booting"  # booting (kernel about to start) | booted | installed
    entry: str | None = None
    detail: str = ""


@register
@dataclass(kw_only=True)
class ClientLog(Event):
    """A log line a booting client sent us: its installer's syslog or its kernel's netconsole
    (pxetui/clientlogs, docs/CLIENT-LOGS.md). `mac` comes from the sender's address (lease or
    neighbour table), None when no machine could be attributed."""

    source: str = "syslog"  # syslog | netconsole
    facility: int | None = None  # syslog facility (0 kern ... 23 local7); None: not sent
    severity: int | None = None  # 0 emerg ... 7 debug; None: not sent (plain netconsole)
    app: str = ""  # syslog APP-NAME / TAG; "kernel" for netconsole
    hostname: str = ""
    message: str = ""
    format: str = ""  # rfc5424 | rfc3164 | netconsole
    truncated: bool = False  # cut at logs.max_line_bytes


# --- limits (docs/SECURITY.md) ------------------------------------------------------------


@register
@dataclass(kw_only=True)
class LimitHit(Event):
    """A configured limit refused or cut something. `ip` (or `mac`) is the client that hit it,
    None for a global limit; `count` is how many hits this event stands for (LimitReporter
    sends one event per interval per limit and client, not one per packet)."""

    level: ClassVar[str] = "warning"
    limit: str = ""  # the config key, e.g. tftp.max_per_client
    count: int = 1
    message: str = ""


class LimitReporter:
    """Emits LimitHit at most once per `interval` per (limit, client), with the number of hits
    since the previous one; past `per_interval` distinct clients of one limit in an interval
    (a spoofed flood), the rest fold into one event without a client."""

    MAX_KEYS = 4096

    def __init__(self, emit: Callable[[Event], None], interval: float = 10.0,
                 per_interval: int = 32) -> None:
        self.emit, self.interval, self.per_interval = emit, interval, per_interval
        self._keys: dict[tuple[str, str | None], list[float]] = {}  # -> [last emit, hits since]
        self._budget: dict[str, list[float]] = {}  # limit -> [interval start, clients reported]

    def hit(self, limit: str, ip: str | None, message: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = (limit, ip)
        st = self._keys.get(key)
        if st is not None:
            st[1] += 1
            if now - st[0] < self.interval:
                return
        if ip is not None and st is None:
            budget = self._budget.setdefault(limit, [now, 0])
            if now - budget[0] >= self.interval:
                budget[0], budget[1] = now, 0
            if budget[1] >= self.per_interval:
                self.hit(limit, None, f"{limit}: many clients hit this limit; latest {ip}: {message}", now)
                return
            budget[1] += 1
        count = int(st[1]) if st is not None else 1
        if len(self._keys) >= self.MAX_KEYS:
            self._prune(now)
        self._keys[key] = [now, 0]
        self.emit(LimitHit(ip=ip, limit=limit, count=count, message=message))

    def _prune(self, now: float) -> None:
        for k in [k for k, st in self._keys.items() if now - st[0] >= self.interval]:
            del self._keys[k]
        while len(self._keys) >= self.MAX_KEYS:  # all recent: drop the oldest
            del self._keys[next(iter(self._keys))]


# --- clients (derived by the tracker) ---------------------------------------------------


@register
@dataclass(kw_only=True)
class ClientUpdate(Event):
    """The tracker's view of one client changed.

    `files` are the rows of the files this boot fetched (pxetui.tracker), keyed by their `id`.
    A `full` update holds every row; a live one (`full` false) holds only the rows that changed
    since the client's previous update, and `files_removed` the ids dropped since (the oldest,
    past tracker.max_files_per_client): fold them with `apply_file_rows`. `files_dropped`
    counts the rows of this boot dropped so far."""

    stage: str = ""
    stages: list[dict[str, Any]] = field(default_factory=list)  # [{"stage", "ts", "detail"}]
    firmware: str = ""
    arch: int | None = None
    vendor_class: str | None = None
    uuid: str | None = None
    hostname: str | None = None
    progress: float = 0.0  # 0..1 of the whole boot, roughly
    last_event: str = ""
    diagnosis: str = ""
    boot: int = 0  # the client's boot count
    full: bool = True  # an older line (no such field) carried the whole list
    files: list[dict[str, Any]] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_dropped: int = 0


def apply_file_rows(rows: dict[str, dict[str, Any]], ev: dict[str, Any]) -> None:
    """Fold a ClientUpdate's file rows into `rows` (id -> row, oldest first): a full update
    replaces them, a live one upserts what changed and drops what was removed."""
    if ev.get("full", True):
        rows.clear()
    for rid in ev.get("files_removed") or ():
        rows.pop(rid, None)
    for i, f in enumerate(ev.get("files") or ()):
        if isinstance(f, dict):
            rows[str(f.get("id") or f"#{i}")] = f


@register
@dataclass(kw_only=True)
class ClientForgotten(Event):
    """A client left the tracker: the UI's "forget", or a cap or idle expiry (`reason`)."""

    reason: str = ""


# --- library and menus ------------------------------------------------------------------


@register
@dataclass(kw_only=True)
class MenuChanged(Event):
    entries: int = 0
    source: str = ""


@register
@dataclass(kw_only=True)
class IsoImported(Event):
    name: str = ""
    family: str = ""
    path: str = ""
    entries: list[str] = field(default_factory=list)


# --- the lab (pxetui lab) ---------------------------------------------------------------


@register
@dataclass(kw_only=True)
class LabVm(Event):
    """The lab's virtual machine as the lab process sees it (pxetui/lab/keeper.py): not an
    engine event (the engine does not own the VM); the UI running the lab folds it."""

    state: str = "running"  # running | off
    boots: int = 1  # how many times the lab has started it
    booted: bool = False  # its system came up: the content's marker is on the serial console
    exit_code: int | None = None
    detail: str = ""  # off: why, in plain words


# --- the control socket's replay (pxetui/supervisor.py) -----------------------------------


@register
@dataclass(kw_only=True)
class Totals(Event):
    """The fold's running counters as they stand (EngineState.counts: DHCP messages, transfers
    and bytes per protocol, errors). The replay ends with it: a late reader's fold counted
    again what the replay re-sent (the recent history), and this puts the counts right."""

    level: ClassVar[str] = "debug"
    counts: dict[str, int] = field(default_factory=dict)


@register
@dataclass(kw_only=True)
class ReplayDone(Event):
    """Sent to one control-socket reader after its replay: what follows is live. `pxetui
    status` reads up to it and stops."""

    level: ClassVar[str] = "debug"
    events: int = 0  # how many events the replay held
