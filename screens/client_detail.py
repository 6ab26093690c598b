"""One client: its timeline (stage, time, duration), files fetched, diagnosis, and actions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Button, DataTable, Static

from pxetui.probes import expected_miss
from pxetui.state import ClientInfo
from screens import fmt
from screens.base import PxeScreen
from screens.clientlogs import ClientLogPane, SaveLogScreen, default_path, write_lines
from screens.pick import EntryPicker
from screens.transfers import MISS
from screens.widgets import fill_rows


def describe_client(c: ClientInfo) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(c.mac, "bold")
    t.append(f"  {c.ip or 'no address yet'}")
    if c.hostname:
        t.append(f"  {c.hostname}")
    t.append(f"\nfirmware {fmt.firmware(c.firmware, c.arch)}")
    if c.arch is not None:
        t.append(f" (arch {c.arch})")
    if c.vendor_class:
        t.append(f"  {c.vendor_class}")
    t.append("\nstage ")
    t.append(c.stage or "new", "bold")
    t.append(f"  {fmt.percent(c.progress).strip()}  last: {c.last_event or '-'}")
    return t


def timeline_rows(c: ClientInfo, now: float) -> list[tuple[str, str, str, str]]:
    rows = []
    stages = sorted(c.stages, key=lambda s: float(s.get("ts") or 0))
    for i, s in enumerate(stages):
        ts = float(s.get("ts") or 0)
        if i + 1 < len(stages):
            dur = fmt.duration(float(stages[i + 1].get("ts") or 0) - ts)
        else:
            dur = fmt.duration(now - ts) + " so far"
        rows.append((fmt.stage(str(s.get("stage") or "?")), fmt.clock(ts), dur, str(s.get("detail") or "")))
    return rows


def file_row(f: dict[str, Any]) -> tuple[str | Text, ...]:
    """One fetched file as the tracker reports it (pxetui.tracker: path, kind, protocol, size,
    bytes, status, reason); a config lookup that found nothing is dimmed, as normal."""
    path = str(f.get("path") or "?")
    status = str(f.get("status") or "")
    reason = str(f.get("reason") or "")
    if status == "failed" and expected_miss(path, reason):
        return tuple(Text(c, "dim") for c in (
            path, str(f.get("kind") or ""), str(f.get("protocol") or ""), "-", MISS))
    if f.get("source") == "wire" or f.get("ours") is False:
        path += f" (from {f.get('server') or 'another server'})"
    got, size = f.get("bytes"), f.get("size")
    amount = fmt.size(got) if isinstance(got, (int, float)) else "-"
    if isinstance(size, (int, float)) and size and size != got:
        amount += f"/{fmt.size(size)}"
    if status == "failed" and reason:
        status += f": {reason}"
    elif status == "probe":  # OVMF's tsize-only request (docs/FIELD-NOTES.md)
        status = "size probe"
    return (path, str(f.get("kind") or ""), str(f.get("protocol") or ""), amount, status)


class ClientDetailScreen(PxeScreen):
    WATCH = frozenset({"clients", "clientlogs"})
    TITLE_TEXT = "Client"
    NAV_MODE = "clients"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("b", "boot_once", "Boot once into..."),
        Binding("l", "boot_local", "Boot local next"),
        Binding("f", "forget", "Forget"),
        Binding("slash", "filter_logs", "Filter logs", show=False),
        Binding("w", "write_logs", "Write logs", show=False),
        Binding("o", "follow", "Follow in Logs", show=False),
    ]

    def __init__(self, mac: str) -> None:
        super().__init__()
        self.mac = mac

    def body(self) -> Iterable[Widget]:
        with Vertical(id="detail"):
            yield Static(id="who")
            yield Static(id="diagnosis")
            yield DataTable(id="timeline", cursor_type="row")
            yield DataTable(id="files", cursor_type="row")
            yield ClientLogPane(id="client-logs")
            with Horizontal(id="actions"):
                yield Button("Boot once into... (b)", id="boot-once", compact=True)
                yield Button("Boot local next (l)", id="boot-local", compact=True)
                yield Button("Forget (f)", id="forget", variant="error", compact=True)

    def setup(self) -> None:
        tl = self.query_one("#timeline", DataTable)
        tl.border_title = "Timeline"
        for label, w in (("Stage", 10), ("At", 8), ("Took", 13), ("Detail", 40)):
            tl.add_column(label, width=w)
        files = self.query_one("#files", DataTable)
        files.border_title = "Files fetched"
        for label, w in (("File", 30), ("Kind", 10), ("Via", 4), ("Got", 13), ("Result", 30)):
            files.add_column(label, width=w)

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        if full or self.mac in changed.get("clientlogs", set()):
            pane = self.query_one(ClientLogPane)
            pane.update_lines(self.state.client_logs.get(self.mac, ()), full)
            self.query_one("#detail").set_class(bool(pane.display), "with-logs")
        if not full and self.mac not in changed.get("clients", set()):
            return
        c = self.state.clients.get(self.mac)
        who = self.query_one("#who", Static)
        diag = self.query_one("#diagnosis", Static)
        tl = self.query_one("#timeline", DataTable)
        files = self.query_one("#files", DataTable)
        if c is None:
            who.update(Text(f"{self.mac}: forgotten (no longer tracked)", "yellow"))
            diag.update("")
            fill_rows(tl, [])
            fill_rows(files, [])
            return
        who.update(describe_client(c))
        diag.update(Text("Diagnosis: " + c.diagnosis, "bold yellow") if c.diagnosis
                    else Text("Diagnosis: nothing wrong seen so far.", "green"))
        # A client's history is short (a dozen stages): redraw both lists in place.
        fill_rows(tl, timeline_rows(c, self.state.now))
        if self.query_one("#detail").has_class("with-logs"):  # a short timeline: the latest stages
            self.call_after_refresh(tl.scroll_end, animate=False)
        fill_rows(files, [file_row(f) for f in c.files.values()])
        files.border_title = "Files fetched" + (
            f" (the oldest {c.files_dropped} not kept)" if c.files_dropped else "")

    # -- actions -------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"boot-once": self.action_boot_once, "boot-local": self.action_boot_local,
         "forget": self.action_forget}[event.button.id or ""]()

    def action_boot_once(self) -> None:
        def chosen(entry: str | None) -> None:
            if entry:
                self.papp.send({"cmd": "set_host", "mac": self.mac, "boot_once": entry},
                               f"{self.mac} boots {entry} once")

        self.app.push_screen(EntryPicker(self.papp.menu_entries(), self.mac), chosen)

    def action_boot_local(self) -> None:
        self.papp.send({"cmd": "set_host", "mac": self.mac, "boot_once": "local"},
                       f"{self.mac} boots from its disk next time")

    def action_forget(self) -> None:
        self.papp.send({"cmd": "forget", "mac": self.mac}, f"forget {self.mac}")

    # -- the client's log lines --------------------------------------------------------
    def action_filter_logs(self) -> None:
        pane = self.query_one(ClientLogPane)
        if pane.display:
            pane.start_filter()

    def action_write_logs(self) -> None:
        lines = self.query_one(ClientLogPane).shown()
        if not lines:
            self.notify(f"{self.mac} has no log lines to write", severity="warning", markup=False)
            return

        def chosen(path: str | None) -> None:
            if not path:
                return
            try:
                target, n = write_lines(path, lines)
            except OSError as exc:  # exists (never overwritten), no such directory, no right
                self.notify(f"Log lines not written: {path}: {exc.strerror or exc}",
                            severity="error", markup=False)
                return
            self.notify(f"Wrote {n} log lines of {self.mac} to {target}", markup=False, timeout=10)

        self.app.push_screen(SaveLogScreen(self.mac, len(lines), default_path(self.mac)), chosen)

    def action_follow(self) -> None:
        self.papp.follow_client(self.mac)

    def palette(self) -> Iterable[SystemCommand]:
        yield SystemCommand(f"Filter the log lines of {self.mac}", "/", self.action_filter_logs)
        yield SystemCommand(f"Write the log lines of {self.mac} to a file", "w",
                            self.action_write_logs)
        yield SystemCommand(f"Follow {self.mac} in the Logs screen", "o", self.action_follow)
        yield SystemCommand(f"Boot {self.mac} once into an entry", "b", self.action_boot_once)
        for entry_id, title in self.papp.menu_entries():
            yield SystemCommand(
                f"Boot {self.mac} once into {title}", entry_id,
                lambda e=entry_id: self.papp.send(
                    {"cmd": "set_host", "mac": self.mac, "boot_once": e},
                    f"{self.mac} boots {e} once"))
        yield SystemCommand(f"Boot {self.mac} locally next time", "l", self.action_boot_local)
        yield SystemCommand(f"Forget {self.mac}", "f", self.action_forget)
        yield SystemCommand("Back to the client list", "Esc", self.app.pop_screen)
