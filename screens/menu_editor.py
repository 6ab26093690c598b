"""Menu editor: entries, order, default, timeout, kernel arguments; checked as you type,
previewed as PXELINUX, GRUB and iPXE; saved to the state database, then the services reload.

The model and its rules are `pxetui.menus.model` (the same checks the engine applies), the
previews are the engine's own renderers, so what you see is what the clients will get.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual.app import SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Select, Static, TabbedContent, TabPane

from pxetui.menus.model import ARCHS, KINDS, Entry, Menu, MenuError
from screens.base import PxeScreen
from screens.menu_store import DB_NAME, load_from, save_to
from screens.preview import PREVIEWS, preview
from screens.widgets import fill_rows

FIELDS = (  # (input id, label, placeholder)
    ("e-label", "Label", "what the menu shows"),
    ("e-kernel", "Kernel", "served path, e.g. iso/debian/live/vmlinuz"),
    ("e-initrds", "Initrds", "served paths, space separated"),
    ("e-args", "Args", "kernel arguments; {http} and {server} are filled in"),
    ("e-archs", "Archs", f"any of {' '.join(ARCHS)}"),
)


class MenuScreen(PxeScreen):
    TITLE_TEXT = "Menu"
    NAV_MODE = "menu"
    WATCH = frozenset({"library"})
    BINDINGS = [
        Binding("ctrl+s", "save", "Save+reload"),
        Binding("alt+up", "move(-1)", "Move up"),
        Binding("alt+down", "move(1)", "Move down"),
        Binding("ctrl+d", "make_default", "Default"),
        Binding("ctrl+x", "remove", "Remove"),
        Binding("ctrl+n", "new_entry", "New", show=False),
        Binding("ctrl+r", "load", "Revert", show=False),
    ]

    def body(self) -> Iterable[Widget]:
        with Vertical(id="menu-edit"):
            with Horizontal(id="menu-top"):
                yield DataTable(id="m-entries", cursor_type="row")
                with VerticalScroll(id="m-form"):
                    with Horizontal(classes="field"):
                        yield Label("Timeout", classes="label")
                        yield Input(id="m-timeout", placeholder="seconds, 0 = wait", compact=True,
                                    type="integer")
                    with Horizontal(classes="field"):
                        yield Label("Kind", classes="label")
                        yield Select([(k, k) for k in KINDS], id="e-kind", allow_blank=False,
                                     compact=True)
                    for fid, label, hint in FIELDS:
                        with Horizontal(classes="field"):
                            yield Label(label, classes="label")
                            yield Input(id=fid, placeholder=hint, compact=True)
            yield Static(id="m-problems")
            with TabbedContent(id="m-preview"):
                for name in PREVIEWS:
                    with TabPane(name, id=f"pv-{name.lower()}"), VerticalScroll():
                        yield Static(id=f"pv-text-{name.lower()}", markup=False)

    def setup(self) -> None:
        table = self.query_one("#m-entries", DataTable)
        table.border_title = "Entries"
        table.add_column("", width=1, key="default")
        table.add_column("Id", width=14, key="id")
        table.add_column("Kind", width=7, key="kind")
        self.menu: Menu | None = None
        self.current: str | None = None
        self.modified = False  # edits not saved yet
        self.action_load()

    @property
    def db(self) -> Path | None:
        d = self.papp.menu_dir()
        return d / DB_NAME if d else None

    # -- loading and showing -------------------------------------------------------------
    def action_load(self) -> None:
        """(Re)read the stored menu."""
        problems = self.query_one("#m-problems", Static)
        if self.db is None:
            self.menu = None
            problems.update(Text("The engine's state directory is not known yet, so the menu "
                                 "cannot be read.", "yellow"))
            return
        try:
            self.menu = load_from(self.db)
        except (MenuError, sqlite3.Error, OSError) as exc:
            self.menu = None
            problems.update(Text(f"Cannot read the menu from {self.db}: {exc}", "bold red"))
            return
        keep = self.current if self.current and self.menu.get(self.current) else None
        self.current = keep or (self.menu.entries[0].id if self.menu.entries else None)
        self.modified = False
        self.refresh_entries()
        self.fill_form()
        self.validate()

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        if self.menu is None and (full or "library" in changed or "engine" in changed):
            self.action_load()
        elif "library" in changed and not self.modified:
            self.action_load()  # an import added entries; nothing of ours to lose

    def refresh_entries(self) -> None:
        """Entries keyed by position, updated in place; the cursor follows `current`."""
        assert self.menu is not None
        table = self.query_one("#m-entries", DataTable)
        with self.prevent(DataTable.RowHighlighted):  # our own cursor moves are not a selection
            fill_rows(table, [("*" if e.id == self.menu.default else "", e.id, e.kind)
                              for e in self.menu.entries])
            ids = [e.id for e in self.menu.entries]
            if self.current in ids:
                table.move_cursor(row=ids.index(self.current), animate=False)
        table.border_subtitle = f"* default = {self.menu.default}"

    def entry(self) -> Entry | None:
        return self.menu.get(self.current) if self.menu and self.current else None

    def fill_form(self) -> None:
        assert self.menu is not None
        # Setting a field posts Changed; these are ours, not the user's: do not echo them.
        with self.prevent(Input.Changed, Select.Changed):
            self.query_one("#m-timeout", Input).value = str(self.menu.timeout)
            e = self.entry()
            values = {
                "e-label": e.label if e else "", "e-kernel": e.kernel if e else "",
                "e-initrds": " ".join(e.initrds) if e else "", "e-args": e.args if e else "",
                "e-archs": " ".join(e.archs) if e else "",
            }
            for fid, value in values.items():
                self.query_one(f"#{fid}", Input).value = value
            if e:
                self.query_one("#e-kind", Select).value = e.kind

    # -- editing -------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "m-entries" and self.menu and \
                0 <= event.cursor_row < len(self.menu.entries):
            key = self.menu.entries[event.cursor_row].id
            if key != self.current:
                self.current = key
                self.fill_form()
                self.validate()

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.menu is None:
            return
        self.modified = True
        self.validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.menu is None or event.select.id != "e-kind":
            return
        self.modified = True
        self.read_form()
        self.refresh_entries()
        self.validate()

    def read_form(self) -> list[str]:
        """Copy the form into the model; return problems the model cannot hold (bad numbers)."""
        assert self.menu is not None
        problems = []
        raw_timeout = self.query_one("#m-timeout", Input).value.strip()
        try:
            self.menu.timeout = int(raw_timeout)
        except ValueError:
            problems.append(f"timeout: {raw_timeout!r} is not a whole number of seconds")
        e = self.entry()
        if e is not None:
            e.label = self.query_one("#e-label", Input).value
            e.kernel = self.query_one("#e-kernel", Input).value.strip()
            e.initrds = self.query_one("#e-initrds", Input).value.split()
            e.args = self.query_one("#e-args", Input).value.strip()
            e.archs = self.query_one("#e-archs", Input).value.replace(",", " ").split()
            kind = self.query_one("#e-kind", Select).value
            if isinstance(kind, str):
                e.kind = kind
        return problems

    def validate(self) -> list[str]:
        out = self.query_one("#m-problems", Static)
        if self.menu is None:
            return ["no menu"]
        problems = self.read_form() + self.menu.check()
        if problems:
            out.update(Text("\n".join(problems[:4]) + (f"\n(+{len(problems) - 4} more)"
                                                        if len(problems) > 4 else ""), "bold red"))
        else:
            n = len(self.menu.entries)
            out.update(Text(f"Menu OK: {n} {'entry' if n == 1 else 'entries'}. ctrl+s saves and "
                            "reloads the services.", "green"))
        self.update_preview()
        return problems

    def update_preview(self) -> None:
        if self.menu is None:
            return
        for name in PREVIEWS:
            self.query_one(f"#pv-text-{name.lower()}", Static).update(
                preview(name, self.menu, self.state.engine))

    # -- actions -------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        if self.menu is None or self.current is None:
            return
        ids = [e.id for e in self.menu.entries]
        i = ids.index(self.current)
        j = i + delta
        if not 0 <= j < len(ids):
            return
        entries = self.menu.entries
        entries[i], entries[j] = entries[j], entries[i]
        self.modified = True
        self.refresh_entries()
        self.validate()

    def action_make_default(self) -> None:
        if self.menu is not None and self.current:
            self.menu.default = self.current
            self.modified = True
            self.refresh_entries()
            self.validate()

    def action_remove(self) -> None:
        if self.menu is None or not self.current:
            return
        try:
            self.menu.remove(self.current)
        except MenuError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        self.current = self.menu.entries[0].id if self.menu.entries else None
        self.modified = True
        self.refresh_entries()
        self.fill_form()
        self.validate()

    def action_new_entry(self) -> None:
        if self.menu is None:
            return
        e = Entry(id=self.menu.unique_id("new-entry"), label="New entry", kind="linux",
                  kernel="", needs_review=True)
        pos = next((i for i, x in enumerate(self.menu.entries) if x.kind == "local"),
                   len(self.menu.entries))
        self.menu.entries.insert(pos, e)  # not add(): it refuses an entry with no kernel yet
        self.current = e.id
        self.modified = True
        self.refresh_entries()
        self.fill_form()
        self.validate()

    def action_save(self) -> bool:
        if self.menu is None or self.db is None:
            self.notify("No menu to save (state directory unknown)", severity="error", markup=False)
            return False
        problems = self.validate()
        if problems:
            self.notify("Not saved: " + problems[0], severity="error", markup=False)
            return False
        try:
            save_to(self.db, self.menu)
        except (MenuError, sqlite3.Error, OSError) as exc:
            self.notify(f"Not saved: {exc}", severity="error", markup=False)
            return False
        self.modified = False
        self.papp.send({"cmd": "reload"}, "menu saved; services reload")
        return True

    def palette(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Menu: save and reload the services", "ctrl+s", self.action_save)
        yield SystemCommand("Menu: make the selected entry the default", "ctrl+d",
                            self.action_make_default)
        yield SystemCommand("Menu: move the selected entry up", "alt+up", lambda: self.action_move(-1))
        yield SystemCommand("Menu: move the selected entry down", "alt+down",
                            lambda: self.action_move(1))
        yield SystemCommand("Menu: new entry", "ctrl+n", self.action_new_entry)
        yield SystemCommand("Menu: remove the selected entry", "ctrl+x", self.action_remove)
        yield SystemCommand("Menu: revert to the saved menu", "ctrl+r", self.action_load)


