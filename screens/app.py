"""The pxetui Textual app: one screen per job, fed by an injectable event source.

The engine runs in another process (docs/FIELD-NOTES.md, "Library evidence": a UDP server on the UI loop had p99 latency of
1.1 s while a big table redrew). The app reads its events in an async worker, folds them into
`EngineState`, and redraws at most 4 times a second. A dropped connection becomes an alert,
never a crash (docs/FIELD-NOTES.md: `@work` defaults to exit_on_error=True, which ends the app).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ScreenStackError, SystemCommand, UnknownModeError
from textual.binding import Binding
from textual.screen import Screen

from pxetui.config import Config
from pxetui.control import socket_path
from pxetui.events import LabVm
from pxetui.netinfo import InterfaceInfo, interfaces
from pxetui.state import EngineState
from screens import menu_store
from screens.base import PxeScreen
from screens.clients import ClientsScreen
from screens.console import ConsoleScreen
from screens.dashboard import DashboardScreen
from screens.isos import IsosScreen
from screens.leases import LeasesScreen
from screens.logs import LogsScreen
from screens.menu_editor import MenuScreen
from screens.selftest import SelfTestScreen
from screens.settings import SettingsScreen
from screens.source import EventSource, LabControl, SourceFactory, open_source, state_dir_of
from screens.transfers import TransfersScreen
from screens.widgets import LAB_KEY

REFRESH_SECONDS = 0.25  # at most 4 redraws a second
YIELD_EVERY = 200  # events folded before letting the UI breathe
RECONNECT_SECONDS = 2.0
RECONNECT_TRIES = 1800  # an hour of trying, then the alert stays
LAB_POLL_SECONDS = 0.5  # how often the lab's VM state is looked at (pxetui lab)

# (mode, key, alternative key, footer label, palette title)
NAV = (
    ("dashboard", "f1", "alt+1", "Dash", "Dashboard: services, stages, throughput, alerts"),
    ("clients", "f2", "alt+2", "Clients", "Clients: every machine and how far it got"),
    ("leases", "f3", "alt+3", "Leases", "Leases: ours and those seen on the wire"),
    ("transfers", "f4", "alt+4", "Xfers", "Transfers: TFTP and HTTP downloads"),
    ("isos", "f5", "alt+5", "ISOs", "ISOs: import an image, see its entries"),
    ("menu", "f6", "alt+6", "Menu", "Menu editor: entries, default, timeout, preview"),
    ("logs", "f7", "alt+7", "Logs", "Logs: every event, filtered"),
    ("settings", "f8", "alt+8", "Setup", "Settings: interface, DHCP mode, range, roots"),
    ("console", "f9", "alt+9", "Serial", "Console: the lab VM's serial output"),
)


class PxetuiApp(App):
    CSS_PATH = Path(__file__).with_name("pxetui.tcss")
    TITLE = "pxetui"
    MODES = {
        "dashboard": DashboardScreen, "clients": ClientsScreen, "leases": LeasesScreen,
        "transfers": TransfersScreen, "isos": IsosScreen, "menu": MenuScreen,
        "logs": LogsScreen, "settings": SettingsScreen, "console": ConsoleScreen,
    }
    BINDINGS = [
        *(Binding(f"{key},{alt}", f"app.go('{mode}')", label, priority=True, show=False)
          for mode, key, alt, label, _ in NAV),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding(LAB_KEY, "boot_lab", "Boot VM", priority=True),
    ]

    def __init__(
        self,
        source: EventSource | None = None,
        *,
        source_factory: SourceFactory | None = None,
        console_path: str | None = None,
        state_dir: str | None = None,
        config_path: str | None = None,
        iso_dir: str | None = None,
        interfaces_fn: Callable[[], dict[str, InterfaceInfo]] = interfaces,
        start_mode: str = "dashboard",
        pacing: bool = True,
        lab: LabControl | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.source_factory = source_factory
        self.console_path = console_path
        self.state_dir = state_dir
        self.config_path = config_path
        self.iso_dir = iso_dir  # where the ISO file picker starts
        self.interfaces_fn = interfaces_fn
        self.start_mode = start_mode
        self.lab = lab  # the lab's VM, under `pxetui lab`
        # Rate limits on redraws (see PxeScreen.MIN_INTERVAL, LiveTable.sync); off in tests so
        # one flush() shows everything.
        self.pacing = pacing
        self.state = EngineState()
        self.views: set[PxeScreen] = set()
        self.feed_done = asyncio.Event()
        self.refreshes = 0
        self.nav_items = [(mode, key, label) for mode, key, _, label, _ in NAV]
        self.follow: str | None = None  # a MAC the Logs screen is to filter on when shown

    # -- lifecycle -----------------------------------------------------------------------
    def on_mount(self) -> None:
        self.switch_mode(self.start_mode)
        self.consume()
        self.set_interval(REFRESH_SECONDS, self.flush)
        if self.lab is not None:
            self.poll_lab()
            self.set_interval(LAB_POLL_SECONDS, self.poll_lab)

    @work(exclusive=True, group="feed", exit_on_error=False)
    async def consume(self) -> None:
        """Fold the engine's events into the state; report a lost engine as an alert and,
        when we know how to reach it again, reconnect (a restarted `pxetui serve`)."""
        for attempt in range(RECONNECT_TRIES):
            dropped = await self._consume_once(fresh=attempt > 0)
            if dropped is None or self.source_factory is None:
                break
            self.source = None
            await asyncio.sleep(RECONNECT_SECONDS)
        self.feed_done.set()

    async def _consume_once(self, fresh: bool) -> str | None:
        """One connection's worth of events; the reason it ended (None: cancelled)."""
        n = 0
        try:
            if self.source is None:
                if self.source_factory is None:
                    raise ConnectionError("no engine to attach to")
                self.source = await open_source(self.source_factory)
                self.state_dir = self.state_dir or state_dir_of(self.source)
            if fresh:  # the replay rebuilds everything: forget what the old engine told us
                self.state = EngineState()
                for view in self.views:
                    view.invalidate()
            self.state.connected = True
            self.state.mark("engine")
            # typed where the source can (the control socket): the fold takes either
            stream = getattr(self.source, "typed_events", self.source.events)
            async for ev in stream():
                self.state.apply(ev)
                n += 1
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            reason = "it closed the connection"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the feed is shown, not fatal
            reason = lost_reason(exc)
        self.state.disconnected(f"Lost the engine: {reason}. {self.engine_hint()}")
        return reason

    def engine_hint(self) -> str:
        """What to do about a lost engine, in the words of the command that starts it."""
        if self.lab is not None:  # the lab started it in its own namespace
            return "The lab's engine stopped: quit (ctrl+q) and run `sudo pxetui lab` again."
        if self.source_factory is None:
            return "Start the engine, then this UI again."
        e = self.state.engine
        cmd = f"sudo pxetui serve --interface {e.interface or 'IFACE'}"
        d = self.state_dir or e.state_dir
        if d and d != Config.state_dir:
            cmd += f" --state-dir {d}"
        return f"Start it again: {cmd} (retrying every {RECONNECT_SECONDS:.0f} s)."

    async def on_unmount(self) -> None:
        close = getattr(self.source, "close", None)
        if close is not None:
            try:
                await close()
            except (OSError, ConnectionError):
                pass

    def flush(self) -> None:
        """Hand changed keys to every screen; redraw the one on top."""
        dirty = self.state.take_dirty()
        if dirty:
            for view in list(self.views):
                view.collect(dirty)
        try:
            top = self.screen
        except (ScreenStackError, UnknownModeError):  # between modes, or shutting down
            return
        if isinstance(top, PxeScreen) and top.pending and top.due():
            self.refreshes += 1
            top.redraw()

    # -- navigation and commands ---------------------------------------------------------
    def action_go(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    def follow_client(self, mac: str) -> None:
        """Show the Logs screen filtered on one client (its events and its log lines)."""
        self.follow = mac
        if self.current_mode == "logs":
            self.screen.post_message(LogsScreen.Follow())
        else:
            self.switch_mode("logs")  # the screen takes `follow` as it mounts or resumes

    def send(self, cmd: dict[str, Any], what: str) -> None:
        self._send(cmd, what)

    @work(group="commands", exit_on_error=False)
    async def _send(self, cmd: dict[str, Any], what: str) -> None:
        if self.source is None or not self.state.connected:
            self.notify(f"{what}: not connected to the engine", severity="error", markup=False)
            return
        try:
            await self.source.send(cmd)
        except Exception as exc:  # noqa: BLE001 - a failed send is reported, the UI stays up
            self.notify(f"{what}: failed ({exc})", severity="error", markup=False)
            return
        self.notify(f"{what}: sent", markup=False)

    def menu_dir(self) -> Path | None:
        """Where the menu and the ISO library live: the engine's state directory (given on
        the command line, else as the engine reports it)."""
        d = self.state_dir or self.state.engine.state_dir
        return Path(d) if d else None

    def menu_entries(self) -> list[tuple[str, str]]:
        """(entry id, label) of the boot menu, for "boot once into"."""
        return menu_store.entries(self.menu_dir())

    # -- the lab's VM (pxetui lab) -------------------------------------------------------
    def poll_lab(self) -> None:
        """Fold the VM's state when it changed (and again into a state rebuilt on reconnect)."""
        if self.lab is None:
            return
        ev = self.lab.status()
        old = self.state.lab_vm
        if old is not None and vm_key(old) == vm_key(ev):
            return
        self.state.apply(ev)
        self.refresh_bindings()  # the footer offers the key only while the VM is off
        if ev.state == "off" and (old is None or old.state != "off"):
            self.notify(f"The lab VM {ev.detail}. {LAB_KEY} boots it again.",
                        severity="information" if ev.booted and not ev.exit_code else "warning",
                        timeout=10, markup=False)

    @property
    def vm_off(self) -> bool:
        vm = self.state.lab_vm
        return self.lab is not None and vm is not None and vm.state == "off"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "boot_lab":
            return self.vm_off  # hidden (and inert) unless there is a VM to boot again
        return True

    def action_boot_lab(self) -> None:
        if self.vm_off:
            self._boot_lab()

    @work(thread=True, group="lab", exclusive=True, exit_on_error=False)
    def _boot_lab(self) -> None:
        assert self.lab is not None
        try:  # starting QEMU forks and copies firmware variables: off the UI's loop
            ev = self.lab.boot()
        except Exception as exc:  # noqa: BLE001 - LabError and OSError alike: said, not fatal
            self.call_from_thread(self.notify, f"The lab VM did not start: {exc}",
                                  severity="error", markup=False)
            return
        self.call_from_thread(self.notify, f"The lab VM is booting (boot {ev.boots}).",
                              markup=False)
        self.call_from_thread(self.poll_lab)

    def action_self_test(self) -> None:
        d = self.state_dir or self.state.engine.state_dir
        if not d:
            self.notify("The self-test needs the engine: not connected yet.", severity="warning")
            return
        self.push_screen(SelfTestScreen(socket_path(d)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for mode, key, _, _, title in NAV:
            yield SystemCommand(f"Go to {title}", f"{key.upper()}", lambda m=mode: self.action_go(m))
        if self.vm_off:
            yield SystemCommand("Boot the lab VM again", f"{LAB_KEY}: it powered off",
                                self.action_boot_lab)
        if isinstance(screen, PxeScreen):
            yield from screen.palette()
        yield SystemCommand("Self-test: fetch what each architecture gets", "boot files over TFTP, "
                            "the iPXE script, kernel and initrd over HTTP, as a client would",
                            self.action_self_test)
        yield SystemCommand("Reload menus and overrides", "services re-read their menus",
                            lambda: self.send({"cmd": "reload"}, "reload"))
        for name in sorted(self.state.services):
            yield SystemCommand(f"Restart service {name}", "the supervisor restarts it",
                                lambda n=name: self.send({"cmd": "restart", "service": n},
                                                         f"restart {n}"))
        yield SystemCommand("Stop the engine", "stops every service (pxetui serve exits)",
                            lambda: self.send({"cmd": "stop"}, "stop engine"))
        yield SystemCommand("Quit", "leave the UI (a headless engine keeps running)", self.exit)


def vm_key(ev: LabVm) -> tuple[object, ...]:
    """What makes a LabVm news (not its time stamp)."""
    return (ev.state, ev.boots, ev.booted, ev.exit_code, ev.detail)


def lost_reason(exc: BaseException) -> str:
    """Why the link to the engine broke, in plain words (the exception's own in brackets)."""
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return f"it is not running (nothing answers on its control socket: {type(exc).__name__})"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError, EOFError)):
        return f"it went away ({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
