"""Process supervision: one child process per service, events relayed, crashes restarted.

The supervisor never serves packets itself (docs/FIELD-NOTES.md, "Library evidence": a UDP server sharing a loop with a busy
UI had p99 latency of 1.1 s). It starts `python -m pxetui.service NAME CFG` per service, reads
their JSON-line events, feeds the client tracker, keeps a replayable state for UIs that attach
over the control socket, restarts a service that dies (backoff 0.5 s doubling to 30 s, reset
after a minute of health), and stops everything within 2 s of SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import os
import signal
import socket
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pxetui import __version__, metrics, privileges, store
from pxetui import reload as reload_plan
from pxetui.config import Config
from pxetui.control import LINE_LIMIT, socket_path
from pxetui.dhcp import answer
from pxetui.emitter import LineReader
from pxetui.events import (
    Alert,
    BootCallback,
    ClientForgotten,
    ClientUpdate,
    EngineStarted,
    Event,
    EventDecodeError,
    EventsDropped,
    Log,
    ReplayDone,
    ServiceState,
    TransferFinished,
    dumps,
    from_dict,
    is_complete,
    loads,
    packet_tally,
    shares_containers,
)
from pxetui.interpreter import python_module
from pxetui.menus.model import MenuError
from pxetui.metrics_server import MetricsServer
from pxetui.netinfo import port_holders
from pxetui.state import STATEFUL, EngineState
from pxetui.status import status_of
from pxetui.tracker import Tracker, drop_old_tables

BACKOFF_START, BACKOFF_MAX, HEALTHY_AFTER = 0.5, 30.0, 60.0
RELOAD_ALERT = "config.reload"  # the Alert a refused reload raises and a good one clears
# What a UI attaching late is replayed besides the state: the newest events that change no
# table (logs, packets, boot decisions), and how many finished transfers the state keeps.
HISTORY = 3000
# Client log lines (pxetui/clientlogs) are replayed from a history of their own: an installer's
# chatter must not push everything else out of the one above.
CLIENT_LOG_HISTORY = 1000
STOP_GRACE = 1.5
# A service's events read this many seconds after they were emitted: the engine is behind (a
# storm, and the CPU goes to serving first, NICE). Then the per-packet kinds below are counted
# and left unfolded, at ~4 µs a line instead of ~40: the engine catches up within seconds,
# a UI shows the present and the drop counters while the storm lasts, and leases, transfers,
# alerts and states are still all folded (docs/ARCHITECTURE.md, "Shedding when behind").
SHED_LAG = 2.0
SHEDDABLE = frozenset({"DhcpPacket", "DhcpIgnored", "BootDecision", "TransferProgress"})
# Serving never waits for watching, for the CPU either: on a busy machine the kernel should
# prefer the services that answer clients over the supervisor, the tracker, the UI and capture
# (measured, `pxetui serve` on 2 cores at 3,000 DORA/s: 36-79 % lost at one priority, 0-12 %
# with these). DHCP comes first: every boot starts with it, a DORA is little CPU, and in a storm
# it still waited on the run queue 3 s of every 5 at -5, beside TFTP and the load (schedstat,
# bench/engine/run.py at 3,000 DORA/s). Nice values relative to ours; raising one needs root
# (services start as root).
NICE = {"dhcp": -10, "dhcp6": -10, "tftp": -5, "http": -5, "capture": 5, "logs": 5}


def prioritize(pid: int, name: str) -> None:
    """Give a service process its scheduling priority (TFTP workers inherit their service's).

    Each service runs in a session of its own, and with autogroups (CONFIG_SCHED_AUTOGROUP, on
    in Debian's kernels) a session competes for the CPU as one group whatever the nice values
    inside it: the service's group gets the same nice. Without that, DHCP at -10 shared one
    group's share with the supervisor and capture, and a load generator, a QEMU or a shell in
    other sessions each had as much (bench/engine/run.py: it waited on the run queue 3 s of 5)."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    nice = max(-20, min(19, base + NICE.get(name, 0)))
    with contextlib.suppress(OSError):  # unprivileged (cannot raise it), or already gone
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError):  # no autogroups, or not allowed
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")


def services_for(cfg: Config) -> list[str]:
    names = []
    if cfg.dhcp.mode != "off":
        names.append("dhcp")
    # DHCPv6 follows ipv6.enabled; dhcp.mode = "off" (another server hands out addresses)
    # leaves only a proxy-mode DHCPv6, which adds boot URLs and hands out none (docs/IPV6.md).
    if cfg.ipv6.enabled and (cfg.dhcp.mode != "off" or cfg.ipv6.mode == "proxy"):
        names.append("dhcp6")
    if cfg.tftp.enabled:
        names.append("tftp")
    if cfg.http.enabled:
        names.append("http")
    if cfg.capture.enabled:
        names.append("capture")
    if cfg.logs.enabled:
        names.append("logs")
    return names


def ports_needed(cfg: Config, names: list[str]) -> dict[int, str]:
    ports: dict[int, str] = {}
    if "dhcp" in names:
        ports[67] = "udp"
        if cfg.dhcp.mode in ("proxy", "auto"):
            ports[4011] = "udp"
    if "dhcp6" in names:
        ports[547] = "udp"  # port_holders sees IPv4 sockets only: a clash shows at bind
    if "tftp" in names:
        ports[cfg.tftp.port] = "udp"
    if "http" in names:
        ports[cfg.http.port] = "tcp"
    if "logs" in names:
        # One port per protocol here: port_holders looks a port up by (port, protocol); the TCP
        # syslog listener shares the UDP port number.
        ports[cfg.logs.syslog_port] = "udp"
        ports[cfg.logs.netconsole_port] = "udp"
    return ports


def preflight(cfg: Config, names: list[str]) -> list[str]:
    """Problems that stop the engine before it starts: ports held by other processes."""
    mine = os.getpid()
    return [h.describe() for h in port_holders(ports_needed(cfg, names)) if h.pid != mine]


SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)  # Linux socket(7); root may pass wmem_max


def widen_send_buffer(writer: asyncio.StreamWriter, size: int) -> None:
    """Let the kernel hold `size` bytes of a UI's stream. A UI's writer hands the socket at most
    one send buffer per turn of the loop, while a turn relays up to 256 KiB from each service
    pipe: with the default ~200 KiB a UI that read as fast as it could fell events.ui_queue_max
    behind and was cut loose in every round of a 1,000-client storm (bench/storm)."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    for opt in (SO_SNDBUFFORCE, socket.SO_SNDBUF):  # unprivileged: capped at net.core.wmem_max
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
            return
        except OSError:
            continue


def exit_reason(code: int) -> str:
    """`exited with code 1`, or the signal by name: `killed by SIGBUS` says more than -7."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class ServiceRunner:
    """One service process and its restart loop."""

    def __init__(self, sup: Supervisor, name: str) -> None:
        self.sup, self.name = sup, name
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.bad_lines = 0  # event lines that were not an event, this run of the service
        self.stopping = False
        self.restart_requested = False  # a reload restarts it: not a failure, no backoff
        self.last_error = ""
        self.ever_running = False
        self.task: asyncio.Task[None] | None = None
        self.shed: Counter[str] = Counter()  # events left unfolded since the last report (SHED_LAG)
        self.shed_packets: Counter[str] = Counter()  # ... their DHCP messages (EventsDropped.packets)

    def state(self, state: str, reason: str = "") -> None:
        pid = self.proc.pid if self.proc else None
        self.sup.publish(ServiceState(service=self.name, state=state, reason=reason, pid=pid,
                                      restarts=self.restarts))

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            self.state("stopped")

    async def _loop(self) -> None:
        backoff = BACKOFF_START
        while not self.stopping:
            started = time.monotonic()
            self.last_error = ""  # this run's: an earlier run's error must not name this one's end
            self.state("starting" if self.restarts == 0 else "restarting")
            # The config goes down the stdin pipe, whose write end we keep: the service stops at
            # its EOF, so it cannot outlive us (docs/SECURITY.md, process hygiene), and no file
            # holds it that an unprivileged service could rewrite for its next, root, start.
            self.proc = await asyncio.create_subprocess_exec(
                *python_module("pxetui.service", self.name, "-", "--parent", str(os.getpid())),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.PIPE, limit=LINE_LIMIT,
                start_new_session=True,  # its own CPU group (prioritize); we stop it, not a ^C
            )
            prioritize(self.proc.pid, self.name)
            assert self.proc.stdin is not None
            self.proc.stdin.write(self.sup.config_line)
            await asyncio.gather(self._pump_events(), self._pump_stderr())
            code = await self.proc.wait()
            self.proc.stdin.close()
            if self.stopping:
                break
            if self.restart_requested:
                self.restart_requested = False
                continue
            reason = self.last_error or exit_reason(code)
            if self.sup.fail_fast and not self.ever_running:
                self.state("failed", reason)
                self.sup.fatal = f"{self.name}: {reason}"
                asyncio.ensure_future(self.sup.stop())
                return
            if time.monotonic() - started > HEALTHY_AFTER:
                backoff = BACKOFF_START
            self.restarts += 1
            self.state("failed", reason)
            self.sup.publish(Log(service=self.name, level_name="error",
                                 message=f"{self.name} died ({reason}); restarting in {backoff:.1f}s"))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _pump_events(self) -> None:
        """Keep up with the service: one read per chunk of lines, not per line (a service never
        waits for us, pxetui/emitter.py, so whatever we fail to read it drops and counts).
        Each line is rebuilt as its event class here, once: everything downstream is typed."""
        assert self.proc and self.proc.stdout
        reader = LineReader(self.proc.stdout)
        self.bad_lines = 0
        async for lines in reader.batches():
            stale = time.time() - SHED_LAG  # once per chunk: a chunk is read in a few ms
            for line in lines:
                self.take(line, stale)
        if self.bad_lines > 1:
            self.sup.publish(Log(service=self.name, level_name="error",
                                 message=f"{self.bad_lines} bad event lines skipped"))
        if reader.skipped:
            self.sup.publish(Log(service=self.name, level_name="error",
                                 message=f"{reader.skipped} over-long event lines skipped"))

    def take(self, line: bytes, stale: float = 0.0) -> None:
        """One event line from the service: rebuilt as its class, then relayed; a per-packet
        one emitted before `stale` is counted in `shed` instead (SHED_LAG)."""
        try:
            d = loads(line)
            if not isinstance(d, dict):
                raise EventDecodeError("not a JSON object")
            kind = d.get("type")
            if kind in SHEDDABLE:
                ts = d.get("ts")
                if isinstance(ts, (int, float)) and ts < stale:
                    self.shed[kind] += 1
                    if kind == "DhcpPacket":
                        self.shed_packets[packet_tally(d.get("direction"), d.get("msg_type"))] += 1
                    return
            ev = from_dict(d)
        except ValueError as exc:  # EventDecodeError is one
            self.bad_lines += 1
            if self.bad_lines == 1:  # the first says what is wrong; the rest are counted
                self.sup.publish(Log(service=self.name, level_name="error",
                                     message=f"bad event line {line[:200]!r}: {exc}"))
            return
        # The service's own line goes on to the UIs only when it is exactly the event: a line
        # with a field this version does not know (or lacks one) is written again from the event.
        passed_on: bytes | None = line if is_complete(d, type(ev)) else None
        if not ev.service:
            ev.service = d["service"] = self.name
            passed_on = None
        if isinstance(ev, ServiceState):
            ev.restarts = self.restarts
            self.ever_running |= ev.state == "running"
            passed_on = None
        # The tracker may keep `d`; it must not share a list or dict with the folded event.
        self.sup.relay(ev, None if shares_containers(type(ev)) else d, passed_on)

    async def _pump_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if not text:
                continue
            if "cannot start" in text or "Error" in text or text.startswith("Fatal Python error"):
                self.last_error = text.split(": ", 1)[-1] if "cannot start" in text else text
            self.sup.publish(Log(service=self.name, level_name="debug", message=text))

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def restart(self) -> None:
        """Stop the process (SIGTERM, SIGKILL after STOP_GRACE) for the loop to start it again at
        once with the supervisor's current config line. Between restarts there is nothing to do:
        the next start reads the current config anyway."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        self.restart_requested = True
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            self.signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_GRACE: the whole engine stops within 2 s."""
        self.stopping = True
        if self.task is None:
            return
        if self.proc is None or self.proc.returncode is not None:
            self.task.cancel()  # between restarts: nothing to signal, end the backoff sleep
        else:
            self.signal(signal.SIGTERM)
        done, _ = await asyncio.wait({self.task}, timeout=STOP_GRACE)
        if not done:
            self.signal(signal.SIGKILL)
            done, _ = await asyncio.wait({self.task}, timeout=0.4)
            if not done:
                self.task.cancel()
                await asyncio.wait({self.task}, timeout=0.1)


class Supervisor:
    def __init__(self, cfg: Config, names: list[str] | None = None,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.cfg = cfg
        self.names = services_for(cfg) if names is None else names
        self.on_event = on_event
        # The one fold of the event stream (pxetui/state.py): what a UI attaching late is
        # replayed, with the newest events that change no table.
        self.state = EngineState(log_size=0, track_dirty=False)
        self.recent: deque[Event] = deque(maxlen=HISTORY)
        self.recent_logs: deque[Event] = deque(maxlen=CLIENT_LOG_HISTORY)
        # One queue per attached UI, of (type, encoded event line) (None: the end of its
        # stream), with how many it may hold: its replay plus events.ui_queue_max.
        self.subscribers: dict[asyncio.Queue[tuple[str, bytes] | None], int] = {}
        self.runners = {n: ServiceRunner(self, n) for n in self.names}
        self.stopped = asyncio.Event()
        self.config_line = cfg.to_json().encode() + b"\n"  # what each service reads first
        self.identity: privileges.Identity | None = None  # who the services run as (start())
        self.tracker: Tracker | None = None  # made by start()
        self._updates_due = False  # the tracker's coalesced updates are to be sent
        # Set when a service fails before it ever ran: `serve` exits non-zero with the reason.
        self.fatal = ""
        self.boot_once_entries: set[str] = set()
        self._answer_kept: set[str] = set()  # boot-once kept for a Proxmox answer (said once)
        self.fail_fast = True
        self._server: asyncio.base_events.Server | None = None
        self._metrics: MetricsServer | None = None
        self._db_anchor: sqlite3.Connection | None = None  # see store.anchor
        self._reload_lock = asyncio.Lock()

    # -- events ---------------------------------------------------------------------------
    def publish(self, ev: Event) -> None:
        self.relay(ev)

    def relay(self, ev: Event, d: dict[str, Any] | None = None, line: bytes | None = None) -> None:
        """Fold, log and pass on one event, then feed the tracker. `d` is the event as a dict
        the tracker may keep and `line` its JSON line, when the caller has them already (a
        service's line, decoded once: docs/ARCHITECTURE.md, "The event path")."""
        self._emit(ev, line)
        if ev.mac in self.boot_once_entries:
            if isinstance(ev, BootCallback):
                self._boot_once_used(str(ev.mac))
            elif isinstance(ev, TransferFinished) and answer.is_answer_path(ev.path):
                self._boot_once_used(str(ev.mac), answered=True)
        if self.tracker is not None and not isinstance(ev, (ClientUpdate, Log)):
            self._derive(self.tracker.feed, d if d is not None else ev.to_dict())
            if self.tracker.pending and not self._updates_due:
                self._updates_due = True
                try:  # after the batch being read: one update per client it changed
                    asyncio.get_running_loop().call_soon(self._send_updates)
                except RuntimeError:
                    self._send_updates()

    def _send_updates(self) -> None:
        self._updates_due = False
        tracker = self.tracker
        if tracker is not None:
            self._derive(lambda _: tracker.updates(), None)

    def _derive(self, step: Callable[[Any], list[Event]], arg: Any) -> None:
        """Emit what a tracker step (feed an event, tick the clock) derives."""
        try:
            derived = step(arg)
        except Exception as exc:  # a tracker bug must not take the engine down
            self._emit(Log(service="tracker", level_name="error", message=f"tracker: {exc!r}"))
            return
        for d in derived:
            self._emit(d)

    def _emit(self, ev: Event, line: bytes | None = None) -> None:
        """Fold the event into the state (or the history), hand it to every UI: its line,
        encoded here once however many UIs, unless the service's own line is passed on."""
        self.state.apply(ev)
        name = type(ev).__name__
        if name not in STATEFUL:
            (self.recent_logs if name == "ClientLog" else self.recent).append(ev)
        if self.on_event:
            self.on_event(ev)
        if not self.subscribers:
            return
        item = (name, (line if line is not None else dumps(ev.view())) + b"\n")
        cut = [q for q, most in self.subscribers.items() if q.qsize() >= most]
        for q in self.subscribers:
            q.put_nowait(item)
        for q in cut:
            self._cut(q)

    def replay(self) -> list[Event]:
        """What a UI attaching now is sent: the state as events (every client whole, though
        live ClientUpdates are deltas), then the recent history, the counters again (the
        history counted twice in the reader's fold) and the end of the replay."""
        history = heapq.merge(self.recent, self.recent_logs, key=lambda e: e.ts)
        out = [*self.state.snapshot(), *history, self.state.totals()]
        return [*out, ReplayDone(service="engine", events=len(out))]

    def metrics_text(self) -> str:
        """GET /metrics (pxetui/metrics_server.py): the fold as pxetui status reports it."""
        return metrics.render(status_of(self.state, time.time()))

    def _cut(self, q: asyncio.Queue[tuple[str, bytes] | None]) -> None:
        """A UI that stopped reading: cut it loose, keep serving. It reattaches and gets the
        state replayed; everyone learns what it never got (what was still queued for it)."""
        self.subscribers.pop(q, None)
        lost: Counter[str] = Counter()
        while not q.empty():
            item = q.get_nowait()
            if item is not None:
                lost[item[0]] += 1
        q.put_nowait(None)
        self._emit(EventsDropped(service="ui", counts=dict(lost), total=sum(lost.values())))

    # -- per-host overrides ---------------------------------------------------------------
    def _reload_hosts(self, services: tuple[str, ...] = ("dhcp", "http", "tftp")) -> None:
        """Re-read which MACs boot once into a menu entry; services re-read their overrides."""
        conn = store.connect(self.cfg.db_path)
        try:
            rows = store.host_overrides(conn)
        finally:
            conn.close()
        self.boot_once_entries = {m for m, r in rows.items() if r["boot_once"] not in (None, "local")}
        for n in services:
            if n in self.runners:
                self.runners[n].signal(signal.SIGHUP)

    def _boot_once_used(self, mac: str, answered: bool = False) -> None:
        """"Boot once into an entry" is spent when the client reports it is booting that entry
        (the iPXE script's callback); the next boot gets the normal menu again. ("local" is
        spent by the DHCP service itself, when it answers without a boot file.) A Proxmox
        entry whose answer file comes with it is spent once the installer fetched that answer
        (`answered`): the installer asks for its answer URL after the callback, and the DHCP
        service gives it only while the boot-once names the entry (pxetui/dhcp/answer.py)."""
        conn = store.connect(self.cfg.db_path)
        try:
            kept = None
            if not answered:
                try:
                    kept = answer.answer_from_boot_once(conn, mac)
                except (sqlite3.Error, MenuError) as exc:  # spent as any other entry, and said
                    self.publish(Log(service="engine", mac=mac, level_name="warning",
                                     message=f"host {mac}: cannot tell whether its boot-once entry "
                                             f"gives a Proxmox answer ({exc}): spent now"))
            if kept is None:
                store.clear_boot_once(conn, mac)
        finally:
            conn.close()
        if kept is not None:
            if mac not in self._answer_kept:
                self._answer_kept.add(mac)
                self.publish(Log(service="engine", mac=mac, message=(
                    f"host {mac}: boot-once entry {kept} kept until its installer fetches answer.toml "
                    "(Proxmox asks for the answer URL after the kernel runs)")))
            return
        self._answer_kept.discard(mac)
        self.publish(Log(service="engine", mac=mac, message=f"host {mac}: boot-once entry used"))
        self._reload_hosts()

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, mode_reason: str = "") -> None:
        self.identity = privileges.service_identity(self.cfg)
        self.cfg.state_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.cfg.db_path.exists() and drop_old_tables(self.cfg.db_path):
            self.publish(Log(service="engine", message=f"the tracker's history moved to "
                             f"{self.cfg.tracker_db_path.name}; the old history in "
                             f"{self.cfg.db_path.name} was dropped"))
        self.tracker = Tracker(db_path=self.cfg.tracker_db_path, config=self.cfg.tracker,
                               menu_db=self.cfg.db_path)
        self.tracker.coalesce = True
        for u in self.tracker.snapshot():  # the clients a previous run left in the database
            self.state.apply(u)
        self._reload_hosts()
        self._prepare_files()
        self._db_anchor = store.anchor(self.cfg.db_path)  # after the chmods: see store.anchor
        self.publish(EngineStarted(
            service="engine", interface=self.cfg.interface, address=self.cfg.server_ip,
            netmask=self.cfg.netmask, dhcp_mode=self.cfg.dhcp.mode, dhcp_mode_reason=mode_reason,
            http_port=self.cfg.http.port, tftp_root=str(self.cfg.tftp_root),
            http_root=str(self.cfg.http_root), state_dir=self.cfg.state_dir, version=__version__))
        await self._start_control()
        await self._start_metrics()
        for r in self.runners.values():
            r.task = asyncio.create_task(r.run())
        asyncio.create_task(self._tick())

    async def _start_metrics(self) -> None:
        """[metrics], when enabled: a listener that cannot open is an error in the log, and the
        engine serves on without it."""
        if not self.cfg.metrics.enabled:
            return
        m = self.cfg.metrics
        server = MetricsServer(m, self.metrics_text, self.publish)
        try:
            await server.start()
        except OSError as exc:
            self.publish(Log(service="engine", level_name="error",
                             message=f"metrics: cannot listen on {m.address}:{m.port}: {exc.strerror or exc}"))
            return
        self._metrics = server
        self.publish(Log(service="engine", message=f"metrics at http://{m.address}:{m.port}/metrics "
                         f"for {', '.join(m.allow)}"))

    def _prepare_files(self) -> None:
        """Before any service starts: served roots exist, and the state directory (with the
        database just made) is private and belongs to the service user, who writes leases,
        pcaps and uploads there once unprivileged (docs/SECURITY.md)."""
        for root in (self.cfg.tftp_root, self.cfg.http_root):
            privileges.make_served_dir(root)
        privileges.secure_state_dir(self.cfg, self.identity)
        if self.identity is None:
            if os.geteuid() == 0:
                self.publish(Log(service="engine", level_name="warning",
                                 message="security.user is root: services keep every privilege"))
            return
        for what, root in (("tftp.root", self.cfg.tftp_root), ("http.root", self.cfg.http_root)):
            if not privileges.readable_by(root, self.identity):
                self.publish(Log(service="engine", level_name="error",
                                 message=f"{what}: {privileges.how_to_grant(root, self.identity)}"))

    async def _tick(self) -> None:
        while not self.stopped.is_set():
            await asyncio.sleep(1.0)
            self.report_shed()
            if self.tracker is not None:
                self._derive(self.tracker.tick, time.time())

    def report_shed(self) -> None:
        """What each service's runner left unfolded in the last second, as that service's
        EventsDropped: the dashboard, /metrics and `pxetui status` count it with the drops."""
        for name, runner in self.runners.items():
            if runner.shed:
                counts, runner.shed = dict(runner.shed), Counter()
                packets, runner.shed_packets = dict(runner.shed_packets), Counter()
                self.publish(EventsDropped(service=name, counts=counts, total=sum(counts.values()),
                                           packets=packets))

    async def stop(self) -> None:
        if self.stopped.is_set():
            return
        await asyncio.gather(*(r.stop() for r in self.runners.values()))
        self.stopped.set()
        if self.tracker is not None:
            tracker, self.tracker = self.tracker, None
            try:
                tracker.close()  # writes what it still holds back (saves are lazy)
            except Exception as exc:  # noqa: BLE001 - the stop goes on
                self._emit(Log(service="tracker", level_name="error", message=f"tracker: {exc!r}"))
        if self._db_anchor is not None:
            self._db_anchor.close()
            self._db_anchor = None
        for q in list(self.subscribers):
            q.put_nowait(None)
        if self._server:
            self._server.close()
        if self._metrics is not None:
            self._metrics.close()
        with contextlib.suppress(OSError):
            socket_path(self.cfg.state_dir).unlink()

    async def wait(self) -> None:
        await self.stopped.wait()

    # -- reload (SIGHUP) ------------------------------------------------------------------
    def reload_failed(self, problems: list[str]) -> None:
        """A config that cannot be taken: say why, keep serving with the one in effect."""
        for p in problems:
            self.publish(Log(service="engine", level_name="error", message=f"reload: {p}"))
        self.publish(Alert(service="engine", key=RELOAD_ALERT, severity="error",
                           message=f"config reload refused, the previous config stays: {problems[0]}"))

    async def reload(self, new: Config) -> None:
        """Take a re-read, validated config without dropping leases or transfers in flight:
        only services whose keys changed restart (pxetui/reload.py), the others re-read menus,
        boot files and host overrides on SIGHUP. One reload at a time."""
        async with self._reload_lock:
            if self.tracker is None or any(r.task is None for r in self.runners.values()):
                # start() has not started the services yet, or stop() has finished
                self.publish(Log(service="engine", level_name="warning",
                                 message="reload: ignored, the engine is starting or stopping"))
            else:
                await self._reload(new)

    async def _reload(self, new: Config) -> None:
        changed = reload_plan.changed_keys(self.cfg, new)
        problems = reload_plan.refused(changed)
        names = services_for(new)
        restart = reload_plan.restarts(changed, [n for n in names if n in self.runners])
        added = [n for n in names if n not in self.runners]
        removed = [n for n in self.runners if n not in names]
        # Ports the new config binds that no running service of ours holds yet: held by another
        # process, the service would fail to start again and again; refuse the config instead.
        old_ports = ports_needed(self.cfg, list(self.runners))
        fresh = {p: proto for p, proto in ports_needed(new, [*restart, *added]).items()
                 if old_ports.get(p) != proto}
        problems += [h.describe() for h in port_holders(fresh)]
        if problems:
            self.reload_failed(problems)
            return
        self.cfg, self.config_line = new, new.to_json().encode() + b"\n"
        await asyncio.gather(*(self.runners.pop(n).stop() for n in removed))
        await asyncio.gather(*(self.runners[n].restart() for n in restart))
        for n in added:
            r = self.runners[n] = ServiceRunner(self, n)
            r.task = asyncio.create_task(r.run())
        kept = tuple(n for n in self.runners if n not in restart and n not in added)
        self._reload_hosts(kept)
        parts = [f"restarted {n} ({', '.join(keys)} changed)" for n, keys in restart.items()]
        parts += [f"started {n}" for n in added] + [f"stopped {n}" for n in removed]
        if kept:
            parts.append(f"{', '.join(kept)} re-read menus and overrides")
        later = reload_plan.at_next_start(changed)
        if later:
            parts.append(f"{', '.join(later)} take effect when pxetui serve restarts")
        self.publish(Log(service="engine", message="reload: config re-read; " + "; ".join(parts)))
        if RELOAD_ALERT in self.state.alerts:
            self.publish(Alert(service="engine", key=RELOAD_ALERT, severity="info", cleared=True,
                               message="config reload: the new config is in effect"))

    # -- control socket -------------------------------------------------------------------
    async def _start_control(self) -> None:
        path = socket_path(self.cfg.state_dir)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = await asyncio.start_unix_server(self._client, str(path), limit=LINE_LIMIT)
        os.chmod(path, 0o600)  # whoever can talk to it can change what machines boot

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        widen_send_buffer(writer, self.cfg.events.ui_send_buffer)
        q: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        for ev in self.replay():
            q.put_nowait((ev.type, dumps(ev.to_dict()) + b"\n"))
        self.subscribers[q] = q.qsize() + self.cfg.events.ui_queue_max

        async def commands() -> None:
            while line := await reader.readline():
                try:
                    cmd = json.loads(line)  # its error text goes into the Log below
                    await self.command(cmd)
                except Exception as exc:  # a bad command is the client's problem, not ours
                    self.publish(Log(service="engine", level_name="warning",
                                     message=f"control: bad command {line[:200]!r}: {exc}"))

        reader_task = asyncio.create_task(commands())
        try:
            while True:
                # Everything queued since the last wake-up in one write: a boot storm relays
                # thousands of events a second, a send per event would cost more than the event.
                item = await q.get()
                batch: list[bytes] = []
                while item is not None:
                    batch.append(item[1])
                    if q.empty():
                        break
                    item = q.get_nowait()
                writer.write(b"".join(batch))
                if item is None:
                    break
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.subscribers.pop(q, None)
            reader_task.cancel()
            writer.close()

    async def command(self, cmd: dict[str, Any]) -> None:
        name = cmd.get("cmd")
        if name == "reload":
            for r in self.runners.values():
                r.signal(signal.SIGHUP)
            self.publish(Log(service="engine", message="reload: services re-read menus and overrides"))
        elif name == "set_host":
            mac = str(cmd["mac"]).lower()
            fields = {k: cmd[k] for k in ("boot_once", "boot_file", "entry") if k in cmd}
            conn = store.connect(self.cfg.db_path)
            try:
                store.set_host_override(conn, mac, **fields)
            finally:
                conn.close()
            self._reload_hosts()
            self.publish(Log(service="engine", mac=mac, message=f"host {mac}: {fields}"))
        elif name == "forget":
            mac = str(cmd["mac"]).lower()
            if self.tracker is not None:
                self.tracker.forget(mac)
            self.publish(ClientForgotten(service="engine", mac=mac))
        elif name == "restart":
            r = self.runners.get(str(cmd.get("service")))
            if r is None:
                raise ValueError(f"no service {cmd.get('service')!r}")
            r.signal(signal.SIGTERM)
        elif name == "stop":
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.stop()))
        else:
            raise ValueError(f"unknown command {name!r}")
