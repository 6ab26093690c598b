"""Per-client boot progress: a state machine per MAC fed with event dicts.

Stages of one boot, in order: discover, offer, ack, bootloader, menu, kernel, initrd, rootfs,
booted. Transfers are placed in a stage by the boot menu first (a file that is an entry's
kernel or initrd, e.g. memtest's `boot/floppy.img`), then by file name and by order (the first
file is the boot loader; an unknown file after the kernel is an initrd). TFTP events carry only
the client IP; the IP-to-MAC map comes from DHCP: an ACK (or a lease) is a fact, and when no
ACK is seen (proxyDHCP: the address server's ACK may be unicast, past our port) the client's
broadcast REQUEST (option 50, or ciaddr when renewing) binds the address it takes, unless an
ACK gave that address to another client.

The same exchange may reach the tracker twice: from our own services and from the capture of
the wire. Our own events win: a wire event that repeats one of ours is dropped, and a wire
transfer that turns out to be ours is re-labelled with our transfer id.

State survives restarts in SQLite (tables tracker_clients and tracker_boots).

What a ClientUpdate carries, for the UI: `stages` = [{stage, ts, detail, duration}] (duration
until the next stage, None for the current one); `files` = [{id, source (own|wire), protocol,
path, kind (bootloader|menu|kernel|initrd|rootfs|other), size, bytes, status
(running|done|failed|probe), started, ended, server, ours, reason?, rate?, retransmits?}];
`diagnosis` = plain-language reason, empty while the boot is progressing.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pxetui import diagnosis
from pxetui.events import ClientUpdate, Event
from pxetui.store import connect, ensure_schema, write_transaction

STAGES = ("discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd", "rootfs", "booted")
PROGRESS = {"discover": 0.05, "offer": 0.1, "ack": 0.15, "bootloader": 0.3, "menu": 0.4,
            "kernel": 0.6, "initrd": 0.75, "rootfs": 0.9, "booted": 1.0}
FIRMWARE = {0: "bios", 6: "uefi32", 7: "uefi64", 9: "uefi64", 10: "arm32", 11: "arm64",
            15: "http32", 16: "http64", 18: "arm32-http", 19: "arm64-http", 20: "bios-http"}
DEDUP_SECONDS = 5.0
PROGRESS_EVERY = 1.0  # at most one ClientUpdate per client per second for progress alone
MAX_EVENTS = 1000  # per client and boot, kept for diagnosis
MAX_ALIASES = 10000
MENU_CHECK_EVERY = 2.0  # seconds between looks at whether the stored menu changed
SAVE_EVERY = 5.0  # seconds between SQLite writes of a client whose stage did not change

_MENU = re.compile(r"(pxelinux\.cfg/|grub[^/]*\.cfg$|\.cfg$|\.ipxe$|(^|/)boot\.ipxe|\.menu$|"
                   r"(^|/)menu\.|\.conf$|(^|/)bcd$)", re.I)
_KERNEL = re.compile(r"(^|/)(vmlinuz[^/]*|linux[^/]*|bzimage[^/]*|kernel[^/]*|vmlinux[^/]*|"
                     r"memtest[^/]*|wimboot|[^/]*\.krn)$", re.I)
_INITRD = re.compile(r"(^|/)(initrd[^/]*|initramfs[^/]*|[^/]*\.cpio[^/]*|boot\.sdi)$", re.I)
_ROOTFS = re.compile(r"(\.squashfs|\.sfs|squashfs\.img|\.iso|(^|/)modloop[^/]*|\.wim)$", re.I)
_LOADER = re.compile(r"(\.0|\.k?k?pxe|\.pxe|\.efi|\.com|\.n12|\.c32|\.lkrn)$", re.I)

DDL = """
CREATE TABLE IF NOT EXISTS tracker_clients (
    mac TEXT PRIMARY KEY,
    state TEXT NOT NULL,          -- JSON: the client's current boot, as in ClientUpdate
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
"""


def served_path(path: str) -> str:
    """A path as the client asked for it or as a menu names it, reduced to the served path:
    no scheme and host, no `{http}`/`{server}` template, no query, no leading slash, lower case
    (Windows loaders use backslashes, GRUB adds a leading slash: REFERENCE.md)."""
    p = path.split("?", 1)[0].replace("\\", "/")
    p = re.sub(r"^(\{(http|server)\}|[a-z][a-z0-9+.-]*://[^/]*)", "", p, flags=re.I)
    return p.lstrip("/").lower()


def menu_kinds(entries: list[Any]) -> dict[str, str]:
    """served path -> kernel | initrd, from the boot menu's Linux entries (memtest86+ too)."""
    out: dict[str, str] = {}
    for e in entries:
        if e.kind not in ("linux", "wimboot") or not e.kernel:
            continue
        out.setdefault(served_path(e.kernel), "kernel")
        if e.kind == "linux":  # wimboot's `name=path` files are BCD/SDI/WIM: named by rules
            for i in e.initrds:
                out.setdefault(served_path(i), "initrd")
    return out


def classify(path: str, reached: set[str], known: dict[str, str] | None = None) -> str:
    """bootloader | menu | kernel | initrd | rootfs for a file: by the menu's entries (`known`,
    from menu_kinds), then by name, then by order."""
    if known:
        kind = known.get(served_path(path))
        if kind is not None:
            return kind
    name = path.split("?", 1)[0].replace("\\", "/")  # Windows loaders use backslashes (REFERENCE.md)
    if _ROOTFS.search(name):
        return "rootfs"
    if _MENU.search(name):
        return "menu"
    if _INITRD.search(name):
        return "initrd"
    if _KERNEL.search(name):
        return "kernel"
    if _LOADER.search(name) and "kernel" not in reached:
        return "bootloader"
    if "kernel" in reached:
        return "initrd"
    # The first file of a boot is its loader; an unknown file between loader and kernel is
    # neither (a callback, a font, a module list): it does not move the stage.
    return "bootloader" if not reached & {"bootloader", "menu"} else "other"


def firmware_of(arch: int | None, vendor_class: str | None, ipxe: bool) -> str:
    fw = FIRMWARE.get(arch, f"arch{arch}") if arch is not None else ""
    if (vendor_class or "").startswith("HTTPClient") and "http" not in fw:
        fw = (fw + "-http") if fw else "http"
    if ipxe:
        fw = f"{fw}/ipxe" if fw else "ipxe"
    return fw


@dataclass
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
    files: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: str = ""
    last_event: str = ""
    stuck: bool = False
    failed: bool = False  # a definite finding: this boot cannot recover
    requested: dict[str, Any] | None = None  # the REQUEST of this boot whose ACK was not seen
    last_update: float = 0.0
    saved_key: tuple[Any, ...] = ()
    saved_at: float = 0.0

    @property
    def stage(self) -> str:
        return self.stages[-1]["stage"] if self.stages else ""

    @property
    def reached(self) -> set[str]:
        return {s["stage"] for s in self.stages}

    def file(self, tid: str) -> dict[str, Any] | None:
        return next((f for f in self.files if f["id"] == tid), None)

    def stage_rows(self) -> list[dict[str, Any]]:
        """The stages with each one's duration (until the next stage; None for the current)."""
        stages = []
        for i, s in enumerate(self.stages):
            nxt = self.stages[i + 1]["ts"] if i + 1 < len(self.stages) else None
            stages.append({**s, "duration": round(nxt - s["ts"], 3) if nxt is not None else None})
        return stages

    def update(self, ts: float) -> ClientUpdate:
        # The UI's vocabulary (pxetui/state.py): "stuck" and "failed" are what it alerts on;
        # `stages` keeps where the boot actually got to.
        stage = "stuck" if self.stuck else "failed" if self.failed else self.stage
        return ClientUpdate(ts=ts, service="tracker", mac=self.mac, ip=self.ip, stage=stage,
                            stages=self.stage_rows(), firmware=firmware_of(self.arch, self.vendor_class, self.ipxe),
                            arch=self.arch, vendor_class=self.vendor_class, uuid=self.uuid,
                            hostname=self.hostname, progress=PROGRESS.get(self.stage, 0.0),
                            last_event=self.last_event, diagnosis=self.diagnosis,
                            files=[dict(f) for f in self.files])


def _own(ev: dict[str, Any]) -> bool:
    """An event from our own services, not from watching the wire."""
    return ev.get("service") != "capture" and ev.get("direction") != "wire"


def _save_key(c: Client) -> tuple[Any, ...]:
    """What a restart must not lose: a change of it is written at once, anything else later."""
    return (c.boot, c.stage, c.diagnosis, len(c.files))


def _progress_recorded(events: list[dict[str, Any]], tid: str) -> bool:
    """Whether a TransferProgress of this transfer is among the recorded events. Looked for
    from the newest back to the transfer's start: our TFTP server's progress comes several
    times a second, and a boot keeps up to MAX_EVENTS events."""
    for e in reversed(events):
        if e.get("transfer_id") == tid:
            if e["type"] == "TransferProgress":
                return True
            if e["type"] == "TransferStarted":
                return False
    return False


class Tracker:
    def __init__(self, stuck_seconds: float = 90.0, db_path: str | Path | None = None) -> None:
        self.stuck_seconds = stuck_seconds
        self.clients: dict[str, Client] = {}
        self.ip_mac: dict[str, str] = {}
        self._seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # key -> (ts, own, transfer id)
        self._alias: dict[str, str | None] = {}  # wire transfer id -> ours (None: drop its events)
        self._tid_mac: dict[str, str] = {}  # transfer id -> client MAC
        self._acked: dict[str, str] = {}  # IP -> MAC, from an ACK or a lease: facts
        self._pruned_at = 0.0
        self._dirty: set[str] = set()
        self._menu: dict[str, str] = {}  # served path -> kernel | initrd (menu_kinds)
        self._menu_stamp: float | None = None
        self._menu_checked = float("-inf")
        self.db: sqlite3.Connection | None = None
        if db_path is not None:
            self.db = connect(db_path)
            ensure_schema(self.db, DDL)
            self._load()

    # -- persistence --------------------------------------------------------------------
    def _load(self) -> None:
        assert self.db is not None
        for row in self.db.execute("SELECT mac, state FROM tracker_clients"):
            try:
                st = json.loads(row["state"])
            except ValueError:
                continue
            c = Client(mac=row["mac"], ip=st.get("ip"), boot=st.get("boot", 1), started=st.get("started", 0.0),
                       last=st.get("last", 0.0), stages=st.get("stages", []), arch=st.get("arch"),
                       vendor_class=st.get("vendor_class"), uuid=st.get("uuid"), hostname=st.get("hostname"),
                       ipxe=st.get("ipxe", False), files=st.get("files", []), events=st.get("events", []),
                       diagnosis=st.get("diagnosis", ""), last_event=st.get("last_event", ""),
                       stuck=st.get("stuck", False), failed=st.get("failed", False))
            self.clients[c.mac] = c
            if c.ip:
                self.ip_mac[c.ip] = c.mac
            for f in c.files:
                self._tid_mac[f["id"]] = c.mac

    def _execute(self, writes: list[tuple[str, tuple[Any, ...]]]) -> None:
        """The statements as one transaction: one WAL commit, where autocommit makes one a
        statement (a client's save is two; closing saves every client with unsaved changes)."""
        assert self.db is not None
        with write_transaction(self.db):
            for sql, args in writes:
                self.db.execute(sql, args)

    def _save(self, *clients: Client) -> None:
        if self.db is None or not clients:
            return
        # The JSON is built before the write lock is taken.
        self._execute([w for c in clients for w in self._rows(c)])

    def _rows(self, c: Client) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements that store a client's current boot."""
        st = {"ip": c.ip, "boot": c.boot, "started": c.started, "last": c.last, "stages": c.stages,
              "arch": c.arch, "vendor_class": c.vendor_class, "uuid": c.uuid, "hostname": c.hostname,
              "ipxe": c.ipxe, "files": c.files, "events": c.events[-200:], "diagnosis": c.diagnosis,
              "last_event": c.last_event, "stuck": c.stuck, "failed": c.failed}
        rows: list[tuple[str, tuple[Any, ...]]] = [(
            "INSERT OR REPLACE INTO tracker_clients(mac, state, updated) VALUES (?,?,?)",
            (c.mac, json.dumps(st, default=str), c.last))]
        if c.stages:
            rows.append((
                "INSERT OR REPLACE INTO tracker_boots(mac, boot, started, ended, stage, firmware, diagnosis, stages)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (c.mac, c.boot, c.started, c.last, c.stage, firmware_of(c.arch, c.vendor_class, c.ipxe),
                 c.diagnosis, json.dumps(c.stage_rows()))))
        return rows

    def known_files(self, ts: float) -> dict[str, str]:
        """The menu's kernels and initrds, re-read when the stored menu changed."""
        if self.db is None or abs(ts - self._menu_checked) < MENU_CHECK_EVERY:
            return self._menu
        self._menu_checked = ts
        from pxetui.menus.model import Menu

        # Plain reads (WAL: never wait for an import's write transaction); no menu table yet
        # or an unreadable menu: the name rules still place the files.
        try:
            row = self.db.execute("SELECT data, updated FROM menu WHERE id = 1").fetchone()
            if row is None:
                self._menu, self._menu_stamp = {}, None
            elif row["updated"] != self._menu_stamp:
                self._menu_stamp = row["updated"]
                self._menu = menu_kinds(Menu.from_dict(json.loads(row["data"])).entries)
        except (sqlite3.Error, ValueError, TypeError, AttributeError):
            self._menu = {}
        return self._menu

    def history(self, mac: str) -> list[dict[str, Any]]:
        """Every recorded boot of a client, oldest first."""
        if self.db is None:
            return []
        rows = self.db.execute("SELECT * FROM tracker_boots WHERE mac=? ORDER BY boot", (mac,))
        return [{**dict(r), "stages": json.loads(r["stages"])} for r in rows]

    def forget(self, mac: str) -> None:
        """Drop a client and its history (the UI's "forget")."""
        c = self.clients.pop(mac, None)
        for m in (self.ip_mac, self._acked):
            for ip in [ip for ip, owner in m.items() if owner == mac]:
                del m[ip]
        for f in c.files if c is not None else []:
            self._tid_mac.pop(f["id"], None)
        self._dirty.discard(mac)
        if self.db is not None:
            self._execute([("DELETE FROM tracker_clients WHERE mac=?", (mac,)),
                           ("DELETE FROM tracker_boots WHERE mac=?", (mac,))])

    def close(self) -> None:
        if self.db is not None:
            self._save(*(self.clients[mac] for mac in self._dirty if mac in self.clients))
            self._dirty.clear()
            self.db.close()
            self.db = None

    # -- feeding --------------------------------------------------------------------------
    def feed(self, ev: dict[str, Any]) -> list[Event]:
        kind = ev.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return []
        ts = float(ev.get("ts") or 0.0)
        self._prune(ts)
        c = handler(ev, ts)
        if c is None:
            return []
        c.last = max(c.last, ts)
        c.stuck = False  # activity: diagnose again if it stops again
        if kind == "TransferProgress" and ts - c.last_update < PROGRESS_EVERY:
            self._dirty.add(c.mac)  # not shown yet, but tick() or close() must still save it
            return []
        return [self._emit(c, ts)]

    def _emit(self, c: Client, ts: float) -> ClientUpdate:
        c.last_update = ts
        # Write when something a restart must not lose changed, else at most every few
        # seconds (then, or from tick(), `_flush`): a storm of progress events must not become
        # a storm of SQLite writes.
        key = _save_key(c)
        if key != c.saved_key or ts - c.saved_at >= SAVE_EVERY:
            self._save(c)
            c.saved_key, c.saved_at = key, ts
            self._dirty.discard(c.mac)
        else:
            self._dirty.add(c.mac)
        return c.update(ts)

    def _client(self, ev: dict[str, Any]) -> Client | None:
        mac = ev.get("mac") or (self.ip_mac.get(ev["ip"]) if ev.get("ip") else None)
        if not mac:
            return None
        c = self.clients.get(mac)
        if c is None:
            c = self.clients[mac] = Client(mac=mac, started=float(ev.get("ts") or 0.0))
        return c

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
        c.events.append(ev)
        if len(c.events) > MAX_EVENTS:
            del c.events[: len(c.events) - MAX_EVENTS]

    def _definite(self, c: Client) -> None:
        """Publish at once what cannot recover (a loop, a 404 after the kernel started)."""
        definite = diagnosis.definite(c.events)
        if definite:
            c.diagnosis = " ".join(f.message for f in definite)
            c.failed = True

    def _new_boot(self, c: Client, ts: float) -> None:
        self._save(c)
        for f in c.files:
            self._tid_mac.pop(f["id"], None)
        c.boot += 1
        c.started, c.stages, c.files, c.events = ts, [], [], []
        c.arch, c.vendor_class, c.ipxe = None, None, False
        c.diagnosis, c.stuck, c.failed, c.requested = "", False, False, None

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
        return True

    def _request_stage(self, c: Client) -> None:
        """The client used the address it asked for (it fetches files): its REQUEST stands for
        the ACK the address server sent unicast, past our port."""
        r = c.requested
        if r is None or "ack" in c.reached or "offer" not in c.reached:
            return
        self._stage(c, "ack", r["ts"], f"{r['ip']} requested from {r['server'] or '?'} (its ACK was not seen)")

    # -- DHCP -----------------------------------------------------------------------------
    def _on_DhcpPacket(self, ev: dict[str, Any], ts: float) -> Client | None:
        msg = str(ev.get("msg_type") or "")
        # A plain BOOTP message is a reply when it comes from a server (out, or seen with one).
        reply = msg in ("OFFER", "ACK", "NAK") or (msg == "BOOTP" and (
            ev.get("direction") == "out" or bool(ev.get("server_mac") or ev.get("yiaddr"))))
        key = ("dhcp", ev.get("mac"), ev.get("xid"), msg, ev.get("server_ip") if reply else None)
        if self._dup(key, ev, ts):
            return None
        c = self._client(ev)
        if c is None:
            return None
        vc = ev.get("vendor_class")
        if msg == "DISCOVER" and str(vc or "").startswith(("PXEClient", "HTTPClient")):
            # Firmware starting over: after the kernel, or after a long silence. iPXE's own
            # DISCOVER in the loader stage is the same boot (a chain), not a new one.
            if c.stages and ("kernel" in c.reached or ts - c.last > max(self.stuck_seconds, 60.0)):
                self._new_boot(c, ts)
        if not reply:
            # A client with an address (renewals, port 4011: ciaddr), or one taking the address
            # named in a broadcast REQUEST (RFC 2131 4.3.2, option 50).
            self._bind(c, ev.get("ip"), acked=False)
            if msg == "REQUEST" and self._bind(c, ev.get("requested_ip"), acked=False) \
                    and ev.get("port") != 4011:
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
            what = "boot info (proxyDHCP, port 4011)" if ev.get("port") == 4011 else ev.get("yiaddr") or "boot info"
            self._stage(c, "ack", ts, f"{what} from {who}"
                        + (f", file {ev['boot_file']}" if ev.get("boot_file") else ""))
        self._record(c, ev, f"DHCP {msg}" + (f" from {who}" if reply else ""))
        return c

    def _on_LeaseGranted(self, ev: dict[str, Any], ts: float) -> Client | None:
        c = self._client(ev)
        if c is None or not self._bind(c, ev.get("ip"), acked=True):
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
        # ('/boot.0' from GRUB, backslashes from Windows loaders, REFERENCE.md).
        key = ("xfer", ev.get("ip"), ev.get("protocol", "tftp"), served_path(path))
        prev = self._seen.get(key)
        if prev is not None and ts - prev[0] <= DEDUP_SECONDS and prev[1] != own:
            if not own:
                self._alias[tid] = None  # the wire's copy of our transfer: ours reports it
                return None
            # Ours arrives after the wire's copy: our row takes over the wire's.
            found = self._row(prev[2])
            if found is not None:
                c, row = found
                self._alias[row["id"]] = tid
                self._tid_mac.pop(row["id"], None)
                self._tid_mac[tid] = c.mac
                row.update(id=tid, source="own", size=ev.get("size") or row["size"])
                self._seen[key] = (ts, True, tid)
                return c
        self._seen[key] = (ts, own, tid)
        c = self._client(ev)
        if c is None:
            return None
        self._request_stage(c)
        kind = classify(path, c.reached, self.known_files(ts))
        opts = ev.get("options") or {}
        self._tid_mac[tid] = c.mac
        c.files.append({"id": tid, "source": "own" if own else "wire", "protocol": ev.get("protocol", "tftp"),
                        "path": path, "kind": kind, "size": ev.get("size"), "bytes": 0, "status": "running",
                        "started": ts, "ended": None, "server": opts.get("server"),
                        "ours": bool(ev.get("ours", True))})
        # Menu probes fail on every normal pxelinux boot: the menu stage counts the one that arrives.
        if kind not in ("menu", "other"):
            self._stage(c, kind, ts, path)
        self._record(c, ev, f"{ev.get('protocol', 'tftp').upper()} {path}")
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
        if ev.get("retransmits"):
            row["retransmits"] = ev["retransmits"]
            self._record(c, ev, f"{row['path']}: retry {ev['retransmits']}")
        elif ev.get("size") and not _progress_recorded(c.events, row["id"]):
            self._record(c, ev, f"{row['path']}: {ev['size']} bytes")
        return c

    def _on_TransferFinished(self, ev: dict[str, Any], ts: float) -> Client | None:
        found = self._transfer(ev)
        if found is None:
            return None
        c, row = found
        row.update(bytes=ev.get("bytes_done", row["bytes"]), status="done", ended=ts,
                   seconds=ev.get("seconds"), rate=ev.get("rate"))
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
        self._record(c, ev, f"{ev.get('path') or '?'} failed: {reason}")
        self._definite(c)
        return c

    def _on_BootCallback(self, ev: dict[str, Any], ts: float) -> Client | None:
        c = self._client(ev)
        if c is None:
            return None
        stage = str(ev.get("stage") or "")
        self._request_stage(c)
        if stage in ("booted", "installed"):
            self._stage(c, "booted", ts, stage + (f": {ev['entry']}" if ev.get("entry") else ""))
        self._record(c, ev, f"callback {stage} {ev.get('detail') or ''}".strip())
        self._definite(c)
        return c

    # -- time ---------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Event]:
        """Diagnose clients that made no progress for `stuck_seconds`."""
        out: list[Event] = []
        for c in self.clients.values():
            if c.stuck or not c.stages or c.stage == "booted":
                continue
            idle = now - c.last
            if idle < self.stuck_seconds:
                continue
            if any(f["status"] == "running" and f["protocol"] == "http" for f in c.files) \
                    and idle < 10 * self.stuck_seconds:
                continue  # a big HTTP download shows no packets until it ends
            c.stuck = True
            found = diagnosis.diagnose(c.events)
            c.diagnosis = " ".join(f.message for f in found) if found else \
                diagnosis.stalled(c.stage, idle, c.last_event)
            out.append(self._emit(c, now))
        self._flush(now)
        return out

    def _flush(self, now: float) -> None:
        """Write the clients whose changes `_emit` held back, once SAVE_EVERY has passed: a
        client that went quiet keeps its last progress across a restart (the engine does not
        wait for close())."""
        if self.db is None or not self._dirty:
            return
        due = [c for mac in self._dirty if (c := self.clients.get(mac)) is not None and now - c.saved_at >= SAVE_EVERY]
        self._save(*due)
        for c in due:
            c.saved_key, c.saved_at = _save_key(c), now
            self._dirty.discard(c.mac)

    def snapshot(self) -> list[ClientUpdate]:
        return [c.update(c.last) for c in self.clients.values()]
