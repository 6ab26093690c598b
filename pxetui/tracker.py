"""Per-client boot progress: a state machine per MAC fed with event dicts.

Stages of one boot, in order (pxetui.stages): discover, offer, ack, bootloader, menu, kernel,
initrd, rootfs, booted. Transfers are placed in a stage by the boot menu first (a file that is
an entry's kernel or initrd, e.g. memtest's `boot/floppy.img`), then by file name and by order
(the first file is the boot loader; an unknown file after the kernel is an initrd). TFTP events carry only
the client IP; the IP-to-MAC map comes from DHCP: an ACK (or a lease) is a fact, and when no
ACK is seen (proxyDHCP: the address server's ACK may be unicast, past our port) the client's
broadcast REQUEST (option 50, or ciaddr when renewing) binds the address it takes, unless an
ACK gave that address to another client.

The same exchange may reach the tracker twice: from our own services and from the capture of
the wire. Our own events win: a wire event that repeats one of ours is dropped, and a wire
transfer that turns out to be ours is re-labelled with our transfer id.

What a ClientUpdate carries, for the UI: `stages` = [{stage, ts, detail, duration}] (duration
until the next stage, None for the current one); `files` = rows {id, source (own|wire),
protocol, path, kind (bootloader|menu|kernel|initrd|rootfs|other), size, bytes, status
(running|done|failed|probe), started, ended, server, ours, reason?, rate?, retransmits?};
`diagnosis` = plain-language reason, empty while the boot is progressing. Live updates are
deltas: `full` false means `files` holds only the rows that changed since the client's previous
update and `files_removed` the ids dropped since (pxetui.events.apply_file_rows folds them);
a new boot, and every update of `snapshot()` (a UI that attaches late), is `full`.

Cost per event is O(1) whatever a client's history (docs/SECURITY.md, "Bounded disk and
memory"): rows are found by transfer id, an update carries what changed, and SQLite writes are
batched into one transaction per `tick()`: a client's row, its boot's row, the file rows that
changed (tracker_files, keyed by (mac, boot, id)) and the events recorded since (tracker_events,
trimmed to the newest). Memory and disk are capped by TrackerConfig: files and events per
client, clients (the least recently active go first), idle expiry and history age.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from pxetui import archtypes, diagnosis
from pxetui.bootfiles import ROOTFS, is_loader, same_transfer, served_path
from pxetui.clientlogs import stages as install
from pxetui.config import TrackerConfig
from pxetui.dhcp.ports import PXE_PORT
from pxetui.events import ClientForgotten, ClientUpdate, Event, LimitReporter, Log, dumps, loads
from pxetui.menus.model import served_initrd
from pxetui.stages import DONE_CALLBACKS, FINAL, INSTALL_STAGES, PROGRESS
from pxetui.store import connect, ensure_schema, write_transaction

DEDUP_SECONDS = 5.0
# DHCPv6 (RFC 8415 section 7.3) names the same boot steps differently: Solicit, Advertise and
# Reply are the DISCOVER, OFFER and ACK stages of an IPv6 boot.
DHCP6_AS_DHCP4 = {"SOLICIT": "DISCOVER", "ADVERTISE": "OFFER", "REPLY": "ACK"}
PROGRESS_EVERY = 1.0  # at most one ClientUpdate per client per second for progress alone
MAX_ALIASES = 10000
MENU_CHECK_EVERY = 2.0  # seconds between looks at whether the stored menu changed
PRUNE_HISTORY_EVERY = 60.0  # seconds between deletions of boots older than tracker.history_days

_MENU = re.compile(r"(pxelinux\.cfg/|grub[^/]*\.cfg$|\.cfg$|\.ipxe$|(^|/)boot\.ipxe|\.menu$|"
                   r"(^|/)menu\.|\.conf$|(^|/)bcd$)", re.I)
_KERNEL = re.compile(r"(^|/)(vmlinuz[^/]*|linux[^/]*|bzimage[^/]*|kernel[^/]*|vmlinux[^/]*|"
                     r"memtest[^/]*|wimboot|[^/]*\.krn)$", re.I)
_INITRD = re.compile(r"(^|/)(initrd[^/]*|initramfs[^/]*|[^/]*\.cpio[^/]*|boot\.sdi)$", re.I)

DDL = """
CREATE TABLE IF NOT EXISTS tracker_clients (
    mac TEXT PRIMARY KEY,
    state TEXT NOT NULL,          -- JSON: the client's current boot, without files and events
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tracker_boots (
    mac TEXT NOT NULL,
    boot INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL NOT NULL,
    stage TEXT NOT NULL,
    firmware TEXT,
    diagnosis TEXT,
    stages TEXT NOT NULL,         -- JSON list of {stage, ts, detail, duration}
    PRIMARY KEY (mac, boot)
);
CREATE INDEX IF NOT EXISTS tracker_boots_ended ON tracker_boots(ended);
CREATE TABLE IF NOT EXISTS tracker_files (
    mac TEXT NOT NULL,
    boot INTEGER NOT NULL,
    id TEXT NOT NULL,             -- the transfer id
    started REAL NOT NULL,
    data TEXT NOT NULL,           -- JSON: the row as in ClientUpdate
    PRIMARY KEY (mac, boot, id)
);
CREATE TABLE IF NOT EXISTS tracker_events (
    mac TEXT NOT NULL,
    seq INTEGER NOT NULL,         -- the client's event counter: the newest are kept
    data TEXT NOT NULL,           -- JSON: the event as recorded for diagnosis
    PRIMARY KEY (mac, seq)
) WITHOUT ROWID
"""

_UPSERT_CLIENT = "INSERT OR REPLACE INTO tracker_clients(mac, state, updated) VALUES (?,?,?)"
_UPSERT_BOOT = ("INSERT OR REPLACE INTO tracker_boots(mac, boot, started, ended, stage, firmware, diagnosis,"
                " stages) VALUES (?,?,?,?,?,?,?,?)")
_UPSERT_FILE = ("INSERT INTO tracker_files(mac, boot, id, started, data) VALUES (?,?,?,?,?)"
                " ON CONFLICT(mac, boot, id) DO UPDATE SET data = excluded.data")
_DELETE_FILE = "DELETE FROM tracker_files WHERE mac=? AND boot=? AND id=?"
_INSERT_EVENT = "INSERT OR REPLACE INTO tracker_events(mac, seq, data) VALUES (?,?,?)"
def drop_old_tables(lease_db: str | Path) -> bool:
    """Releases before tracker.db kept the tracker's tables in the lease database, where its
    writes held the lock the DHCP service's commits wait for: drop them (the history goes)."""
    conn = connect(lease_db)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'tracker\\_%' ESCAPE '\\'")]
        for name in names:
            conn.execute(f"DROP TABLE {name}")
        return bool(names)
    finally:
        conn.close()


_FORGET = tuple(f"DELETE FROM {t} WHERE mac=?"
                for t in ("tracker_clients", "tracker_boots", "tracker_files", "tracker_events"))


def menu_kinds(entries: list[Any]) -> dict[str, str]:
    """served path -> kernel | initrd, from the boot menu's Linux entries (memtest86+ too)."""
    out: dict[str, str] = {}
    for e in entries:
        if e.kind not in ("linux", "wimboot") or not e.kernel:
            continue
        out.setdefault(served_path(e.kernel), "kernel")
        if e.kind == "linux":  # wimboot's `name=path` files are BCD/SDI/WIM: named by rules
            for i in e.initrds:
                out.setdefault(served_path(served_initrd(i, e.kind)), "initrd")
    return out


def classify(path: str, reached: set[str], known: dict[str, str] | None = None) -> str:
    """bootloader | menu | kernel | initrd | rootfs for a file: by the menu's entries (`known`,
    from menu_kinds), then by name, then by order."""
    if known:
        kind = known.get(served_path(path))
        if kind is not None:
            return kind
    name = path.split("?", 1)[0].replace("\\", "/")  # Windows loaders use backslashes (docs/FIELD-NOTES.md)
    if ROOTFS.search(name):
        return "rootfs"
    if _MENU.search(name):
        return "menu"
    if _INITRD.search(name):
        return "initrd"
    if _KERNEL.search(name):
        return "kernel"
    if is_loader(name) and "kernel" not in reached:
        return "bootloader"
    if "kernel" in reached:
        return "initrd"
    # The first file of a boot is its loader; an unknown file between loader and kernel is
    # neither (a callback, a font, a module list): it does not move the stage.
    return "bootloader" if not reached & {"bootloader", "menu"} else "other"


def _events(limit: int) -> deque[dict[str, Any]]:
    return deque(maxlen=limit)


@dataclass(eq=False)
class Client:
    mac: str
    ip: str | None = None
    boot: int = 1
    started: float = 0.0
    last: float = 0.0  # last activity
    stages: list[dict[str, Any]] = field(default_factory=list)
    arch: int | None = None
    vendor_class: str | None = None
    uuid: str | None = None
    hostname: str | None = None
    ipxe: bool = False
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # transfer id -> row, oldest first
    files_dropped: int = 0  # rows of this boot dropped by tracker.max_files_per_client
    events: deque[dict[str, Any]] = field(default_factory=lambda: _events(TrackerConfig.max_events_per_client))
    diagnosis: str = ""
    last_event: str = ""
    stuck: bool = False
    failed: bool = False  # a definite finding: this boot cannot recover
    requested: dict[str, Any] | None = None  # the REQUEST of this boot whose ACK was not seen
    install_step: str = ""  # the installer's current step, from its log lines (clientlogs.stages)
    last_update: float = 0.0
    ips: list[str] = field(default_factory=list)  # addresses mapped to this MAC, newest last
    http_running: set[str] = field(default_factory=set)  # a big download shows no packets until it ends
    progress_recorded: set[str] = field(default_factory=set)  # transfers with a progress event recorded
    # What changed since the last ClientUpdate (the UI's delta) ...
    sent_full: bool = False
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    # ... and since the last save (rows to upsert and delete; events after saved_seq).
    unsaved: dict[str, dict[str, Any]] = field(default_factory=dict)
    unsaved_gone: set[str] = field(default_factory=set)
    event_seq: int = 0  # events recorded for this MAC, ever: their key in tracker_events
    saved_seq: int = 0
    boot_seq: int = 0  # event_seq when this boot began
    saved_boot: int = 0  # the boot whose rows the database holds

    @property
    def stage(self) -> str:
        return self.stages[-1]["stage"] if self.stages else ""

    @property
    def reached(self) -> set[str]:
        return {s["stage"] for s in self.stages}

    @property
    def firmware(self) -> str:
        return archtypes.client_name(self.arch, self.vendor_class, self.ipxe)

    def file(self, tid: str) -> dict[str, Any] | None:
        return self.files.get(tid)

    def stage_rows(self) -> list[dict[str, Any]]:
        """The stages with each one's duration (until the next stage; None for the current)."""
        stages = []
        for i, s in enumerate(self.stages):
            nxt = self.stages[i + 1]["ts"] if i + 1 < len(self.stages) else None
            stages.append({**s, "duration": round(nxt - s["ts"], 3) if nxt is not None else None})
        return stages

    def _update(self, ts: float, rows: Iterable[dict[str, Any]], full: bool, removed: list[str]) -> ClientUpdate:
        # The UI's vocabulary (pxetui/state.py): "stuck" and "failed" are what it alerts on;
        # `stages` keeps where the boot actually got to.
        stage = "stuck" if self.stuck else "failed" if self.failed else self.stage
        return ClientUpdate(ts=ts, service="tracker", mac=self.mac, ip=self.ip, stage=stage,
                            stages=self.stage_rows(), firmware=self.firmware,
                            arch=self.arch, vendor_class=self.vendor_class, uuid=self.uuid,
                            hostname=self.hostname, progress=PROGRESS.get(self.stage, 0.0),
                            last_event=self.last_event, diagnosis=self.diagnosis, boot=self.boot,
                            full=full, files=[dict(f) for f in rows], files_removed=removed,
                            files_dropped=self.files_dropped)

    def update(self, ts: float) -> ClientUpdate:
        """The whole current state (every file row): for a UI that attaches late."""
        return self._update(ts, self.files.values(), True, [])

    def delta(self, ts: float) -> ClientUpdate:
        """What changed since the previous delta; the whole state the first time and after a
        new boot. Costs the rows that changed, not the list."""
        if self.sent_full:
            u = self._update(ts, self.changed.values(), False, self.removed)
        else:
            u = self._update(ts, self.files.values(), True, [])
        self.sent_full, self.changed, self.removed = True, {}, []
        return u


def _own(ev: dict[str, Any]) -> bool:
    """An event from our own services, not from watching the wire."""
    return ev.get("service") != "capture" and ev.get("direction") != "wire"


def _attributed(ev: dict[str, Any]) -> bool:
    """Our service already attributed the sender, and its MAC (or None: nobody's) is final.
    HTTP attributes by the neighbour table and our leases and refuses an address that two
    machines claim (pxetui/attribution.py); so do client logs (docs/CLIENT-LOGS.md). Charging
    such an event to the address's leaseholder would undo that (docs/SECURITY.md, "Callbacks
    and seeds"). TFTP events carry no MAC and keep the address lookup; so do the wire's."""
    return _own(ev) and (ev.get("protocol") == "http" or ev.get("type") in ("ClientLog", "BootCallback"))


_KEPT = tuple(sorted(diagnosis.FIELDS))


def _compact(ev: dict[str, Any]) -> dict[str, Any]:
    """An event as kept for diagnosis: the fields its rules read (diagnosis.FIELDS), without
    the None ones (a DhcpPacket has a dozen): about a third of the memory and disk; the rules
    read fields with .get()."""
    return {k: v for k in _KEPT if (v := ev.get(k)) is not None}


class Tracker:
    def __init__(self, stuck_seconds: float | None = None, db_path: str | Path | None = None,
                 config: TrackerConfig | None = None, menu_db: str | Path | None = None) -> None:
        self.cfg = config or TrackerConfig()
        self.stuck_seconds = self.cfg.stuck_seconds if stuck_seconds is None else stuck_seconds
        self.clients: OrderedDict[str, Client] = OrderedDict()  # least recently active first
        self.ip_mac: dict[str, str] = {}
        self._seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # key -> (ts, own, transfer id)
        self._alias: dict[str, str | None] = {}  # wire transfer id -> ours (None: drop its events)
        self._tid_mac: dict[str, str] = {}  # transfer id -> client MAC
        self._acked: dict[str, str] = {}  # IP -> MAC, from an ACK or a lease: facts
        # Leases of machines not (yet) seen booting, MAC -> IP and IP -> MAC: when one shows it
        # boots (or a transfer comes from the address) it becomes a client with its address
        # (bounded like the aliases, the oldest go first).
        self._leased: OrderedDict[str, str] = OrderedDict()
        self._leased_ip: dict[str, str] = {}
        self._pruned_at = 0.0
        self._history_pruned = float("-inf")
        self._watch: set[str] = set()  # clients that may go stuck: booting, not yet diagnosed
        self._due: set[str] = set()  # clients to look at for a definite finding at the next tick
        self._dirty: set[str] = set()  # clients to write at the next tick
        self._gone: set[str] = set()  # clients to delete from the database at the next tick
        self._queued: list[tuple[str, tuple[Any, ...]]] = []  # statements for the next tick
        self._out: list[Event] = []  # events made on the way (limits, forgotten clients)
        # With `coalesce`, feed() only notes which clients changed and updates() sends one
        # delta each: a DORA is seven events but one client change for its UI (the supervisor
        # asks once per batch it reads; docs/ARCHITECTURE.md, "The event path").
        self.coalesce = False
        self._pending: dict[str, None] = {}
        self._limits = LimitReporter(self._out.append, interval=60.0)
        self._menu: dict[str, str] = {}  # served path -> kernel | initrd (menu_kinds)
        self._menu_stamp: float | None = None
        # The menu lives in the engine's database, apart from the tracker's own history.
        self._menu_db_path = menu_db
        self._menu_conn: sqlite3.Connection | None = None
        self._menu_checked = float("-inf")
        self.db: sqlite3.Connection | None = None
        if db_path is not None:
            self.db = connect(db_path)
            ensure_schema(self.db, DDL)
            self._load()

    # -- persistence --------------------------------------------------------------------
    def _new_client(self, mac: str, ts: float) -> Client:
        return Client(mac=mac, started=ts, last=ts, events=_events(self.cfg.max_events_per_client))

    def _load(self) -> None:
        assert self.db is not None
        for row in self.db.execute("SELECT mac, state FROM tracker_clients ORDER BY updated"):
            try:
                st = json.loads(row["state"])
            except ValueError:
                continue
            c = self._new_client(row["mac"], st.get("started", 0.0))
            c.ip, c.boot, c.last, c.stages = st.get("ip"), st.get("boot", 1), st.get("last", 0.0), st.get("stages", [])
            c.arch, c.vendor_class, c.uuid = st.get("arch"), st.get("vendor_class"), st.get("uuid")
            c.hostname, c.ipxe = st.get("hostname"), st.get("ipxe", False)
            c.diagnosis, c.last_event = st.get("diagnosis", ""), st.get("last_event", "")
            c.stuck, c.failed = st.get("stuck", False), st.get("failed", False)
            c.files_dropped = st.get("files_dropped", 0)
            c.event_seq = c.saved_seq = st.get("event_seq", 0)
            c.boot_seq, c.saved_boot = st.get("boot_seq", 0), c.boot
            if "files" in st or "events" in st:  # written by an older pxetui: all in the JSON
                for f in st.get("files") or []:
                    c.files[f["id"]] = c.unsaved[f["id"]] = f
                c.events.extend(_compact(e) for e in st.get("events") or [])
                c.event_seq, c.saved_seq, c.saved_boot = len(c.events), 0, 0
                self._dirty.add(c.mac)
            self.clients[c.mac] = c
            if c.ip:
                self.ip_mac[c.ip] = c.mac
                c.ips.append(c.ip)
        for row in self.db.execute("SELECT mac, boot, data FROM tracker_files ORDER BY mac, started, rowid"):
            cl = self.clients.get(row["mac"])
            if cl is not None and row["boot"] == cl.boot:
                f = loads(row["data"])
                cl.files[f["id"]] = f
        for row in self.db.execute("SELECT mac, data FROM tracker_events ORDER BY mac, seq"):
            cl = self.clients.get(row["mac"])
            if cl is not None:
                cl.events.append(loads(row["data"]))
        for c in self.clients.values():
            for tid, f in c.files.items():
                self._tid_mac[tid] = c.mac
                if f.get("status") == "running" and f.get("protocol") == "http":
                    c.http_running.add(tid)
            c.progress_recorded = {str(e.get("transfer_id")) for e in c.events if e["type"] == "TransferProgress"}
            c.install_step = _install_step(c.events)
            if c.stages and c.stage not in FINAL and not c.stuck:
                self._watch.add(c.mac)
        while len(self.clients) > self.cfg.max_clients:  # the cap was lowered since
            self._out.append(self._evict(next(iter(self.clients)), "tracker.max_clients lowered"))

    def _write(self, c: Client) -> None:
        """A client's changes since its last save: its row, its boot's row, the file rows that
        changed and the events recorded since. The rest of its history is not rewritten."""
        assert self.db is not None
        db, mac = self.db, c.mac
        st = {"ip": c.ip, "boot": c.boot, "started": c.started, "last": c.last, "stages": c.stages,
              "arch": c.arch, "vendor_class": c.vendor_class, "uuid": c.uuid, "hostname": c.hostname,
              "ipxe": c.ipxe, "diagnosis": c.diagnosis, "last_event": c.last_event, "stuck": c.stuck,
              "failed": c.failed, "files_dropped": c.files_dropped, "event_seq": c.event_seq,
              "boot_seq": c.boot_seq}
        db.execute(_UPSERT_CLIENT, (mac, dumps(st).decode(), c.last))
        if c.stages:
            db.execute(_UPSERT_BOOT, self._boot_row(c))
        if c.saved_boot != c.boot:  # a new boot: the last one's files and events go
            db.execute("DELETE FROM tracker_files WHERE mac=? AND boot<>?", (mac, c.boot))
            db.execute("DELETE FROM tracker_events WHERE mac=? AND seq<=?", (mac, c.boot_seq))
            db.execute("DELETE FROM tracker_boots WHERE mac=? AND boot<=?",
                       (mac, c.boot - self.cfg.max_boots_per_client))
        if c.unsaved_gone:
            db.executemany(_DELETE_FILE, [(mac, c.boot, tid) for tid in c.unsaved_gone])
        if c.unsaved:
            db.executemany(_UPSERT_FILE, [(mac, c.boot, tid, f["started"], dumps(f).decode())
                                          for tid, f in c.unsaved.items()])
        new = min(c.event_seq - c.saved_seq, len(c.events))
        if new > 0:
            first = c.event_seq - new + 1
            recent = reversed(list(islice(reversed(c.events), new)))
            db.executemany(_INSERT_EVENT, [(mac, first + i, dumps(e).decode()) for i, e in enumerate(recent)])
            oldest_kept = c.event_seq - len(c.events) + 1
            if oldest_kept > c.boot_seq + 1:  # the deque is full: what fell out of it goes too
                db.execute("DELETE FROM tracker_events WHERE mac=? AND seq<?", (mac, oldest_kept))

    @staticmethod
    def _written(c: Client) -> None:
        """After the commit: what `_write` wrote is no longer pending (a failed transaction
        leaves it pending for the next tick)."""
        c.unsaved, c.unsaved_gone, c.saved_seq, c.saved_boot = {}, set(), c.event_seq, c.boot

    def _boot_row(self, c: Client) -> tuple[Any, ...]:
        return (c.mac, c.boot, c.started, c.last, c.stage, c.firmware,
                c.diagnosis, json.dumps(c.stage_rows()))

    def _flush(self, now: float | None = None) -> None:
        """Everything held back, in one transaction (one WAL commit): clients to delete, then
        every client changed since the last tick, then (every PRUNE_HISTORY_EVERY) boots older
        than tracker.history_days."""
        if self.db is None:
            return
        prune = now is not None and now - self._history_pruned >= PRUNE_HISTORY_EVERY
        if not (self._gone or self._queued or self._dirty or prune):
            return
        written = [c for mac in self._dirty if (c := self.clients.get(mac)) is not None]
        with write_transaction(self.db):
            for sql in _FORGET if self._gone else ():
                self.db.executemany(sql, [(mac,) for mac in self._gone])
            for sql, args in self._queued:
                self.db.execute(sql, args)
            for c in written:
                self._write(c)
            if prune:
                assert now is not None
                self.db.execute("DELETE FROM tracker_boots WHERE ended < ?",
                                (now - self.cfg.history_days * 86400.0,))
        for c in written:
            self._written(c)
        self._gone.clear()
        self._queued.clear()
        self._dirty.clear()
        if prune:
            assert now is not None
            self._history_pruned = now

    def known_files(self, ts: float) -> dict[str, str]:
        """The menu's kernels and initrds, re-read when the stored menu changed."""
        if abs(ts - self._menu_checked) < MENU_CHECK_EVERY:
            return self._menu
        self._menu_checked = ts
        from pxetui.menus.model import Menu

        # Plain reads (WAL: never wait for an import's write transaction); no menu table yet
        # or an unreadable menu: the name rules still place the files.
        try:
            conn = self._menu_source()
            if conn is None:
                return self._menu
            row = conn.execute("SELECT data, updated FROM menu WHERE id = 1").fetchone()
            if row is None:
                self._menu, self._menu_stamp = {}, None
            elif row["updated"] != self._menu_stamp:
                self._menu_stamp = row["updated"]
                self._menu = menu_kinds(Menu.from_dict(json.loads(row["data"])).entries)
        except (sqlite3.Error, ValueError, TypeError, AttributeError):
            self._menu = {}
        return self._menu

    def _menu_source(self) -> sqlite3.Connection | None:
        if self._menu_db_path is None:
            return self.db
        if self._menu_conn is None:
            if not Path(self._menu_db_path).exists():
                return None
            self._menu_conn = connect(self._menu_db_path)
        return self._menu_conn

    def history(self, mac: str) -> list[dict[str, Any]]:
        """Every recorded boot of a client, oldest first (what is held back is written first)."""
        if self.db is None:
            return []
        self._flush()
        rows = self.db.execute("SELECT * FROM tracker_boots WHERE mac=? ORDER BY boot", (mac,))
        return [{**dict(r), "stages": json.loads(r["stages"])} for r in rows]

    def _drop(self, mac: str) -> Client | None:
        """Take a client out of memory: its addresses, transfers and pending work."""
        c = self.clients.pop(mac, None)
        if c is None:
            return None
        for ip in c.ips:
            for m in (self.ip_mac, self._acked):
                if m.get(ip) == mac:
                    del m[ip]
        for tid in c.files:
            self._tid_mac.pop(tid, None)
        for s in (self._dirty, self._watch, self._due):
            s.discard(mac)
        return c

    def _evict(self, mac: str, reason: str) -> ClientForgotten:
        """Forget a client the caps or idle expiry remove; the database follows at the next tick."""
        self._drop(mac)
        if self.db is not None:
            self._gone.add(mac)
        return ClientForgotten(service="tracker", mac=mac, reason=reason)

    def forget(self, mac: str) -> None:
        """Drop a client and its history (the UI's "forget")."""
        self._drop(mac)
        self._gone.discard(mac)
        if self.db is not None:
            with write_transaction(self.db):
                for sql in _FORGET:
                    self.db.execute(sql, (mac,))

    def close(self) -> None:
        if self.db is not None:
            self._flush()
            self.db.close()
            self.db = None
        if self._menu_conn is not None:
            self._menu_conn.close()
            self._menu_conn = None

    # -- feeding --------------------------------------------------------------------------
    def feed(self, ev: dict[str, Any]) -> list[Event]:
        kind = ev.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return []
        ts = float(ev.get("ts") or 0.0)
        self._prune(ts)
        c = handler(ev, ts)
        out = self._take_out()
        if c is None:
            return out
        c.last = max(c.last, ts)
        self.clients.move_to_end(c.mac)  # least recently active first: expiry and caps take from the front
        c.stuck = False  # activity: diagnose again if it stops again
        if c.stages and c.stage not in FINAL:
            self._watch.add(c.mac)
        if self.db is not None:
            self._dirty.add(c.mac)  # written at the next tick, with every other change
        if kind == "TransferProgress" and ts - c.last_update < PROGRESS_EVERY:
            return out
        if self.coalesce:
            self._pending[c.mac] = None
            return out
        out.append(self._emit(c, ts))
        return out

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def updates(self) -> list[Event]:
        """One update for each client changed since the last call (coalesce mode)."""
        pending, self._pending = self._pending, {}
        return [self._emit(c, c.last) for mac in pending if (c := self.clients.get(mac)) is not None]

    def _changed_aside(self, c: Client, ts: float) -> None:
        """`c` changed by an event that belongs to another client or none: saved and told as feed()
        does for the event's own client."""
        if self.db is not None:
            self._dirty.add(c.mac)
        if self.coalesce:
            self._pending[c.mac] = None
        else:
            self._out.append(self._emit(c, ts))

    def _take_out(self) -> list[Event]:
        if not self._out:
            return []
        out = list(self._out)
        self._out.clear()
        return out

    def _emit(self, c: Client, ts: float) -> ClientUpdate:
        c.last_update = ts
        self._pending.pop(c.mac, None)  # this delta carries what was pending
        return c.delta(ts)

    def _client(self, ev: dict[str, Any], create: bool = True) -> Client | None:
        ip = ev.get("ip")
        mac = ev.get("mac")
        if not mac and ip and not _attributed(ev):
            mac = self.ip_mac.get(ip) or self._leased_ip.get(ip)
        if not mac:
            return None
        c = self.clients.get(mac)
        if c is None and not create:
            return None
        if c is None:
            ts = float(ev.get("ts") or 0.0)
            while len(self.clients) >= self.cfg.max_clients:
                old = next(iter(self.clients))
                self._out.append(self._evict(old, "tracker.max_clients: the least recently active client"))
                self._limits.hit("tracker.max_clients", None,
                                 f"more than {self.cfg.max_clients} clients: forgot the least recently "
                                 f"active ({old})", ts)
            c = self.clients[mac] = self._new_client(mac, ts)
            leased = self._leased.pop(mac, None)
            if leased is not None:  # its lease, from before it showed it was booting
                self._leased_ip.pop(leased, None)
                self._bind(c, leased, acked=True)
        return c

    def _remember_lease(self, mac: str, ip: str) -> None:
        old = self._leased.pop(mac, None)
        if old is not None:
            self._leased_ip.pop(old, None)
        other = self._leased_ip.pop(ip, None)
        if other is not None:
            self._leased.pop(other, None)
        self._leased[mac], self._leased_ip[ip] = ip, mac
        while len(self._leased) > MAX_ALIASES:
            _, gone = self._leased.popitem(last=False)
            self._leased_ip.pop(gone, None)

    def _prune(self, ts: float) -> None:
        """Forget de-duplication keys older than the window; at most once a second."""
        if ts - self._pruned_at < 1.0:
            return
        self._pruned_at = ts
        for k, seen in list(self._seen.items()):
            if ts - seen[0] > DEDUP_SECONDS:
                del self._seen[k]
        while len(self._alias) > MAX_ALIASES:
            del self._alias[next(iter(self._alias))]

    def _dup(self, key: tuple[Any, ...], ev: dict[str, Any], ts: float) -> bool:
        """True when this exchange was already seen (from the other source) moments ago."""
        prev = self._seen.get(key)
        if prev is not None and ts - prev[0] <= DEDUP_SECONDS:
            return True
        self._seen[key] = (ts, _own(ev), None)
        return False

    def _stage(self, c: Client, stage: str, ts: float, detail: str) -> None:
        if stage in c.reached:
            return
        c.stages.append({"stage": stage, "ts": ts, "detail": detail})
        c.stuck = c.failed = False
        c.diagnosis = ""

    def _record(self, c: Client, ev: dict[str, Any], label: str) -> None:
        c.last_event = label
        c.events.append(_compact(ev))  # a bounded deque: the oldest go (tracker.max_events_per_client)
        c.event_seq += 1

    def _definite(self, c: Client) -> None:
        """Publish what cannot recover (a loop, a 404 after the kernel started): looked for at
        the next tick, once per client however many events came (the rules read every event
        of the boot, too much for every packet of a flood)."""
        self._due.add(c.mac)

    def _new_boot(self, c: Client, ts: float) -> None:
        if self.db is not None and c.stages:
            self._queued.append((_UPSERT_BOOT, self._boot_row(c)))  # the finished boot, as it ended
        for tid in c.files:
            self._tid_mac.pop(tid, None)
        c.boot += 1
        c.started, c.stages, c.files, c.files_dropped = ts, [], {}, 0
        c.events.clear()
        c.boot_seq = c.saved_seq = c.event_seq
        c.http_running, c.progress_recorded = set(), set()
        c.changed, c.removed, c.sent_full = {}, [], False  # the next update is whole (and empty)
        c.unsaved, c.unsaved_gone = {}, set()
        c.arch, c.vendor_class, c.ipxe = None, None, False
        c.diagnosis, c.stuck, c.failed, c.requested = "", False, False, None
        c.install_step = ""

    # -- file rows ------------------------------------------------------------------------
    def _touch(self, c: Client, row: dict[str, Any]) -> None:
        """A row changed: in the next delta and the next save."""
        c.changed[row["id"]] = row
        if self.db is not None:
            c.unsaved[row["id"]] = row

    def _gone_row(self, c: Client, tid: str) -> None:
        """A row left the client's list: the UI and the database drop it too."""
        self._tid_mac.pop(tid, None)
        c.http_running.discard(tid)
        c.progress_recorded.discard(tid)
        c.changed.pop(tid, None)
        c.removed.append(tid)
        if self.db is not None:
            c.unsaved.pop(tid, None)
            c.unsaved_gone.add(tid)

    def _add_file(self, c: Client, row: dict[str, Any], ts: float) -> None:
        tid = row["id"]
        c.files[tid] = row
        self._tid_mac[tid] = c.mac
        self._touch(c, row)
        if len(c.files) > self.cfg.max_files_per_client:  # the oldest row goes
            old = next(iter(c.files))
            del c.files[old]
            self._gone_row(c, old)
            c.files_dropped += 1
            self._limits.hit("tracker.max_files_per_client", c.ip,
                             f"{c.mac} fetched more than {self.cfg.max_files_per_client} files this boot: "
                             f"the oldest are dropped ({c.files_dropped} so far)", ts)

    def _rekey(self, c: Client, old: str, tid: str) -> dict[str, Any]:
        """The wire's row of a transfer becomes ours: same row, our transfer id."""
        row = c.files.pop(old)
        running = old in c.http_running
        self._gone_row(c, old)
        row["id"] = tid
        c.files[tid] = row
        self._tid_mac[tid] = c.mac
        if running:
            c.http_running.add(tid)
        self._touch(c, row)
        return row

    # -- addresses ------------------------------------------------------------------------
    def _bind(self, c: Client, ip: str | None, acked: bool) -> bool:
        """Map an address to a client. An ACK or a lease is a fact and always binds; a REQUEST
        (option 50 or ciaddr) binds only an address no ACK gave to another client."""
        if not ip or ip in ("0.0.0.0", "255.255.255.255"):
            return False
        if acked:
            self._acked[ip] = c.mac
        elif self._acked.get(ip, c.mac) != c.mac:
            return False
        self.ip_mac[ip] = c.mac
        c.ip = ip if acked or not c.ip or self._acked.get(c.ip) != c.mac else c.ip
        self._remember_ip(c, ip)
        return True

    def _remember_ip(self, c: Client, ip: str) -> None:
        """The addresses a MAC holds, newest last, at most tracker.max_addresses_per_client: a
        host asking for address after address cannot grow the IP-to-MAC map."""
        if c.ips and c.ips[-1] == ip:
            return
        if ip in c.ips:
            c.ips.remove(ip)
        c.ips.append(ip)
        if len(c.ips) > self.cfg.max_addresses_per_client:
            old = next(a for a in c.ips if a != c.ip)
            c.ips.remove(old)
            for m in (self.ip_mac, self._acked):
                if m.get(old) == c.mac:
                    del m[old]
            self._limits.hit("tracker.max_addresses_per_client", ip,
                             f"{c.mac} asked for more than {self.cfg.max_addresses_per_client} "
                             f"addresses: forgot {old}", c.last)

    def _request_stage(self, c: Client) -> None:
        """The client used the address it asked for (it fetches files): its REQUEST stands for
        the ACK the address server sent unicast, past our port."""
        r = c.requested
        if r is None or "ack" in c.reached or "offer" not in c.reached:
            return
        self._stage(c, "ack", r["ts"], f"{r['ip']} requested from {r['server'] or '?'} (its ACK was not seen)")

    # -- DHCP -----------------------------------------------------------------------------
    def _on_DhcpPacket(self, ev: dict[str, Any], ts: float) -> Client | None:
        name = str(ev.get("msg_type") or "")
        msg = DHCP6_AS_DHCP4.get(name, name)
        # A plain BOOTP message is a reply when it comes from a server (out, or seen with one).
        reply = msg in ("OFFER", "ACK", "NAK") or (msg == "BOOTP" and (
            ev.get("direction") == "out" or bool(ev.get("server_mac") or ev.get("yiaddr"))))
        key = ("dhcp", ev.get("mac"), ev.get("xid"), msg, ev.get("server_ip") if reply else None)
        if self._dup(key, ev, ts):
            return None
        vc = ev.get("vendor_class")
        # Only a machine that is booting becomes a client here: the packet says PXE/HTTP boot
        # (vendor class, option 93, iPXE) or hands it a boot file. A laptop taking an address
        # is in the leases table, not a boot that went "stuck" at its ACK.
        booting = (bool(ev.get("boot_file")) or archtypes.is_boot_client(str(vc or ""))
                   or ev.get("arch") is not None or bool(ev.get("ipxe")))
        c = self._client(ev, create=booting)
        if c is None:
            return None
        if msg == "DISCOVER" and archtypes.is_boot_client(str(vc or "")):
            # Firmware starting over: after the kernel, or after a long silence. iPXE's own
            # DISCOVER in the loader stage is the same boot (a chain), not a new one.
            if c.stages and ("kernel" in c.reached or ts - c.last > max(self.stuck_seconds, 60.0)):
                self._new_boot(c, ts)
        if not reply:
            # A client with an address (renewals, port 4011: ciaddr), or one taking the address
            # named in a broadcast REQUEST (RFC 2131 4.3.2, option 50).
            self._bind(c, ev.get("ip"), acked=False)
            if msg == "REQUEST" and self._bind(c, ev.get("requested_ip"), acked=False) \
                    and ev.get("port") != PXE_PORT:
                c.requested = {"ts": ts, "ip": ev["requested_ip"], "server": ev.get("server_ip")}
        if not reply:
            # The first identity of a boot wins: OVMF retries as an HTTP client (arch 16)
            # after PXE fails, and that is still the same x64 UEFI machine.
            c.arch = c.arch if c.arch is not None else ev.get("arch")
            c.vendor_class = c.vendor_class or vc
            c.uuid = ev.get("uuid") or c.uuid
            c.hostname = ev.get("hostname") or c.hostname
            c.ipxe = c.ipxe or bool(ev.get("ipxe"))
        who = ev.get("server_ip") or "?"
        if msg == "DISCOVER":
            arch = f"arch {ev['arch']}, " if ev.get("arch") is not None else ""
            self._stage(c, "discover", ts, f"{arch}{vc or 'no vendor class'}")
        elif msg == "OFFER":
            what = ev.get("yiaddr") or "boot info only (proxyDHCP)"
            self._stage(c, "offer", ts, f"{what} from {who}" + (f", file {ev['boot_file']}" if ev.get("boot_file") else ""))
        elif msg == "NAK":
            # The address asked for was refused: a REQUEST's binding was a wrong guess.
            if c.requested is not None and self._acked.get(c.requested["ip"]) != c.mac:
                if self.ip_mac.get(c.requested["ip"]) == c.mac:
                    del self.ip_mac[c.requested["ip"]]
                if c.ip == c.requested["ip"]:
                    c.ip = None
            c.requested = None
        elif msg == "ACK" or (msg == "BOOTP" and reply):
            self._bind(c, ev.get("yiaddr"), acked=True)
            what = ("boot info (proxyDHCP, port 4011)" if ev.get("port") == PXE_PORT
                    else ev.get("yiaddr") or "boot info")
            self._stage(c, "ack", ts, f"{what} from {who}"
                        + (f", file {ev['boot_file']}" if ev.get("boot_file") else ""))
        self._record(c, ev, f"DHCP {name}" + (f" from {who}" if reply else ""))
        return c

    def _on_LeaseGranted(self, ev: dict[str, Any], ts: float) -> Client | None:
        c = self._client(ev, create=False)  # a lease alone is no boot
        ip = ev.get("ip")
        if c is None and ip and ev.get("mac"):
            self._remember_lease(str(ev["mac"]), str(ip))
        if c is None or not self._bind(c, ip, acked=True):
            return None
        c.hostname = ev.get("hostname") or c.hostname
        self._stage(c, "ack", ts, f"{ev['ip']} from {ev.get('server_ip') or '?'}")
        return c

    def _on_BootDecision(self, ev: dict[str, Any], ts: float) -> Client | None:
        c = self._client(ev)
        if c is None:
            return None
        c.arch = ev["arch"] if ev.get("arch") is not None else c.arch
        self._record(c, ev, f"boot file {ev.get('boot_file')}: {ev.get('reason')}")
        return c

    # -- transfers ------------------------------------------------------------------------
    def _on_TransferStarted(self, ev: dict[str, Any], ts: float) -> Client | None:
        tid, path = str(ev.get("transfer_id") or ""), str(ev.get("path") or "")
        own = _own(ev)
        # Our TFTP server reports the name it resolved; the wire shows what the client asked
        # ('/boot.0' from GRUB, backslashes from Windows loaders, docs/FIELD-NOTES.md).
        key = ("xfer", *same_transfer(ev.get("ip"), ev.get("protocol"), path))
        prev = self._seen.get(key)
        if prev is not None and ts - prev[0] <= DEDUP_SECONDS and prev[1] != own:
            if not own:
                self._alias[tid] = None  # the wire's copy of our transfer: ours reports it
                return None
            # Ours arrives after the wire's copy: our row takes over the wire's.
            found = self._row(prev[2])
            if found is not None and _attributed(ev) and ev.get("mac") != found[0].mac:
                # The wire's copy was put on a client by its address; our HTTP service says the
                # sender is another machine or nobody: the row leaves that client.
                c, row = found
                del c.files[row["id"]]
                self._gone_row(c, row["id"])
                self._alias[row["id"]] = None  # the wire's later events of it too
                self._changed_aside(c, ts)
                found = None
            if found is not None:
                c, row = found
                self._alias[row["id"]] = tid
                row = self._rekey(c, row["id"], tid)
                row.update(source="own", size=ev.get("size") or row["size"])
                self._seen[key] = (ts, True, tid)
                return c
        self._seen[key] = (ts, own, tid)
        c = self._client(ev)
        if c is None:
            return None
        self._request_stage(c)
        kind = classify(path, c.reached, self.known_files(ts))
        opts = ev.get("options") or {}
        protocol = ev.get("protocol", "tftp")
        self._add_file(c, {"id": tid, "source": "own" if own else "wire", "protocol": protocol,
                           "path": path, "kind": kind, "size": ev.get("size"), "bytes": 0,
                           "status": "running", "started": ts, "ended": None,
                           "server": opts.get("server"), "ours": bool(ev.get("ours", True))}, ts)
        if protocol == "http":
            c.http_running.add(tid)
        # Menu probes fail on every normal pxelinux boot: the menu stage counts the one that arrives.
        if kind not in ("menu", "other"):
            self._stage(c, kind, ts, path)
        self._record(c, ev, f"{protocol.upper()} {path}")
        self._definite(c)
        return c

    def _row(self, tid: str) -> tuple[Client, dict[str, Any]] | None:
        c = self.clients.get(self._tid_mac.get(tid, ""))
        row = c.file(tid) if c is not None else None
        return (c, row) if c is not None and row is not None else None

    def _transfer(self, ev: dict[str, Any]) -> tuple[Client, dict[str, Any]] | None:
        tid = str(ev.get("transfer_id") or "")
        if tid in self._alias and (self._alias[tid] is None or not _own(ev)):
            return None  # the wire's copy of one of ours: ours reports it
        return self._row(tid)

    def _on_TransferProgress(self, ev: dict[str, Any], ts: float) -> Client | None:
        found = self._transfer(ev)
        if found is None:
            return None
        c, row = found
        row["bytes"] = ev.get("bytes_done", row["bytes"])
        row["size"] = ev.get("size") or row["size"]
        row["rate"] = ev.get("rate", 0.0)
        self._touch(c, row)
        tid = row["id"]
        if ev.get("retransmits"):
            if ev["retransmits"] != row.get("retransmits"):  # each new retry once, not every progress line
                row["retransmits"] = ev["retransmits"]
                c.progress_recorded.add(tid)
                self._record(c, ev, f"{row['path']}: retry {ev['retransmits']}")
        elif ev.get("size") and tid not in c.progress_recorded:
            c.progress_recorded.add(tid)  # the size, once per transfer, for diagnosis
            self._record(c, ev, f"{row['path']}: {ev['size']} bytes")
        return c

    def _on_TransferFinished(self, ev: dict[str, Any], ts: float) -> Client | None:
        found = self._transfer(ev)
        if found is None:
            return None
        c, row = found
        row.update(bytes=ev.get("bytes_done", row["bytes"]), status="done", ended=ts,
                   seconds=ev.get("seconds"), rate=ev.get("rate"))
        self._touch(c, row)
        c.http_running.discard(row["id"])
        if row["kind"] == "menu":
            self._stage(c, "menu", row["started"], row["path"])
        self._record(c, ev, f"{row['path']} done ({row['bytes']} bytes)")
        return c

    def _on_TransferFailed(self, ev: dict[str, Any], ts: float) -> Client | None:
        found = self._transfer(ev)
        if found is None:
            # A failure with no start (refused before a path was known) still belongs to the client.
            c = self._client(ev)
            if c is None or ev.get("transfer_id") in self._alias:
                return None
            row = None
        else:
            c, row = found
        reason = str(ev.get("reason") or "")
        if row is not None:
            probe = reason.startswith(diagnosis.SIZE_PROBE)
            row.update(status="probe" if probe else "failed", ended=ts, reason=reason,
                       bytes=ev.get("bytes_done", row["bytes"]))
            self._touch(c, row)
            c.http_running.discard(row["id"])
        self._record(c, ev, f"{ev.get('path') or '?'} failed: {reason}")
        self._definite(c)
        return c

    def _on_BootCallback(self, ev: dict[str, Any], ts: float) -> Client | None:
        c = self._client(ev)
        if c is None:
            return None
        stage = str(ev.get("stage") or "")
        self._request_stage(c)
        if stage in DONE_CALLBACKS:
            self._stage(c, "booted", ts, stage + (f": {ev['entry']}" if ev.get("entry") else ""))
        self._record(c, ev, f"callback {stage} {ev.get('detail') or ''}".strip())
        self._definite(c)
        return c

    def _on_ClientLog(self, ev: dict[str, Any], ts: float) -> Client | None:
        """An installer's or kernel's log line (pxetui/clientlogs): the installer's lines move
        the client through the install stages; any line is its last event. A line makes a new
        client only when it is an installer's: a machine that merely logs to us is not a boot."""
        app, message = str(ev.get("app") or ""), str(ev.get("message") or "")
        installer = install.is_installer(app)
        c = self._client(ev, create=installer)
        if c is None:
            return None
        c.last_event = f"log: {app + ': ' if app else ''}{message}"[:300]
        if not installer:
            return c
        r = install.read(app, message, c.install_step)
        moved = r.step != c.install_step
        c.install_step = r.step
        if r.stage and self._install_stage(c, r.stage, ts, r.detail or message):
            moved = True
        if moved or r.failure:
            # Only lines that move the installer are kept for the diagnosis (its rules replay
            # them, with the steps): the chatter would push the boot's events out of the window.
            label = c.last_event
            self._record(c, ev, label)
        if r.failure:
            self._definite(c)
        return c

    def _install_stage(self, c: Client, stage: str, ts: float, detail: str) -> bool:
        """Reach an install stage unless the client is already past it (a late line of an
        earlier step does not move it back)."""
        reached = [INSTALL_STAGES.index(s) for s in c.reached if s in INSTALL_STAGES]
        if reached and INSTALL_STAGES.index(stage) <= max(reached):
            return False
        if not reached and stage != "installer":
            self._stage(c, "installer", ts, "first installer log line")
        self._stage(c, stage, ts, detail)
        return True

    # -- time ---------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Event]:
        """Once a second: definite findings for clients with new transfers, diagnose clients
        that made no progress for `stuck_seconds`, expire idle clients, write what changed."""
        out = self._take_out() + self.updates()
        for mac in self._due:
            c = self.clients.get(mac)
            if c is None:
                continue
            found = diagnosis.definite(list(c.events))
            message = " ".join(f.message for f in found)
            if found and (not c.failed or c.diagnosis != message):
                c.diagnosis, c.failed = message, True
                out.append(self._emit(c, now))
                if self.db is not None:
                    self._dirty.add(mac)
        self._due.clear()
        for mac in list(self._watch):
            c = self.clients.get(mac)
            if c is None or c.stuck or not c.stages or c.stage in FINAL:
                self._watch.discard(mac)
                continue
            idle = now - c.last
            if idle < self.stuck_seconds:
                continue
            if c.http_running and idle < 10 * self.stuck_seconds:
                continue  # a big HTTP download shows no packets until it ends
            if c.stage in INSTALL_STAGES and idle < 10 * self.stuck_seconds:
                continue  # an installer formatting a disk or fetching packages may log nothing for minutes
            c.stuck = True
            self._watch.discard(mac)
            found = diagnosis.diagnose(list(c.events))
            c.diagnosis = " ".join(f.message for f in found) if found else \
                diagnosis.stalled(c.stage, idle, c.last_event)
            out.append(self._emit(c, now))
            if self.db is not None:
                self._dirty.add(mac)
        out += self._expire(now)
        self._flush(now)
        return out

    def _expire(self, now: float) -> list[Event]:
        """Clients idle for longer than tracker.idle_expiry leave memory and the database (the
        least recently active are at the front: this looks at no other client)."""
        out: list[Event] = []
        cutoff = now - self.cfg.idle_expiry
        while self.clients:
            mac, c = next(iter(self.clients.items()))
            if c.last > cutoff:
                break
            out.append(self._evict(mac, f"idle for more than {_span(self.cfg.idle_expiry)}"))
        if out:
            out.append(Log(ts=now, service="tracker",
                           message=f"forgot {len(out)} client(s) idle for more than "
                                   f"{_span(self.cfg.idle_expiry)} (tracker.idle_expiry)"))
        return out

    def snapshot(self) -> list[ClientUpdate]:
        """Every client's whole state: what a UI that attaches now must see first."""
        return [c.update(c.last) for c in self.clients.values()]


def _install_step(events: Iterable[dict[str, Any]]) -> str:
    """The installer's step, replayed from the log lines a client's boot recorded."""
    lines = [(str(e.get("app") or ""), str(e.get("message") or "")) for e in events if e.get("type") == "ClientLog"]
    readings = install.replay(lines)
    return readings[-1].step if readings else ""


def _span(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:.0f} day(s)"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} s"
