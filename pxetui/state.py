"""What the UI renders: the engine's state rebuilt from its event stream.

Engine side on purpose (no Textual): `EngineState.apply(ev)` takes one event dict (as it comes
off the control socket) and updates keyed tables. It returns the names of the tables that
changed and records which row keys changed in `dirty`, so a view can update only those cells
(REFERENCE.md: `update_cell` on changed cells costs ~2 ms per tick for 10k rows, a clear and
refill ~1 s). Time comes only from event timestamps, never from a clock, so the same feed
always gives the same state.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from pxetui.events import EVENT_TYPES, apply_file_rows
from pxetui.logfmt import describe

TABLES = (
    "engine", "services", "alerts", "clients", "leases", "transfers", "logs", "throughput",
    "library",
)

# The order a boot goes through (pxetui.tracker.STAGES), for counting clients by stage;
# unknown stages sort after.
STAGE_ORDER = (
    "new", "discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd", "rootfs",
    "booted", "installed",
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

    @property
    def key(self) -> str:
        return lease_key(self.mac, self.ip, self.ours)


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
    status: str = "running"  # running | done | failed
    reason: str = ""
    ts: float = 0.0

    @property
    def fraction(self) -> float | None:
        if self.status == "done":
            return 1.0
        if not self.size:
            return None
        return min(1.0, self.bytes_done / self.size)


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


class EngineState:
    """Keyed tables built from events; bounded everywhere so a long session stays small."""

    def __init__(self, log_size: int = 3000, finished_keep: int = 300,
                 throughput_window: int = 60) -> None:
        self.engine = EngineInfo()
        self.services: dict[str, ServiceHealth] = {}
        self.alerts: dict[str, AlertInfo] = {}
        self.clients: dict[str, ClientInfo] = {}
        self.leases: dict[str, LeaseInfo] = {}
        self.transfers: dict[str, TransferInfo] = {}
        self.library: dict[str, IsoInfo] = {}
        self.logs: deque[LogRecord] = deque(maxlen=log_size)
        self.log_seq = 0
        self.finished_keep = finished_keep
        self._finished: deque[str] = deque()
        self.throughput_window = throughput_window
        self._buckets: dict[int, float] = {}
        self.now = 0.0  # the latest event time seen: "now" for durations, without a clock
        # Events that never reached us, per service (or "ui": a UI link cut loose); the
        # engine drops rather than slows serving when its readers fall behind.
        self.dropped: Counter[str] = Counter()
        self.events_seen = 0
        self.connected = False
        self.dirty: dict[str, set[str]] = {t: set() for t in TABLES}

    # -- feeding -------------------------------------------------------------------------
    def apply(self, ev: dict[str, Any]) -> set[str]:
        """Fold one event in; return the tables it changed."""
        t = ev.get("type")
        if not isinstance(t, str):
            return set()
        ts = ev.get("ts")
        ts = float(ts) if isinstance(ts, (int, float)) else self.now
        self.now = max(self.now, ts)
        self.events_seen += 1
        changed = {"logs"}
        self._log(ev, t, ts)
        handler = getattr(self, f"_on_{t}", None)
        if handler is not None:
            changed |= handler(ev, ts)
        return changed

    def mark(self, table: str, key: str = "") -> None:
        self.dirty[table].add(key)

    def take_dirty(self) -> dict[str, set[str]]:
        """Changed keys per table since the last call (tables with no change are left out)."""
        out = {t: keys for t, keys in self.dirty.items() if keys}
        self.dirty = {t: set() for t in TABLES}
        return out

    def set_alert(self, key: str, severity: str, message: str, ts: float | None = None) -> None:
        self.alerts[key] = AlertInfo(key, severity, message, self.now if ts is None else ts)
        self.mark("alerts", key)

    def clear_alert(self, key: str) -> None:
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

    # -- handlers, one per event type ----------------------------------------------------
    def _on_EngineStarted(self, ev: dict[str, Any], ts: float) -> set[str]:
        e = self.engine
        for k in ("interface", "address", "netmask", "dhcp_mode", "dhcp_mode_reason",
                  "http_port", "tftp_root", "http_root", "version", "state_dir"):
            if k in ev:
                setattr(e, k, ev[k])
        e.started = ts
        self.connected = True
        self.mark("engine")
        return {"engine"}

    def _on_DhcpModeDecided(self, ev: dict[str, Any], ts: float) -> set[str]:
        self.engine.dhcp_mode = str(ev.get("mode") or "")
        self.engine.dhcp_mode_reason = str(ev.get("reason") or "")
        self.engine.other_server = ev.get("other_server")
        self.mark("engine")
        return {"engine"}

    def _on_ServiceState(self, ev: dict[str, Any], ts: float) -> set[str]:
        name = str(ev.get("service") or "?")
        h = self.services.setdefault(name, ServiceHealth(name))
        h.state = str(ev.get("state") or "")
        h.reason = str(ev.get("reason") or "")
        h.pid = ev.get("pid")
        h.restarts = int(ev.get("restarts") or 0)
        if ev.get("ports"):
            h.ports = list(ev["ports"])
        h.ts = ts
        self.mark("services", name)
        key = f"service:{name}"
        if h.state == "failed":
            self.set_alert(key, "error", f"{name} failed: {h.reason or 'no reason given'}", ts)
        elif h.state == "restarting":
            self.set_alert(key, "warning", f"{name} restarting ({h.restarts}): {h.reason}", ts)
        else:
            self.clear_alert(key)
        return {"services", "alerts"}

    def _on_EventsDropped(self, ev: dict[str, Any], ts: float) -> set[str]:
        name = str(ev.get("service") or "?")
        total = ev.get("total")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            counts = ev.get("counts")
            total = sum(n for n in counts.values() if isinstance(n, int) and n > 0) \
                if isinstance(counts, dict) else 0
        if not total:
            return set()
        self.dropped[name] += total
        self.mark("services", name)
        return {"services"}

    def _on_Alert(self, ev: dict[str, Any], ts: float) -> set[str]:
        key = str(ev.get("key") or ev.get("message") or "")
        if ev.get("cleared"):
            self.clear_alert(key)
        else:
            self.set_alert(key, str(ev.get("severity") or "warning"), str(ev.get("message") or ""), ts)
        return {"alerts"}

    def _on_ForeignDhcpServer(self, ev: dict[str, Any], ts: float) -> set[str]:
        ip = str(ev.get("server_ip") or "?")
        what = f", offering {ev['offered']}" if ev.get("offered") else ""
        self.set_alert(f"foreign-dhcp:{ip}", "warning",
                       f"another DHCP server on the wire: {ip}{what}", ts)
        return {"alerts"}

    def _on_PoolExhausted(self, ev: dict[str, Any], ts: float) -> set[str]:
        pool = str(ev.get("pool") or "")
        self.set_alert(f"pool:{pool}", "error", f"DHCP pool {pool} has no free address", ts)
        return {"alerts"}

    def _on_LeaseGranted(self, ev: dict[str, Any], ts: float) -> set[str]:
        mac, ip = ev.get("mac"), ev.get("ip")
        if not mac or not ip:
            return set()
        ours = bool(ev.get("ours", True))
        lease = LeaseInfo(mac=mac, ip=ip, ours=ours, server_ip=ev.get("server_ip"),
                          hostname=ev.get("hostname"), expires=float(ev.get("expires") or 0),
                          state=str(ev.get("state") or "bound"), ts=ts)
        self.leases[lease.key] = lease
        self.mark("leases", lease.key)
        return {"leases"}

    def _on_LeaseEnded(self, ev: dict[str, Any], ts: float) -> set[str]:
        mac, ip, ours = ev.get("mac"), ev.get("ip"), bool(ev.get("ours", True))
        if mac is not None and ip is not None:  # the usual case: one lease, found by its key
            key = lease_key(mac, ip, ours)
            gone = [key] if key in self.leases else []
        else:  # a wildcard end (every lease of a MAC, or of an address): scan
            gone = [k for k, le in self.leases.items() if le.ours == ours
                    and (ip is None or le.ip == ip) and (mac is None or le.mac == mac)]
        for k in gone:
            del self.leases[k]
            self.mark("leases", k)
        return {"leases"} if gone else set()

    def _on_TransferStarted(self, ev: dict[str, Any], ts: float) -> set[str]:
        tid = str(ev.get("transfer_id") or "")
        self.transfers[tid] = TransferInfo(
            transfer_id=tid, protocol=str(ev.get("protocol") or "tftp"), mac=ev.get("mac"),
            ip=ev.get("ip"), path=str(ev.get("path") or ""), size=ev.get("size"),
            options=dict(ev.get("options") or {}), started=ts, ts=ts,
        )
        self.mark("transfers", tid)
        return {"transfers"}

    def _transfer(self, ev: dict[str, Any], ts: float) -> TransferInfo:
        tid = str(ev.get("transfer_id") or "")
        tr = self.transfers.get(tid)
        if tr is None:  # attached mid-transfer: the start is not in the replay
            tr = TransferInfo(transfer_id=tid, protocol=str(ev.get("protocol") or "tftp"),
                              mac=ev.get("mac"), ip=ev.get("ip"), path=str(ev.get("path") or ""),
                              size=ev.get("size"), options={}, started=ts)
            self.transfers[tid] = tr
        self.mark("transfers", tid)
        return tr

    def _count_bytes(self, tr: TransferInfo, done: int, ts: float) -> None:
        delta = done - tr.bytes_done
        if delta > 0:
            b = int(ts)
            self._buckets[b] = self._buckets.get(b, 0.0) + delta
            self.mark("throughput")
            if len(self._buckets) > self.throughput_window * 2:
                for old in sorted(self._buckets)[: -self.throughput_window]:
                    del self._buckets[old]
        tr.bytes_done = max(tr.bytes_done, done)

    def _on_TransferProgress(self, ev: dict[str, Any], ts: float) -> set[str]:
        tr = self._transfer(ev, ts)
        self._count_bytes(tr, int(ev.get("bytes_done") or 0), ts)
        if ev.get("size"):
            tr.size = int(ev["size"])
        tr.rate = float(ev.get("rate") or 0.0)
        tr.retransmits = int(ev.get("retransmits") or 0)
        tr.ts = ts
        return {"transfers", "throughput"}

    def _finish(self, tr: TransferInfo) -> None:
        self._finished.append(tr.transfer_id)
        while len(self._finished) > self.finished_keep:
            old = self._finished.popleft()
            if old in self.transfers and self.transfers[old].status != "running":
                del self.transfers[old]
                self.mark("transfers", old)

    def _on_TransferFinished(self, ev: dict[str, Any], ts: float) -> set[str]:
        tr = self._transfer(ev, ts)
        self._count_bytes(tr, int(ev.get("bytes_done") or 0), ts)
        tr.rate = float(ev.get("rate") or tr.rate)
        tr.retransmits = int(ev.get("retransmits") or tr.retransmits)
        if tr.size is None:
            tr.size = tr.bytes_done
        tr.status, tr.ts = "done", ts
        self._finish(tr)
        return {"transfers", "throughput"}

    def _on_TransferFailed(self, ev: dict[str, Any], ts: float) -> set[str]:
        tr = self._transfer(ev, ts)
        self._count_bytes(tr, int(ev.get("bytes_done") or 0), ts)
        tr.status, tr.reason, tr.ts = "failed", str(ev.get("reason") or ""), ts
        self._finish(tr)
        return {"transfers", "throughput"}

    def _on_ClientUpdate(self, ev: dict[str, Any], ts: float) -> set[str]:
        mac = ev.get("mac")
        if not mac:
            return set()
        c = self.clients.get(mac) or ClientInfo(mac=mac)
        self.clients[mac] = c
        for k in ("stage", "firmware", "last_event", "diagnosis"):
            if k in ev:
                setattr(c, k, str(ev[k] or ""))
        for k in ("ip", "arch", "vendor_class", "uuid", "hostname"):
            if ev.get(k) is not None:
                setattr(c, k, ev[k])
        if "progress" in ev:
            c.progress = float(ev["progress"] or 0.0)
        if "stages" in ev:
            c.stages = list(ev["stages"] or [])
        if "files" in ev:  # a full list, or (live) the rows that changed: pxetui.events
            apply_file_rows(c.files, ev)
        c.files_dropped = int(ev.get("files_dropped") or 0)
        c.ts = ts
        self.mark("clients", mac)
        # The tracker fills `diagnosis` only when a boot is stuck or failed (empty while it
        # progresses): that is the dashboard's "stuck client" alert.
        key = f"stuck:{mac}"
        if c.diagnosis:
            self.set_alert(key, "warning", f"{mac} at {c.stage or 'start'}: {c.diagnosis}", ts)
        else:
            self.clear_alert(key)
        return {"clients", "alerts"}

    def _on_ClientForgotten(self, ev: dict[str, Any], ts: float) -> set[str]:
        mac = ev.get("mac")
        if mac and self.clients.pop(mac, None) is not None:
            self.mark("clients", mac)
            self.clear_alert(f"stuck:{mac}")
            return {"clients", "alerts"}
        return set()

    def _on_MenuChanged(self, ev: dict[str, Any], ts: float) -> set[str]:
        # The menu itself lives in the state database (the editor reads it there): the event
        # only tells the screens that watch the library to look again.
        self.mark("library", "menu")
        return {"library"}

    def _on_IsoImported(self, ev: dict[str, Any], ts: float) -> set[str]:
        name = str(ev.get("name") or ev.get("path") or "")
        self.library[name] = IsoInfo(name=name, family=str(ev.get("family") or ""),
                                     path=str(ev.get("path") or ""),
                                     entries=list(ev.get("entries") or []), ts=ts)
        self.mark("library", name)
        return {"library"}

    # -- the UI's side of the connection -------------------------------------------------
    def disconnected(self, reason: str) -> set[str]:
        self.connected = False
        self.set_alert("connection", "error", f"engine connection lost: {reason}")
        self.mark("engine")
        return {"alerts", "engine"}

    # -- derived views -------------------------------------------------------------------
    def clients_by_stage(self) -> list[tuple[str, int]]:
        counts = Counter(c.stage or "new" for c in self.clients.values())

        def order(item: tuple[str, int]) -> tuple[int, str]:
            s = item[0]
            return (STAGE_ORDER.index(s) if s in STAGE_ORDER else len(STAGE_ORDER), s)

        return sorted(counts.items(), key=order)

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
