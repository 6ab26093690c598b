"""Widgets shared by the screens: the status header and a keyed, diff-updated table."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.cache import LRUCache
from textual.timer import Timer
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey, RowKey

from pxetui.state import EngineState

HEALTH_STYLE = {
    "running": "bold green", "starting": "yellow", "restarting": "bold yellow",
    "stopped": "dim", "failed": "bold red",
}
HEALTH_MARK = {"running": "+", "starting": "~", "restarting": "~", "stopped": "-", "failed": "!"}
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
# Boots the lab's VM again under `pxetui lab` (not ctrl+b: tmux's prefix key).
LAB_KEY = "ctrl+r"
LAB_KEY_SHORT = "^r"


def prefix_len(netmask: str) -> str:
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen)
    except ValueError:
        return netmask


def nav_text(items: Sequence[tuple[str, str, str]], current: str) -> Text:
    """F-key tabs, the current screen highlighted: (mode, key, label) each."""
    t = Text(no_wrap=True, overflow="crop")
    for mode, key, label in items:
        style = "bold reverse" if mode == current else ""
        t.append(f"{key.upper()}", "bold" if mode != current else style)
        t.append(f" {label}", style)
        t.append(" ")
    t.rstrip()
    return t


class NavBar(Static):
    """Where the F-keys go; a focused text field keeps printable keys, so navigation is F-keys
    (or alt+digit) only (docs/FIELD-NOTES.md)."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $boost; }
    """


def engine_lost(state: EngineState) -> bool:
    """The UI had (or tried) an engine and has none now; not the first moments of connecting."""
    return not state.connected and (state.engine.started is not None or "connection" in state.alerts)


def header_text(state: EngineState, hint: str = "") -> Text:
    """Two lines: where we serve and in which DHCP mode (and why); each service's health.
    Without the engine, the second line is `hint`: what to do about it."""
    e = state.engine
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" pxetui ", "bold reverse")
    lost = engine_lost(state)
    if lost:
        t.append(" DISCONNECTED", "bold red")
    if not state.connected and e.started is None:
        t.append(" connecting to the engine..." if not lost else " no engine", "yellow")
    else:
        where = f" {e.interface or '?'} {e.address or '?'}"
        if e.netmask:
            where += f"/{prefix_len(e.netmask)}"
        if lost:  # what it served: the rest of the line is history
            t.append(f" (was serving{where})", "")
        else:
            t.append(where, "bold")
    if state.connected:
        mode = e.dhcp_mode or "?"
        t.append("  DHCP ", "")
        t.append(mode, "bold cyan" if mode in ("full", "proxy") else "bold yellow")
        why = e.dhcp_mode_reason
        if e.other_server and e.other_server not in why:
            why = f"{why}; other server {e.other_server}".strip("; ")
        if why:
            t.append(f" ({why})", "")
    t.append("\n")
    if lost and hint:
        t.append(f" {hint}", "bold yellow")
        return t
    vm = state.lab_vm
    if vm is not None and vm.state == "off":  # pxetui lab: the key that boots it again
        t.append(f" VM off: {LAB_KEY_SHORT} ", "bold reverse yellow")
    if not state.services:
        t.append(" services: none reported yet", "dim")
    for i, h in enumerate(sorted(state.services.values(), key=lambda s: s.name)):
        t.append("  " if i else " ")
        style = HEALTH_STYLE.get(h.state, "")
        t.append(f"{HEALTH_MARK.get(h.state, '?')}{h.name} ", style)
        t.append(h.state, style)
        if h.state in ("failed", "restarting") and h.reason:
            t.append(f": {h.reason}", style)
    return t


class StatusHeader(Static):
    """Interface, address, DHCP mode and why, each service's health."""

    DEFAULT_CSS = """
    StatusHeader { height: 2; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def show(self, state: EngineState, hint: str = "") -> None:
        self.update(header_text(state, hint))


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


Row = Sequence[Any]
SortValue = Callable[[str, str], Any]


class LiveTable(DataTable):
    """A DataTable fed by key: rows are added, updated cell by cell, or removed, never rebuilt.

    docs/FIELD-NOTES.md: `update_cell` on changed cells ≈ 2 ms per tick for 10k rows, while
    clear()+add_rows() costs ~1 s a frame and throws the cursor back to row 0. Widths are fixed
    so an update never relayouts the table. Sorting reorders rows in place and keeps the cursor
    on the row it was on.
    """

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort", show=True),
        Binding("r", "reverse_sort", "Reverse", show=False),
    ]

    def __init__(self, columns: Sequence[Column], row_for: Callable[[str], Row | None],
                 sort_value: SortValue | None = None, structural_interval: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.spec = list(columns)
        self.row_for = row_for
        self.sort_value = sort_value
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._shown: dict[str, tuple[Any, ...]] = {}
        self.structural_interval = structural_interval
        self._last_structural = float("-inf")
        self._deferred: set[str] = set()
        self._deferred_timer: Timer | None = None

    def on_mount(self) -> None:
        for c in self.spec:
            self.add_column(c.label, width=c.width, key=c.key)

    @property
    def keys_shown(self) -> list[str]:
        return [str(r.key.value) for r in self.ordered_rows]

    def sync(self, keys: Iterable[str]) -> bool:
        """Bring the given rows up to date; True when rows were added or removed.

        Adding or removing a row changes the table's virtual size, which relayouts the whole
        screen (~tens of ms). With transfers starting and ending all the time that alone was
        most of the UI's CPU, so rows come and go at most once per `structural_interval`;
        changes to rows already shown go out every tick.
        """
        now = time.monotonic()
        can_restructure = now - self._last_structural >= self.structural_interval
        keys = list(keys)
        if can_restructure and self._deferred:
            keys.extend(self._deferred)
            self._deferred.clear()
        structural = False
        resort = False
        cells: list[tuple[str, str, Any]] = []
        sort_idx = self._sort_index()
        for key in keys:
            row = self.row_for(key)
            old = self._shown.get(key)
            if (row is None) != (old is None) and not can_restructure:
                self._deferred.add(key)
                continue
            if row is None:
                if old is not None:
                    self.remove_row(key)
                    del self._shown[key]
                    structural = True
                continue
            # Text, not str: a str cell is parsed as markup on every render.
            new = tuple(Text(v) if isinstance(v, str) else v for v in row)
            if old is None:
                self.add_row(*new, key=key)
                self._shown[key] = new
                structural = resort = True
                continue
            if new == old:
                continue
            for c, a, b in zip(self.spec, old, new, strict=True):
                if a != b:
                    cells.append((key, c.key, b))
            if sort_idx is not None and old[sort_idx] != new[sort_idx]:
                resort = True
            self._shown[key] = new
        if structural:
            self._last_structural = now
        if self._deferred and self._deferred_timer is None:
            wait = max(0.0, self.structural_interval - (now - self._last_structural))
            self._deferred_timer = self.set_timer(wait, self._apply_deferred)
        if cells:
            self.update_cells(cells)
        if resort and self.sort_column is not None:
            self.apply_sort()
        return structural

    def _apply_deferred(self) -> None:
        self._deferred_timer = None
        if self._deferred:
            self.sync(())

    def update_cells(self, cells: list[tuple[str, str, Any]]) -> None:
        """`update_cell` for a batch, re-rendering only the cells that changed.

        DataTable.update_cell bumps one global counter that is part of every render cache key,
        so one changed cell re-renders every visible cell; with 1,000 clients changing a few
        times a second that was ~30 % of a core. Here the new values go in and only the cache
        entries of the changed cells are dropped. Falls back to update_cell if the table's
        internals are not the ones this was written against (Textual 8).
        """
        if not self._caches_known():
            for key, col, value in cells:
                self.update_cell(key, col, value)
            return
        changed_cells = set()
        changed_rows = set()
        for key, col, value in cells:
            rk, ck = RowKey(key), ColumnKey(col)
            self._data[rk][ck] = value
            changed_cells.add((rk, ck))
            changed_rows.add(rk)
        count = self._update_count
        for rk in changed_rows:
            self._row_renderable_cache.discard((count, self._row_locations.get(rk)))
        cell_cache = self._cell_render_cache
        for k in list(cell_cache.keys()):
            if (k[0], k[1]) in changed_cells:
                cell_cache.discard(k)
        row_cache = self._row_render_cache
        for k in list(row_cache.keys()):
            if k[0] in changed_rows:
                row_cache.discard(k)
        self._line_cache.clear()
        self.refresh()

    def _caches_known(self) -> bool:
        return all(isinstance(getattr(self, name, None), LRUCache) for name in (
            "_row_renderable_cache", "_cell_render_cache", "_row_render_cache", "_line_cache"))

    def resync(self, all_keys: Iterable[str]) -> None:
        """Full diff against the source of truth (on first show or after a hidden period)."""
        wanted = list(all_keys)
        gone = set(self._shown) - set(wanted)
        self.sync([*wanted, *gone])

    def _sort_index(self) -> int | None:
        for i, c in enumerate(self.spec):
            if c.key == self.sort_column:
                return i
        return None

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - an empty or shrinking table has no cursor row
            return None
        return str(key.value)

    def apply_sort(self) -> None:
        if self.sort_column is None or not self.row_count:
            return
        keep = self.selected_key()
        col = self.sort_column
        sv = self.sort_value
        idx = self._sort_index() or 0

        def value(k: str) -> Any:
            v = sv(k, col) if sv is not None else None
            if v is None:
                v = str(self._shown[k][idx])
            return (0, v) if not isinstance(v, str) else (1, v)

        order = sorted(self._shown, key=value, reverse=self.sort_reverse)
        self._reorder(order)
        if keep is not None:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def _reorder(self, order: list[str]) -> None:
        # Same effect as DataTable.sort(), but ordering by a value the cells do not show
        # (an IP as a number, a progress as a fraction).
        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
        self._update_count += 1
        self.refresh()

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        for c in self.spec:
            label = c.label + ((" v" if reverse else " ^") if c.key == column else "")
            self.columns[ColumnKey(c.key)].label = Text(label)
        self.apply_sort()
        self.refresh()

    def action_cycle_sort(self) -> None:
        keys = [c.key for c in self.spec]
        nxt = keys[0] if self.sort_column is None else (
            keys[(keys.index(self.sort_column) + 1) % len(keys)])
        self.sort_by(nxt, False)

    def action_reverse_sort(self) -> None:
        if self.sort_column is not None:
            self.sort_by(self.sort_column, not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        col = str(event.column_key.value)
        self.sort_by(col, not self.sort_reverse if col == self.sort_column else False)
        event.stop()


def fill_rows(table: DataTable, rows: Sequence[Sequence[Any]]) -> None:
    """Show `rows` in a short table keyed by position: cells updated in place, rows added or
    dropped at the end only, so the cursor stays where it is."""
    columns = list(table.columns)
    for i, raw in enumerate(rows):
        key = str(i)
        # Text, not str: a str cell is read as markup, and a client's file name is not ours.
        row = [Text(v) if isinstance(v, str) else v for v in raw]
        if i < table.row_count:
            for col, value in zip(columns, row, strict=False):
                if table.get_cell(key, col) != value:
                    table.update_cell(key, col, value)
        else:
            table.add_row(*row, key=key)
    for i in range(table.row_count - 1, len(rows) - 1, -1):
        table.remove_row(str(i))
