"""ISOs: import an image from a file picker with a progress bar; see the detected family and
the menu entries it created; the library as stored in the state directory.

The import itself is `pxetui.iso.library.import_iso` (the same as `pxetui import`): it runs in
a thread so the UI keeps drawing, reports progress through a callback, and is all or nothing.
Afterwards the services are told to reload, so the new entries are served without a restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Button, DirectoryTree, Input, ProgressBar, Static

from pxetui.config import Config
from pxetui.events import Event
from pxetui.iso.library import ImportResult, IsoRecord, connect, import_iso, list_isos
from pxetui.iso.reader import IsoError
from pxetui.menus.model import MenuError
from screens import fmt
from screens.base import PxeScreen
from screens.widgets import Column, LiveTable

COLUMNS = (
    Column("name", "Name", 20), Column("family", "Family", 16), Column("entries", "Entries", 26),
    Column("size", "Size", 7), Column("when", "Imported", 8), Column("path", "File", 40),
)


class IsoTree(DirectoryTree):
    """Directories and .iso files only; plain glyphs, as emoji widths vary between terminals."""

    ICON_NODE = "+ "
    ICON_NODE_EXPANDED = "- "
    ICON_FILE = "  "

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() == ".iso")]


def result_text(res: ImportResult) -> Text:
    t = Text()
    t.append(f"Imported {res.record.name}: ", "bold green")
    t.append(f"{res.detection.family}", "bold")
    t.append(f" ({res.detection.label}), {res.record.files} files, {res.seconds:.1f} s\n")
    t.append("entries: " + (", ".join(res.record.entries) or "none (data-only image)"))
    for note in res.detection.notes[:2]:
        t.append(f"\nnote: {note}", "yellow")
    return t


class IsosScreen(PxeScreen):
    TITLE_TEXT = "ISOs"
    NAV_MODE = "isos"
    WATCH = frozenset({"library"})
    BINDINGS = [Binding("ctrl+o", "import_iso", "Import")]
    AUTO_FOCUS = "#iso-tree"  # arrows pick a file at once; the path field is one Tab away

    def __init__(self, start_dir: str | None = None) -> None:
        super().__init__()
        self.start_dir = start_dir
        self.records: dict[str, IsoRecord] = {}
        self.importing = False

    def body(self) -> Iterable[Widget]:
        with Horizontal(id="iso-path-row"):
            yield Input(placeholder="path to an .iso (or pick one below)", id="iso-path",
                        compact=True)
            yield Button("Import (ctrl+o)", id="iso-import", compact=True, variant="primary")
        yield IsoTree(self.start_dir or self.papp.iso_dir or str(Path.cwd()), id="iso-tree")
        with Horizontal(id="iso-progress-row"):
            yield Static("", id="iso-step")
            yield ProgressBar(total=100, show_eta=False, id="iso-progress")
        yield Static(id="iso-result")
        yield LiveTable(COLUMNS, self.row, structural_interval=0.0, id="library")

    def setup(self) -> None:
        self.query_one("#iso-tree").border_title = "Pick an image (Enter)"
        self.query_one("#library").border_title = "Library"
        self.load_library()

    # -- the library ---------------------------------------------------------------------
    def config(self) -> Config | None:
        d = self.papp.menu_dir()
        return Config(state_dir=str(d)) if d else None

    def load_library(self) -> None:
        cfg = self.config()
        result = self.query_one("#iso-result", Static)
        if cfg is None:
            result.update(Text("The engine's state directory is not known: cannot read or "
                               "change the library.", "yellow"))
            return
        try:
            conn = connect(cfg)
            try:
                records = list_isos(conn)
            finally:
                conn.close()
        except (sqlite3.Error, MenuError, OSError) as exc:
            result.update(Text(f"Cannot read the library in {cfg.db_path}: {exc}", "bold red"))
            return
        self.records = {r.name: r for r in records}
        self.query_one("#library", LiveTable).resync(self.records)

    def row(self, name: str) -> tuple[Any, ...] | None:
        r = self.records.get(name)
        if r is not None:
            stale = r.changed()
            return (r.name, r.family, ", ".join(r.entries), fmt.size(r.size),
                    fmt.clock(r.imported), Text(stale, "red") if stale else fmt.short_path(r.path))
        iso = self.state.library.get(name)  # imported by another UI or `pxetui import`
        if iso is None:
            return None
        return (iso.name, iso.family, ", ".join(iso.entries), "-", fmt.clock(iso.ts), iso.path)

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        table = self.query_one("#library", LiveTable)
        if "engine" in changed and not self.records:
            self.load_library()  # the engine just told us where the library is
        if full:
            table.resync([*self.records, *(k for k in self.state.library if k not in self.records)])
        elif "library" in changed:
            table.sync(k for k in changed["library"] if k != "menu")

    # -- importing -----------------------------------------------------------------------
    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#iso-path", Input).value = str(event.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "iso-path":
            self.action_import_iso()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "iso-import":
            self.action_import_iso()

    def action_import_iso(self) -> None:
        path = self.query_one("#iso-path", Input).value.strip()
        result = self.query_one("#iso-result", Static)
        cfg = self.config()
        if self.importing:
            return
        if not path:
            result.update(Text("Pick an .iso first (the tree, or type a path).", "yellow"))
            return
        if cfg is None:
            result.update(Text("The engine's state directory is not known: cannot import.",
                               "bold red"))
            return
        self.importing = True
        self.query_one("#iso-progress", ProgressBar).update(total=100, progress=0)
        self.query_one("#iso-step", Static).update("starting")
        result.update(Text(f"Importing {path} ..."))
        self.run_import(cfg, path)

    def progress(self, step: str, done: int, total: int) -> None:
        """From the import thread: hand the numbers to the UI thread."""
        self.app.call_from_thread(self._show_progress, step, done, total)

    def _show_progress(self, step: str, done: int, total: int) -> None:
        self.query_one("#iso-step", Static).update(Text(step))
        self.query_one("#iso-progress", ProgressBar).update(total=max(total, 1), progress=done)

    def emit(self, event: Event) -> None:
        """The import's IsoImported/MenuChanged go into our own state too, so the menu editor
        and the library list catch up now rather than after the engine echoes them."""
        self.app.call_from_thread(self.papp.state.apply, event.to_dict())

    @work(thread=True, exclusive=True, group="iso-import", exit_on_error=False)
    def run_import(self, cfg: Config, path: str) -> None:
        try:
            res = import_iso(cfg, path, progress=self.progress, emit=self.emit)
        except (IsoError, MenuError, sqlite3.Error, OSError) as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._done, res)

    def _failed(self, message: str) -> None:
        self.importing = False
        self.query_one("#iso-step", Static).update("failed")
        self.query_one("#iso-result", Static).update(Text(f"Import failed: {message}", "bold red"))

    def _done(self, res: ImportResult) -> None:
        self.importing = False
        self._show_progress("done", 1, 1)
        self.query_one("#iso-result", Static).update(result_text(res))
        self.load_library()
        self.papp.send({"cmd": "reload"}, f"imported {res.record.name}; services reload")

    def palette(self) -> Iterable[SystemCommand]:
        yield SystemCommand("ISOs: import the chosen image", "ctrl+o", self.action_import_iso)
        yield SystemCommand("ISOs: re-read the library", "from the state directory",
                            self.load_library)
