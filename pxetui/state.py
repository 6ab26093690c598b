"""The one fold of the event stream: the engine's state rebuilt from its typed events.

Engine side on purpose (no Textual). The supervisor folds every event it relays into one
`EngineState` and replays `snapshot()` to a UI that attaches late; the UI folds the same
events into its own; `pxetui analyze` folds a capture's. One reducer, one key per table, so a
late UI sees exactly what a UI that watched live sees (docs/ARCHITECTURE.md).

`apply(ev)` takes an `Event` (a dict is rebuilt as its class once; one of a type this version
does not know is only logged). It returns the names of the tables that changed and records
which row keys changed in `dirty`, so a view can update only those cells (`update_cell` on
changed cells costs ~2 ms per tick for 10k rows, a clear and refill ~1 s). Time comes only from
event timestamps, never from a clock, so the same feed always gives the same state.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from typing import Any

from pxetui.bootfiles import same_transfer
from pxetui.events import (
    EVENT_TYPES,
    Alert,
    ClientForgotten,
    ClientLog,
    ClientUpdate,
    DhcpModeDecided,
    EngineStarted,
    Event,
    EventDecodeError,
    EventsDropped,
    ForeignDhcpServer,
    IsoImported,
    LabVm,
    LeaseEnded,
    LeaseGranted,
    LimitHit,
    MenuChanged,
    PoolExhausted,
    ServiceState,
    Totals,
    TransferClosed,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
    apply_file_rows,
    from_dict,
)
from pxetui.logfmt import describe
from pxetui.probes import expected_miss
from pxetui.stages import DONE_CALLBACKS
from pxetui.stages import NEW as NEW_STAGE
from pxetui.stages import rank as stage_rank

TABLES = (
    "engine", "services", "alerts", "clients", "leases", "transfers", "logs", "throughput",
    "library", "clientlogs",
)

LEVELS = ("debug", "info", "warning", "error")


@dataclass
class EngineInfo:
    interface: str = ""
    address: str = ""
    netmask: str = ""
    dhcp_mode: str = ""
    dhcp_mode_reason: str = ""
    other_server: str | None = None
    http_port: int = 0
    tftp_root: str = ""
    http_root: str = ""
    version: str = ""
    state_dir: str = ""
    started: float | None = None


@dataclass
class ServiceHealth:
    name: str
    state: str = "starting"
    reason: str = ""
    pid: int | None = None
    restarts: int = 0
    ports: list[int] = field(default_factory=list)
    ts: float = 0.0


@dataclass
class AlertInfo:
    key: str
    severity: str
    message: str
    ts: float


@dataclass
class ClientInfo:
    mac: str
    ip: str | None = None
    stage: str = ""
    stages: list[dict[str, Any]] = field(default_factory=list)
    firmware: str = ""
    arch: int | None = None
    vendor_class: str | None = None
    uuid: str | None = None
    hostname: str | None = None
    progress: float = 0.0
    last_event: str = ""
    diagnosis: str = ""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> row, oldest first
    files_dropped: int = 0  # older rows the tracker no longer keeps (tracker.max_files_per_client)
    boot: int = 0
    ts: float = 0.0


@dataclass
class LeaseInfo:
    mac: str
    ip: str
    ours: bool
    server_ip: str | None
    hostname: str | None
    expires: float
    state: str
    ts: float
    service: str = ""  # who reported it: dhcp (ours), capture (seen on the wire)

    @property
    def key(self) -> str:
        return lease_key(self.mac, self.ip, self.ours)

    @property
    def from_wire(self) -> bool:
        """Seen on the wire (another server's, or capture's copy of one naming our address):
        what a forged reply can add, so what the cap drops. Our DHCP service's are never."""
        return not self.ours or self.service == "capture"


@dataclass
class TransferInfo:
    transfer_id: str
    protocol: str
    mac: str | None
    ip: str | None
    path: str
    size: int | None
    options: dict[str, Any]
    started: float
    bytes_done: int = 0
    rate: float = 0.0
    retransmits: int = 0
    # running | done | failed | closed (no service said it ended, but it never will: its
    # client moved on or its service went away; `reason` says which)
    status: str = "running"
    reason: str = ""
    ts: float = 0.0  # the latest event of the transfer: its end, or its last sign of life
    service: str = ""  # who reported it: tftp, http, capture (a copy seen on the wire)

    @property
    def fraction(self) -> float | None:
        if self.status == "done":
            return 1.0
        if not self.size:
            return None
        return min(1.0, self.bytes_done / self.size)

    @property
    def expected_miss(self) -> bool:
        """A per-machine config lookup that found nothing (pxelinux.cfg/01-<mac>, ...): how
        PXELINUX and GRUB look for their config on every boot, not a failure (pxetui.probes)."""
        return self.status == "failed" and expected_miss(self.path, self.reason)


@dataclass
class ForeignServer:
    """Another DHCP server seen answering on the segment (capture)."""

    server_ip: str
    server_mac: str | None
    offered: str | None
    boot_file: str | None
    ts: float
    mac: str | None = None  # the client it last answered


@dataclass
class LimitInfo:
    """How often a configured limit refused or cut something, per client (docs/SECURITY.md)."""

    limit: str
    ip: str | None
    count: int
    message: str
    ts: float


@dataclass
class LogRecord:
    seq: int
    ts: float
    type: str
    service: str
    level: str
    mac: str | None
    ip: str | None
    text: str


@dataclass
class IsoInfo:
    name: str
    family: str
    path: str
    entries: list[str]
    ts: float


def lease_key(mac: str, ip: str, ours: bool) -> str:
    return f"{'ours' if ours else 'wire'}|{mac}|{ip}"


# A service in one of these states serves none of the transfers it had (pxetui/supervisor.py
# reports "failed" when it dies, "restarting" as it starts again, "stopped" at the end).
SERVICE_GONE = frozenset({"failed", "restarting", "stopped"})


def _in_order(transfers: Iterable[TransferInfo]) -> list[TransferInfo]:
    """Transfers closed together join the finished history in one order, whatever order the
    fold came to hold them in (a replayed fold holds them in the replay's): by start, then id."""
    return sorted(transfers, key=lambda t: (t.started, t.transfer_id))


def _stage_ts(stages: list[dict[str, Any]], stage: str | None) -> float | None:
    """When a client's history reached `stage` (the latest time), or began (None): a
    ClientUpdate's own time is when it was sent, not when the client got there."""
    found = [s.get("ts") for s in stages if isinstance(s, dict) and (stage is None or s.get("stage") == stage)]
    times = [t for t in found if isinstance(t, (int, float)) and not isinstance(t, bool)]
    if not times:
        return None
    return min(times) if stage is None else max(times)


def client_update(c: ClientInfo) -> ClientUpdate:
    """A client whole, as the full ClientUpdate that rebuilds it (what a late UI is sent)."""
    return ClientUpdate(
        ts=c.ts, service="tracker", mac=c.mac, ip=c.ip, stage=c.stage, stages=list(c.stages),
        firmware=c.firmware, arch=c.arch, vendor_class=c.vendor_class, uuid=c.uuid,
        hostname=c.hostname, progress=c.progress, last_event=c.last_event,
        diagnosis=c.diagnosis, boot=c.boot, full=True, files=list(c.files.values()),
        files_dropped=c.files_dropped)


def foreign_server(s: ForeignServer) -> ForeignDhcpServer:
    return ForeignDhcpServer(ts=s.ts, service="capture", mac=s.mac, server_ip=s.server_ip,
                             server_mac=s.server_mac, offered=s.offered, boot_file=s.boot_file)


def event_level(ev: dict[str, Any]) -> str:
    """debug | info | warning | error, from the event class (Log and Alert carry their own)."""
    t = ev.get("type", "")
    if t == "Log":
        lvl = str(ev.get("level_name") or "info")
        return lvl if lvl in LEVELS else "info"
    if t == "Alert":
        sev = str(ev.get("severity") or "warning")
        return sev if sev in LEVELS else "warning"
    if t == "ServiceState" and ev.get("state") == "failed":
        return "error"
    cls = EVENT_TYPES.get(t)
    return cls.level if cls is not None else "info"


Handler = Callable[["EngineState", Any, float], set[str]]
_HANDLERS: dict[str, Handler] = {}


def _on(cls: type[Event]) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        _HANDLERS[cls.__name__] = fn
        return fn
    return deco


# What the running counters count (EngineState.counts, docs/status.schema.json): the DHCP
# messages our service sent and received by type, and the transfers of our own TFTP and HTTP
# services (capture's copies are the wire's: the same transfer again, or another server's).
DHCP_TYPES = frozenset({"DISCOVER", "OFFER", "REQUEST", "ACK", "NAK", "RELEASE", "DECLINE",
                        "INFORM", "BOOTP"})
SERVING = frozenset({"tftp", "http"})
COPIES_KEPT = 4096  # capture's copies of our own transfers remembered until they end
COPY_MATCH = 10.0  # seconds between a copy's start and our service's start of that file


def _count(n: object) -> bool:
    """A count as a line may carry it: a positive int (not a bool)."""
    return isinstance(n, int) and not isinstance(n, bool) and n > 0


def _is_error(ev: Any, t: str) -> bool:
    """An event at error level, as event_level() says of its dict."""
    if t == "Log":
        return bool(ev.level_name == "error")
    if t == "Alert":
        return bool(ev.severity == "error" and not ev.cleared)
    if t == "ServiceState":
        return bool(ev.state == "failed")
    return bool(ev.level == "error")


# Finished transfers kept, the same number in the supervisor's fold and a UI's: a transfer that
# ends again after a smaller history dropped it (failed, then finished) would otherwise come
# back in a late UI's replay with what the live UI no longer has (tests/unit/test_fold.py).
FINISHED_KEEP = 500
LIMITS_KEEP = 256  # (limit, address) pairs whose hits are kept, the least recently hit go first
# What the wire says, kept to the most recent as LIMITS_KEEP (docs/SECURITY.md, "Bounded disk and
# memory"): a forged reply names a new server, a forged ACK a new lease, and each raises an alert.
# What goes is decided by the events alone (their order, their timestamps), so every fold drops
# the same and a late UI holds what a live one does (tests/unit/test_fold.py).
FOREIGN_KEEP = 1024  # other DHCP servers, the least recently announced go first
WIRE_LEASES_KEEP = 4096  # leases seen on the wire (LeaseInfo.from_wire), oldest granted first
WIRE_ALERTS_KEEP = 1024  # capture's per-address alerts, the least recently raised go first
# Capture's alerts keyed by what a forged packet names: a new key per server or MAC made up.
# Its other alerts (the capture failing, its recording) and every other service's are never dropped.
WIRE_ALERT_PREFIXES = ("foreign-dhcp:", "unanswered:", "unanswered6:")
# The HTTP service's refusals, keyed by the refused address (pxetui/http/routes.py Refusals):
# rate-limited per source, but a host taking address after address adds keys for as long as
# the engine runs. Capped with the wire's, oldest first.
HTTP_REFUSAL_PREFIXES = ("untokened:", "badtoken:", "misattributed:", "claimed:")
_PER_ADDRESS_ALERTS = (("capture", WIRE_ALERT_PREFIXES), ("http", HTTP_REFUSAL_PREFIXES))


def per_address_service(key: str) -> str | None:
    """The service whose alerts keyed `key` are per address (capped, WIRE_ALERTS_KEEP); None
    for every other alert, which is never dropped."""
    return next((service for service, prefixes in _PER_ADDRESS_ALERTS if key.startswith(prefixes)), None)
# A UI's tail of each client's installer/netconsole lines (docs/CLIENT-LOGS.md): as many as the
# supervisor replays (CLIENT_LOG_HISTORY), for the clients that logged last. History like the
# log ring, not state: `folded()` leaves it out, and only a fold that keeps a log keeps it.
CLIENT_LOG_LINES = 1000
CLIENT_LOG_CLIENTS = 256


class EngineState:
    """Keyed tables built from events; bounded everywhere so a long session stays small.

    `log_size=0` keeps no log (the supervisor: its history is the events themselves) and
    `track_dirty=False` records no changed keys (nobody takes them): the fold stays a few
    attribute writes per event on the supervisor's hot path."""

    def __init__(self, log_size: int = 3000, finished_keep: int = FINISHED_KEEP,
                 throughput_window: int = 60, track_dirty: bool = True) -> None:
        self.engine = EngineInfo()
        self.services: dict[str, ServiceHealth] = {}
        self.alerts: dict[str, AlertInfo] = {}
        self.clients: dict[str, ClientInfo] = {}
        self.leases: dict[str, LeaseInfo] = {}
        self.transfers: dict[str, TransferInfo] = {}
        self.library: dict[str, IsoInfo] = {}
        self.foreign: dict[str, ForeignServer] = {}
        self.limits: dict[str, LimitInfo] = {}  # "limit|ip" -> hits
        # Keys of the wire's alerts and leases, least recently raised/granted first: what the
        # caps drop (WIRE_ALERTS_KEEP, WIRE_LEASES_KEEP). A replay carries this order.
        self._wire_alerts: dict[str, None] = {}
        self._wire_leases: dict[str, None] = {}
        self._expiry: list[tuple[float, str]] = []  # (expires, key) of wire leases: a heap, lazily pruned
        self.logs: deque[LogRecord] = deque(maxlen=log_size)
        self.log_seq = 0
        # mac -> (seq, line), oldest first; the clients that logged most recently last
        self.client_logs: dict[str, deque[tuple[int, ClientLog]]] = {}
        self.client_log_seq = 0
        self.finished_keep = finished_keep
        self._finished: dict[str, None] = {}  # ids of the transfers that ended, oldest first
        # capture's copies of our own transfers, by their id, until they end (bounded)
        self._copies: dict[str, TransferInfo] = {}
        # Our services' transfer rows by what makes a copy the same transfer (bootfiles.
        # same_transfer): tid -> start. Made from the rows alone, so a late fold has the same.
        self._own_rows: dict[tuple[str, str, str], dict[str, float]] = {}
        self.throughput_window = throughput_window
        self._buckets: dict[int, float] = {}
        self.now = 0.0  # the latest event time seen: "now" for durations, without a clock
        # Events that never reached us, per service (or "ui": a UI link cut loose); the
        # engine drops rather than slows serving when its readers fall behind.
        self.dropped: Counter[str] = Counter()
        self.dropped_types: dict[str, Counter[str]] = {}  # service -> event type -> dropped
        # Running counters since the engine started, keys as DHCP_TYPES/SERVING say:
        # "dhcp.out.ACK", "transfers.tftp.done" (started|done|failed|lookup), "bytes.http",
        # "errors". A replay carries them whole (Totals), so a late reader counts the same.
        self.counts: Counter[str] = Counter()
        self.events_seen = 0
        self.connected = False
        self.lab_vm: LabVm | None = None  # the lab's VM, in a UI that runs `pxetui lab`
        # Running transfers by client ("mac|", "ip|") and by service ("svc|"): whom to close
        # when a client moves on or a service goes away, without scanning every transfer.
        self._live: dict[str, dict[str, None]] = {}
        self.track_dirty = track_dirty
        self.dirty: dict[str, set[str]] = {t: set() for t in TABLES}

    # -- feeding -------------------------------------------------------------------------
    def apply(self, ev: Event | dict[str, Any]) -> set[str]:
        """Fold one event in; return the tables it changed."""
        if isinstance(ev, dict):
            return self._apply_dict(ev)
        t = type(ev).__name__
        ts = ev.ts if isinstance(ev.ts, (int, float)) else self.now
        self.now = max(self.now, ts)
        self.events_seen += 1
        changed: set[str] = set()
        if self.logs.maxlen:
            self._log(ev.view(), t, ts)
            changed.add("logs")
            if t == "ClientLog" and ev.mac:
                changed |= self._client_log(ev)
        handler = _HANDLERS.get(t)
        if handler is not None:
            changed |= handler(self, ev, ts)
        if t == "DhcpPacket":
            if ev.service == "dhcp":  # our server's own messages, not capture's copies
                kind = ev.msg_type if ev.msg_type in DHCP_TYPES else "other"
                self.counts[f"dhcp.{'out' if ev.direction == 'out' else 'in'}.{kind}"] += 1
        elif _is_error(ev, t):
            self.counts["errors"] += 1
        return changed

    def _apply_dict(self, d: dict[str, Any]) -> set[str]:
        """An event as a dict (a test feed, an older source): rebuilt as its class once."""
        t = d.get("type")
        if not isinstance(t, str):
            return set()
        if not isinstance(d.get("ts"), (int, float)):  # never the clock: "now" is the feed's
            d = {**d, "ts": self.now}
        try:
            return self.apply(from_dict(d))
        except EventDecodeError:  # a type this version does not know: in the log, nothing else
            self.events_seen += 1
            if not self.logs.maxlen:
                return set()
            self._log(d, t, float(d["ts"]))
            return {"logs"}

    def mark(self, table: str, key: str = "") -> None:
        if self.track_dirty:
            self.dirty[table].add(key)

    def take_dirty(self) -> dict[str, set[str]]:
        """Changed keys per table since the last call (tables with no change are left out)."""
        out = {t: keys for t, keys in self.dirty.items() if keys}
        self.dirty = {t: set() for t in TABLES}
        return out

    def set_alert(self, key: str, severity: str, message: str, ts: float | None = None,
                  wire: bool = False) -> None:
        """Raise (or replace) an alert. `wire`: one the wire's data raised, dropped oldest
        first past WIRE_ALERTS_KEEP; any other source makes it ours again, never dropped."""
        self.alerts[key] = AlertInfo(key, severity, message, self.now if ts is None else ts)
        self.mark("alerts", key)
        self._wire_alerts.pop(key, None)
        if wire:
            self._wire_alerts[key] = None
            while len(self._wire_alerts) > WIRE_ALERTS_KEEP:
                self.clear_alert(next(iter(self._wire_alerts)))

    def clear_alert(self, key: str) -> None:
        self._wire_alerts.pop(key, None)
        if self.alerts.pop(key, None) is not None:
            self.mark("alerts", key)

    def _log(self, ev: dict[str, Any], t: str, ts: float) -> None:
        self.log_seq += 1
        try:
            text = describe(ev)
        except (TypeError, ValueError, KeyError) as exc:  # a malformed event is still logged
            text = f"{t}: unreadable ({exc})"
        mac, ip = ev.get("mac"), ev.get("ip")
        if mac is None and ip is None and "transfer_id" in ev:  # progress lines may omit who
            tr = self.transfers.get(str(ev["transfer_id"]))
            if tr is not None:
                mac, ip = tr.mac, tr.ip
        self.logs.append(LogRecord(
            seq=self.log_seq, ts=ts, type=t, service=str(ev.get("service") or ""),
            level=event_level(ev), mac=mac, ip=ip, text=text,
        ))
        self.mark("logs", str(self.log_seq))

    def _client_log(self, ev: ClientLog) -> set[str]:
        """Keep the line in its client's tail (not a handler: ClientLog stays history, which
        the supervisor replays from its own ring, pxetui/supervisor.py)."""
        mac = str(ev.mac)
        lines = self.client_logs.pop(mac, None)  # re-inserted: the most recent client last
        if lines is None:
            lines = deque(maxlen=CLIENT_LOG_LINES)
        self.client_logs[mac] = lines
        while len(self.client_logs) > CLIENT_LOG_CLIENTS:
            del self.client_logs[next(iter(self.client_logs))]
        self.client_log_seq += 1
        lines.append((self.client_log_seq, ev))
        self.mark("clientlogs", mac)
        return {"clientlogs"}

    # -- handlers, one per event type ----------------------------------------------------
    @_on(EngineStarted)
    def _on_engine_started(self, ev: EngineStarted, ts: float) -> set[str]:
        e = self.engine
        for k in ("interface", "address", "netmask", "dhcp_mode", "dhcp_mode_reason",
                  "http_port", "tftp_root", "http_root", "version", "state_dir"):
            setattr(e, k, getattr(ev, k))
        e.started = ts
        self.connected = True
        self.mark("engine")
        for tr in self._running():
            self._close(tr, "the engine restarted")  # its services went with it
        return {"engine", "transfers"}

    @_on(DhcpModeDecided)
    def _on_mode(self, ev: DhcpModeDecided, ts: float) -> set[str]:
        self.engine.dhcp_mode = str(ev.mode or "")
        self.engine.dhcp_mode_reason = str(ev.reason or "")
        self.engine.other_server = ev.other_server
        self.mark("engine")
        return {"engine"}

    @_on(ServiceState)
    def _on_service(self, ev: ServiceState, ts: float) -> set[str]:
        name = str(ev.service or "?")
        h = self.services.setdefault(name, ServiceHealth(name))
        h.state = str(ev.state or "")
        h.reason = str(ev.reason or "")
        h.pid = ev.pid
        h.restarts = int(ev.restarts or 0)
        if ev.ports:
            h.ports = list(ev.ports)
        h.ts = ts
        self.mark("services", name)
        if h.state in SERVICE_GONE:  # its transfers end with it, unreported
            for tr in self._running_of("svc|" + name):
                self._close(tr, f"the {name} service {h.state}")
        key = f"service:{name}"
        if h.state == "failed":
            self.set_alert(key, "error", f"{name} failed: {h.reason or 'no reason given'}", ts)
        elif h.state == "restarting":
            self.set_alert(key, "warning", f"{name} restarting ({h.restarts}): {h.reason}", ts)
        else:
            self.clear_alert(key)
        return {"services", "alerts", "transfers"}

    @_on(EventsDropped)
    def _on_dropped(self, ev: EventsDropped, ts: float) -> set[str]:
        name = str(ev.service or "?")
        counts = ev.counts if isinstance(ev.counts, dict) else {}
        valid = {str(k): n for k, n in counts.items() if _count(n)}
        total = ev.total if _count(ev.total) else sum(valid.values())  # an older line: no total
        if not total:
            return set()
        self.dropped[name] += total
        self.dropped_types.setdefault(name, Counter()).update(valid)
        self.mark("services", name)
        if name == "dhcp" and isinstance(ev.packets, dict):
            # our server's messages whose events were dropped: counted all the same
            for key, n in ev.packets.items():
                direction, _, kind = str(key).partition(".")
                if direction in ("in", "out") and _count(n):
                    self.counts[f"dhcp.{direction}.{kind if kind in DHCP_TYPES else 'other'}"] += n
        return {"services"}

    @_on(Totals)
    def _on_totals(self, ev: Totals, ts: float) -> set[str]:
        counts = ev.counts if isinstance(ev.counts, dict) else {}
        self.counts = Counter({str(k): n for k, n in counts.items() if _count(n)})
        return {"engine"}

    @_on(Alert)
    def _on_alert(self, ev: Alert, ts: float) -> set[str]:
        key = str(ev.key or ev.message or "")
        if ev.cleared:
            self.clear_alert(key)
        else:
            wire = ev.service is not None and ev.service == per_address_service(key)
            self.set_alert(key, str(ev.severity or "warning"), str(ev.message or ""), ts, wire=wire)
        return {"alerts"}

    @_on(ForeignDhcpServer)
    def _on_foreign(self, ev: ForeignDhcpServer, ts: float) -> set[str]:
        ip = str(ev.server_ip or "?")
        self.foreign.pop(ip, None)  # re-inserted: the most recently announced last
        self.foreign[ip] = ForeignServer(ip, ev.server_mac, ev.offered, ev.boot_file, ts, ev.mac)
        while len(self.foreign) > FOREIGN_KEEP:  # a forged option 54 per reply: keep the newest
            del self.foreign[next(iter(self.foreign))]
        what = f", offering {ev.offered}" if ev.offered else ""
        self.set_alert(f"foreign-dhcp:{ip}", "warning",
                       f"another DHCP server on the wire: {ip}{what}", ts, wire=True)
        return {"alerts"}

    @_on(PoolExhausted)
    def _on_pool(self, ev: PoolExhausted, ts: float) -> set[str]:
        pool = str(ev.pool or "")
        self.set_alert(f"pool:{pool}", "error", f"DHCP pool {pool} has no free address", ts)
        return {"alerts"}

    @_on(LimitHit)
    def _on_limit(self, ev: LimitHit, ts: float) -> set[str]:
        key = f"{ev.limit}|{ev.ip or ''}"
        hit = self.limits.pop(key, None)  # re-inserted: the most recently hit last
        if hit is None:
            hit = LimitInfo(str(ev.limit or ""), ev.ip, 0, "", ts)
        self.limits[key] = hit
        hit.count += int(ev.count or 0)
        hit.message, hit.ts = str(ev.message or ""), ts
        # A spoofed flood names a new address per hit: keep the most recent (docs/SECURITY.md,
        # "Bounded disk and memory"); every reader folds the same events, so drops the same.
        while len(self.limits) > LIMITS_KEEP:
            del self.limits[next(iter(self.limits))]
        return set()  # in the log (a warning); no table of its own on screen yet

    @_on(LeaseGranted)
    def _on_lease(self, ev: LeaseGranted, ts: float) -> set[str]:
        mac, ip = ev.mac, ev.ip
        if not mac or not ip:
            return set()
        lease = LeaseInfo(mac=mac, ip=ip, ours=bool(ev.ours), server_ip=ev.server_ip,
                          hostname=ev.hostname, expires=float(ev.expires or 0),
                          state=str(ev.state or "bound"), ts=ts, service=str(ev.service or ""))
        key = lease.key
        self.mark("leases", key)
        if not lease.from_wire:  # our DHCP service's: kept until it says the lease ended
            self._wire_leases.pop(key, None)
            self.leases[key] = lease
            return {"leases"}
        # Re-inserted, here and in `leases` (whose order a replay carries): oldest granted first.
        self.leases.pop(key, None)
        self.leases[key] = lease
        self._wire_leases.pop(key, None)
        self._wire_leases[key] = None
        if lease.expires:
            heappush(self._expiry, (lease.expires, key))
        self._trim_wire_leases(ts)
        return {"leases"}

    def _trim_wire_leases(self, ts: float) -> None:
        """Drop the wire's leases that expired before `ts` (a grant's time: never a clock), then
        the oldest granted past WIRE_LEASES_KEEP (docs/SECURITY.md, "Bounded disk and memory").

        Every one expired is dropped at each wire grant, so a lease a fold keeps outlived every
        later grant: a replay, granting them again in order, drops none, and a late UI goes on
        dropping exactly what the live one does."""
        heap = self._expiry
        while heap and heap[0][0] < ts:
            expires, key = heappop(heap)
            le = self.leases.get(key)
            if le is not None and le.expires == expires and key in self._wire_leases:
                self._drop_lease(key)
        while len(self._wire_leases) > WIRE_LEASES_KEEP:
            self._drop_lease(next(iter(self._wire_leases)))
        if len(heap) > 2 * len(self._wire_leases) + 64:  # entries of leases renewed or ended since
            self._expiry = [(e, k) for k in self._wire_leases if (e := self.leases[k].expires)]
            heapify(self._expiry)

    def _drop_lease(self, key: str) -> None:
        del self.leases[key]
        self._wire_leases.pop(key, None)
        self.mark("leases", key)

    @_on(LeaseEnded)
    def _on_lease_ended(self, ev: LeaseEnded, ts: float) -> set[str]:
        mac, ip, ours = ev.mac, ev.ip, bool(ev.ours)
        if mac is not None and ip is not None:  # the usual case: one lease, found by its key
            key = lease_key(mac, ip, ours)
            gone = [key] if key in self.leases else []
        else:  # a wildcard end (every lease of a MAC, or of an address): scan
            gone = [k for k, le in self.leases.items() if le.ours == ours
                    and (ip is None or le.ip == ip) and (mac is None or le.mac == mac)]
        for k in gone:
            self._drop_lease(k)
        return {"leases"} if gone else set()

    @_on(TransferStarted)
    def _on_transfer_started(self, ev: TransferStarted, ts: float) -> set[str]:
        tid = str(ev.transfer_id or "")
        if ev.service == "capture" and ev.ours:
            # Our TFTP and HTTP services report every transfer of theirs: capture's copy from
            # the wire is the same transfer again, one row, not two (the tracker still merges
            # the wire's view into the client's files), unless it fails and our service never
            # started it (`_copy`: a request cut before our HTTP server read it). Only a live
            # engine's capture knows its own addresses: `watch` and `analyze` keep them all.
            self._copies[tid] = self._info(ev, tid, ts)
            if len(self._copies) > COPIES_KEPT:
                del self._copies[next(iter(self._copies))]
            return set()
        self._finished.pop(tid, None)  # an id used again: running, not in the finished history
        old = self.transfers.get(tid)
        if old is not None:
            self._own_row(old, add=False)
            if old.status == "running":
                self._unindex(old)
        tr = self.transfers[tid] = self._info(ev, tid, ts)
        self._own_row(tr, add=True)
        self._index(tr)
        self._tally(tr, "started")
        self.mark("transfers", tid)
        return {"transfers"}

    @staticmethod
    def _info(ev: TransferStarted, tid: str, ts: float) -> TransferInfo:
        return TransferInfo(transfer_id=tid, protocol=str(ev.protocol or "tftp"), mac=ev.mac, ip=ev.ip,
                            path=str(ev.path or ""), size=ev.size, options=dict(ev.options or {}),
                            started=ts, ts=ts, service=str(ev.service or ""))

    def _tally(self, tr: TransferInfo, outcome: str) -> None:
        if tr.service in SERVING and tr.protocol in SERVING:
            self.counts[f"transfers.{tr.protocol}.{outcome}"] += 1

    def _transfer(self, ev: TransferProgress | TransferFinished | TransferFailed,
                  ts: float) -> TransferInfo:
        tid = str(ev.transfer_id or "")
        tr = self.transfers.get(tid)
        if tr is None:  # attached mid-transfer: the start is not in the replay
            tr = TransferInfo(transfer_id=tid, protocol=str(ev.protocol or "tftp"),
                              mac=ev.mac, ip=ev.ip, path=str(getattr(ev, "path", "") or ""),
                              size=getattr(ev, "size", None), options={}, started=ts,
                              service=str(ev.service or ""))
            self.transfers[tid] = tr
            self._own_row(tr, add=True)
            self._index(tr)
        elif tr.status == "closed":  # closed by inference, but alive after all: reopened
            tr.status, tr.reason = "running", ""
            self._finished.pop(tid, None)
            self._index(tr)
        self.mark("transfers", tid)
        return tr

    def _count_bytes(self, tr: TransferInfo, done: int, ts: float) -> None:
        delta = done - tr.bytes_done
        if delta > 0:
            b = int(ts)
            self._buckets[b] = self._buckets.get(b, 0.0) + delta
            if tr.service in SERVING and tr.protocol in SERVING:
                self.counts[f"bytes.{tr.protocol}"] += delta
            self.mark("throughput")
            if len(self._buckets) > self.throughput_window * 2:
                for old in sorted(self._buckets)[: -self.throughput_window]:
                    del self._buckets[old]
        tr.bytes_done = max(tr.bytes_done, done)

    @_on(TransferProgress)
    def _on_progress(self, ev: TransferProgress, ts: float) -> set[str]:
        if self._copy(ev, end=False):
            return set()
        tr = self._transfer(ev, ts)
        self._count_bytes(tr, int(ev.bytes_done or 0), ts)
        if ev.size:
            tr.size = int(ev.size)
        tr.rate = float(ev.rate or 0.0)
        tr.retransmits = int(ev.retransmits or 0)
        tr.ts = ts
        return {"transfers", "throughput"}

    def _copy(self, ev: TransferProgress | TransferFinished | TransferFailed, end: bool) -> bool:
        """Whether `ev` is about capture's copy of one of our transfers (skipped, _copies). A
        copy that fails where none of our services started that file for that client within
        COPY_MATCH seconds becomes a row of its own: a failure only the wire saw."""
        tid = str(ev.transfer_id or "")
        if tid not in self._copies:
            return False
        if not end:
            return True
        copy = self._copies.pop(tid)
        if not isinstance(ev, TransferFailed):
            return True
        own = self._own_rows.get(same_transfer(copy.ip, copy.protocol, copy.path), {})
        if any(abs(started - copy.started) <= COPY_MATCH for started in own.values()):
            return True
        self.transfers[tid] = copy
        self._index(copy)
        return False

    def _finish(self, tr: TransferInfo) -> None:
        self._unindex(tr)
        self._finished.pop(tr.transfer_id, None)
        self._finished[tr.transfer_id] = None
        while len(self._finished) > self.finished_keep:
            old = next(iter(self._finished))
            del self._finished[old]
            if old in self.transfers:
                self._own_row(self.transfers.pop(old), add=False)
                self.mark("transfers", old)

    def _own_row(self, tr: TransferInfo, add: bool) -> None:
        """Keep _own_rows in step with our services' rows in `transfers`."""
        if tr.service not in SERVING:
            return
        key = same_transfer(tr.ip, tr.protocol, tr.path)
        if add:
            self._own_rows.setdefault(key, {})[tr.transfer_id] = tr.started
            return
        rows = self._own_rows.get(key)
        if rows is not None and rows.pop(tr.transfer_id, None) is not None and not rows:
            del self._own_rows[key]

    @_on(TransferFinished)
    def _on_finished(self, ev: TransferFinished, ts: float) -> set[str]:
        if self._copy(ev, end=True):
            return set()
        tr = self._transfer(ev, ts)
        self._count_bytes(tr, int(ev.bytes_done or 0), ts)
        tr.rate = float(ev.rate or tr.rate)
        tr.retransmits = int(ev.retransmits or tr.retransmits)
        if tr.size is None:
            tr.size = tr.bytes_done
        tr.status, tr.ts = "done", ts
        self._tally(tr, "done")
        self._finish(tr)
        self._moved_on(tr)
        return {"transfers", "throughput"}

    @_on(TransferFailed)
    def _on_failed(self, ev: TransferFailed, ts: float) -> set[str]:
        if self._copy(ev, end=True):
            return set()
        tr = self._transfer(ev, ts)
        self._count_bytes(tr, int(ev.bytes_done or 0), ts)
        tr.status, tr.reason, tr.ts = "failed", str(ev.reason or ""), ts
        self._tally(tr, "lookup" if tr.expected_miss else "failed")  # pxetui/probes.py
        self._finish(tr)
        self._moved_on(tr)
        return {"transfers", "throughput"}

    @_on(TransferClosed)
    def _on_closed(self, ev: TransferClosed, ts: float) -> set[str]:
        tr = self.transfers.get(str(ev.transfer_id or ""))
        if tr is None or tr.status != "running":  # ended (or never seen): nothing to close
            return set()
        self._close(tr, str(ev.reason or ""))
        return {"transfers"}

    # -- transfers nobody will report the end of ---------------------------------------
    # A service reports the end of each of its transfers, but a capture's copy of a transfer
    # may never see its last packet, an event can be dropped under load (pxetui/emitter.py),
    # and a service that dies reports nothing more. Once the client has moved on, or the
    # service is gone, such a transfer is closed rather than left "running" for ever. Each
    # fold infers this from the same events; a replay carries it as TransferClosed.

    @staticmethod
    def _live_keys(tr: TransferInfo) -> list[str]:
        keys = [f"mac|{tr.mac}"] if tr.mac else []
        if tr.ip:
            keys.append(f"ip|{tr.ip}")
        if tr.service:
            keys.append(f"svc|{tr.service}")
        return keys

    def _index(self, tr: TransferInfo) -> None:
        for k in self._live_keys(tr):
            self._live.setdefault(k, {})[tr.transfer_id] = None

    def _unindex(self, tr: TransferInfo) -> None:
        for k in self._live_keys(tr):
            ids = self._live.get(k)
            if ids is not None:
                ids.pop(tr.transfer_id, None)
                if not ids:
                    del self._live[k]

    def _running_of(self, *keys: str) -> list[TransferInfo]:
        ids: dict[str, None] = {}
        for k in keys:
            ids.update(self._live.get(k, {}))
        return _in_order(self.transfers[t] for t in ids)

    def _running(self) -> list[TransferInfo]:
        return _in_order(t for t in self.transfers.values() if t.status == "running")

    def _close(self, tr: TransferInfo, reason: str) -> None:
        tr.status, tr.reason = "closed", reason
        self.mark("transfers", tr.transfer_id)
        self._finish(tr)

    def _moved_on(self, ended: TransferInfo) -> None:
        """One of a client's transfers ended: those of its transfers that had gone quiet
        before this one began are abandoned (a boot loader's TFTP client fetches one file at
        a time). HTTP clients open connections side by side (UEFI HTTP boot asks for the
        size on one, then fetches on another), so HTTP does not close HTTP."""
        keys = [f"mac|{ended.mac}"] if ended.mac else []
        if ended.ip:
            keys.append(f"ip|{ended.ip}")
        for tr in self._running_of(*keys):
            if tr.ts < ended.started and not (tr.protocol == ended.protocol == "http"):
                to = f" to {ended.path}" if ended.path and ended.path != tr.path else ""
                self._close(tr, f"the client moved on{to}")

    def _client_moved_on(self, c: ClientInfo, was: tuple[str, int] | None) -> bool:
        """A client that booted (its callback) or started a new boot leaves behind the
        transfers that went quiet before: closed. True when any was."""
        if was is not None and c.boot > was[1]:
            reason, at = "the client started a new boot", _stage_ts(c.stages, None)
        elif c.stage in DONE_CALLBACKS and (was is None or was[0] not in DONE_CALLBACKS):
            reason, at = f"the client {c.stage}", _stage_ts(c.stages, c.stage)
        else:
            return False
        at = c.ts if at is None else at
        keys = [f"mac|{c.mac}"] + ([f"ip|{c.ip}"] if c.ip else [])
        gone = [tr for tr in self._running_of(*keys) if tr.ts < at]
        for tr in gone:
            self._close(tr, reason)
        return bool(gone)

    @_on(ClientUpdate)
    def _on_client(self, ev: ClientUpdate, ts: float) -> set[str]:
        mac = ev.mac
        if not mac:
            return set()
        c = self.clients.get(mac)
        was = (c.stage, c.boot) if c is not None else None
        if c is None:
            c = self.clients[mac] = ClientInfo(mac=mac)
        c.stage, c.firmware = str(ev.stage or ""), str(ev.firmware or "")
        c.last_event, c.diagnosis = str(ev.last_event or ""), str(ev.diagnosis or "")
        for k in ("ip", "arch", "vendor_class", "uuid", "hostname"):
            if getattr(ev, k) is not None:
                setattr(c, k, getattr(ev, k))
        c.progress = float(ev.progress or 0.0)
        c.stages = list(ev.stages or [])
        # a full list, or (live) the rows that changed: pxetui.events.ClientUpdate
        apply_file_rows(c.files, {"full": ev.full, "files": ev.files,
                                  "files_removed": ev.files_removed})
        c.files_dropped = int(ev.files_dropped or 0)
        c.boot = int(ev.boot or 0)
        c.ts = ts
        self.mark("clients", mac)
        # The tracker fills `diagnosis` only when a boot is stuck or failed (empty while it
        # progresses): that is the dashboard's "stuck client" alert.
        key = f"stuck:{mac}"
        if c.diagnosis:
            self.set_alert(key, "warning", f"{mac} at {c.stage or 'start'}: {c.diagnosis}", ts)
        else:
            self.clear_alert(key)
        if self._client_moved_on(c, was):
            return {"clients", "alerts", "transfers"}
        return {"clients", "alerts"}

    @_on(ClientForgotten)
    def _on_forgotten(self, ev: ClientForgotten, ts: float) -> set[str]:
        mac = ev.mac
        if mac and self.clients.pop(mac, None) is not None:
            self.mark("clients", mac)
            self.clear_alert(f"stuck:{mac}")
            return {"clients", "alerts"}
        return set()

    @_on(LabVm)
    def _on_lab_vm(self, ev: LabVm, ts: float) -> set[str]:
        self.lab_vm = ev
        self.mark("engine")
        if ev.state == "off":
            ok = ev.booted and not ev.exit_code
            self.set_alert("lab-vm", "info" if ok else "warning", f"The lab VM {ev.detail}.", ts)
        else:
            self.clear_alert("lab-vm")
        return {"engine", "alerts"}

    @_on(MenuChanged)
    def _on_menu_changed(self, ev: MenuChanged, ts: float) -> set[str]:
        # The menu itself lives in the state database (the editor reads it there): the event
        # only tells the screens that watch the library to look again.
        self.mark("library", "menu")
        return {"library"}

    @_on(IsoImported)
    def _on_iso(self, ev: IsoImported, ts: float) -> set[str]:
        name = str(ev.name or ev.path or "")
        self.library[name] = IsoInfo(name=name, family=str(ev.family or ""),
                                     path=str(ev.path or ""), entries=list(ev.entries or []), ts=ts)
        self.mark("library", name)
        return {"library"}

    # -- the one fold, replayed --------------------------------------------------------
    def snapshot(self) -> list[Event]:
        """Events that rebuild this state in a fresh EngineState: `folded()` of the result
        equals ours. What the supervisor replays to a UI that attaches late: every client
        whole (full ClientUpdates), every lease with its own key (ours and the wire's on one
        address both), finished transfers oldest first, and the alerts as they stand."""
        out: list[Event] = []
        e = self.engine
        if e.started is not None:
            out.append(EngineStarted(
                ts=e.started, service="engine", interface=e.interface, address=e.address,
                netmask=e.netmask, dhcp_mode=e.dhcp_mode, dhcp_mode_reason=e.dhcp_mode_reason,
                http_port=e.http_port, tftp_root=e.tftp_root, http_root=e.http_root,
                version=e.version, state_dir=e.state_dir))
        if e.dhcp_mode or e.dhcp_mode_reason or e.other_server is not None:
            out.append(DhcpModeDecided(ts=e.started or 0.0, service="dhcp", mode=e.dhcp_mode,
                                       reason=e.dhcp_mode_reason, other_server=e.other_server))
        for h in self.services.values():
            out.append(ServiceState(ts=h.ts, service=h.name, state=h.state, reason=h.reason,
                                    pid=h.pid, restarts=h.restarts, ports=list(h.ports)))
        for name, total in self.dropped.items():
            out.append(EventsDropped(ts=self.now, service=name, total=total,
                                     counts=dict(self.dropped_types.get(name, {}))))
        out += [foreign_server(s) for s in self.foreign.values()]
        for le in self.leases.values():
            out.append(LeaseGranted(ts=le.ts, service=le.service, mac=le.mac, ip=le.ip, ours=le.ours,
                                    server_ip=le.server_ip, hostname=le.hostname,
                                    expires=le.expires, state=le.state))
        # Clients, then the ended transfers, then the running ones: what closes a running
        # transfer in a fold (a client that booted, a later transfer that ended) is replayed
        # before any running one exists, so the replay closes exactly what the live fold did.
        out += [client_update(c) for c in self.clients.values()]
        running = [t for t in self.transfers.values() if t.transfer_id not in self._finished]
        ended = [self.transfers[tid] for tid in self._finished if tid in self.transfers]
        for tr in ended + running:
            out += self._transfer_events(tr)
        # Capture's copies of our transfers still in flight: a late fold skips their later
        # events as this one does, and lists the failure of one our services never started.
        out += [TransferStarted(ts=c.started, service="capture", mac=c.mac, ip=c.ip, transfer_id=tid,
                                protocol=c.protocol, path=c.path, size=c.size, options=dict(c.options),
                                ours=True) for tid, c in self._copies.items()]
        for iso in self.library.values():
            out.append(IsoImported(ts=iso.ts, name=iso.name, family=iso.family, path=iso.path,
                                   entries=list(iso.entries)))
        for hit in self.limits.values():
            out.append(LimitHit(ts=hit.ts, ip=hit.ip, limit=hit.limit, count=hit.count,
                                message=hit.message))
        if self.lab_vm is not None:
            out.append(self.lab_vm)
        out += self._alert_events(out)
        out.append(self.totals())  # last: the events above counted again in a fresh fold
        return out

    def totals(self) -> Totals:
        return Totals(ts=self.now, service="engine", counts=dict(self.counts))

    @staticmethod
    def _transfer_events(tr: TransferInfo) -> list[Event]:
        out: list[Event] = [TransferStarted(
            ts=tr.started, service=tr.service, mac=tr.mac, ip=tr.ip, transfer_id=tr.transfer_id,
            protocol=tr.protocol, path=tr.path, size=tr.size, options=dict(tr.options),
            ours=tr.service != "capture")]  # capture's copies of ours are never kept (_copies)
        if (tr.status != "running" or tr.bytes_done or tr.rate or tr.retransmits
                or tr.ts != tr.started):
            out.append(TransferProgress(ts=tr.ts, transfer_id=tr.transfer_id,
                                        protocol=tr.protocol, bytes_done=tr.bytes_done,
                                        size=tr.size, rate=tr.rate, retransmits=tr.retransmits))
        if tr.status == "failed" or (tr.status == "done" and tr.reason):  # a reason outlives a later finish
            out.append(TransferFailed(ts=tr.ts, transfer_id=tr.transfer_id, protocol=tr.protocol,
                                      path=tr.path, reason=tr.reason, bytes_done=tr.bytes_done))
        if tr.status == "closed":
            out.append(TransferClosed(ts=tr.ts, transfer_id=tr.transfer_id, protocol=tr.protocol,
                                      reason=tr.reason))
        if tr.status == "done":
            out.append(TransferFinished(ts=tr.ts, transfer_id=tr.transfer_id, protocol=tr.protocol,
                                        path=tr.path, bytes_done=tr.bytes_done, rate=tr.rate,
                                        retransmits=tr.retransmits))
        return out

    def _alert_events(self, tables: list[Event]) -> list[Event]:
        """The alerts as they stand: the table events raise some by themselves (a failed
        service, a stuck client), which a later Alert may have replaced or cleared."""
        scratch = EngineState(log_size=0, finished_keep=self.finished_keep, track_dirty=False)
        for ev in tables:
            scratch.apply(ev)
        out: list[Event] = [Alert(ts=self.now, key=k, cleared=True)
                            for k in scratch.alerts if k not in self.alerts]
        out += [Alert(ts=a.ts, key=k, severity=a.severity, message=a.message)
                for k, a in self.alerts.items() if k not in self._wire_alerts
                and (scratch.alerts.get(k) != a or k in scratch._wire_alerts)]
        # The per-address alerts all, as their services', in the order they were raised: a late
        # fold then drops the same ones first when more come (WIRE_ALERTS_KEEP).
        out += [Alert(ts=a.ts, service=per_address_service(k) or "capture", key=k, severity=a.severity,
                      message=a.message)
                for k in self._wire_alerts if (a := self.alerts[k])]
        return out

    def folded(self) -> dict[str, Any]:
        """The state proper, for comparing two folds: every table, without the history (log
        ring, throughput buckets) and without what only the UI's link sets (`connected`)."""
        return {
            "engine": self.engine, "services": self.services, "alerts": self.alerts,
            "clients": self.clients, "leases": self.leases, "transfers": self.transfers,
            "finished": list(self._finished), "library": self.library, "foreign": self.foreign,
            "limits": self.limits, "dropped": dict(self.dropped), "lab_vm": self.lab_vm,
            # the order the caps drop in: a late fold must drop what the live one does next
            "order": {"foreign": list(self.foreign), "wire_alerts": list(self._wire_alerts),
                      "wire_leases": list(self._wire_leases)},
            "dropped_types": {k: dict(v) for k, v in self.dropped_types.items()},
            "counts": dict(self.counts),
        }

    # -- the UI's side of the connection -------------------------------------------------
    def disconnected(self, message: str) -> set[str]:
        """The UI lost the engine: `message` says so in plain words (the alert). What it was
        serving can no longer be followed: its running transfers are closed."""
        self.connected = False
        self.set_alert("connection", "error", message)
        self.mark("engine")
        for tr in self._running():
            self._close(tr, "the engine went away")
        return {"alerts", "engine", "transfers"}

    # -- derived views -------------------------------------------------------------------
    def clients_by_stage(self) -> list[tuple[str, int]]:
        counts = Counter(c.stage or NEW_STAGE for c in self.clients.values())
        return sorted(counts.items(), key=lambda item: (stage_rank(item[0]), item[0]))

    def clients_in_trouble(self) -> int:
        return sum(1 for c in self.clients.values() if c.diagnosis)

    def throughput(self, n: int | None = None) -> list[float]:
        """Bytes per second for the last n whole seconds ending at the latest event."""
        n = n or self.throughput_window
        end = int(self.now)
        return [self._buckets.get(s, 0.0) for s in range(end - n + 1, end + 1)]

    def live_transfers(self) -> int:
        return sum(1 for t in self.transfers.values() if t.status == "running")

    def sorted_alerts(self) -> list[AlertInfo]:
        rank = {"error": 0, "warning": 1, "info": 2}
        return sorted(self.alerts.values(), key=lambda a: (rank.get(a.severity, 3), -a.ts))


# The types whose every effect `snapshot()` carries; the rest only add to the log (history).
STATEFUL = frozenset(_HANDLERS) - {"MenuChanged"}
