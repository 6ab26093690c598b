"""The frame every pxetui screen shares: status header, body, footer; fed from the app's state.

The app folds events into `EngineState` as they arrive and, at most 4 times a second, hands
each screen the keys that changed. Only the screen on top redraws; the others collect the
keys and catch up when shown again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from pxetui.state import EngineState
from screens.widgets import Column, LiveTable, NavBar, Row, StatusHeader, nav_text

if TYPE_CHECKING:
    from screens.app import PxetuiApp

HEADER_TABLES = {"engine", "services"}


class PxeScreen(Screen):
    """Subclasses set WATCH (the state tables they show) and implement body() and show()."""

    WATCH: frozenset[str] = frozenset()
    NAV_MODE = ""  # which F-key tab is lit
    # Redraw at most this often (the app ticks 4 times a second) and add or remove table rows
    # at most every STRUCTURAL seconds (each relayouts the screen: bench/ui measured it).
    MIN_INTERVAL = 0.0
    STRUCTURAL = 1.0
    TITLE_TEXT = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[str, set[str]] = {}
        self._full = True
        self._last_redraw = float("-inf")

    @property
    def papp(self) -> PxetuiApp:
        return self.app  # type: ignore[return-value]

    @property
    def state(self) -> EngineState:
        return self.papp.state

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield NavBar(nav_text(self.papp.nav_items, self.NAV_MODE), id="nav")
        yield from self.body()
        yield Footer(compact=True)

    def body(self) -> Iterable[Widget]:
        return ()

    def on_mount(self) -> None:
        if self.TITLE_TEXT:
            self.sub_title = self.TITLE_TEXT
        self.papp.views.add(self)
        self.setup()
        self.redraw()

    def setup(self) -> None:
        """Once, after the widgets are mounted (Textual calls every class's on_mount, so
        subclasses use this hook instead)."""

    def on_unmount(self) -> None:
        self.papp.views.discard(self)

    def on_screen_resume(self) -> None:
        self.redraw()

    def invalidate(self) -> None:
        """Redraw everything next time (the state was replaced)."""
        self._full = True
        self.pending.setdefault("engine", set())

    def collect(self, dirty: dict[str, set[str]]) -> None:
        for table, keys in dirty.items():
            if table in self.WATCH or table in HEADER_TABLES:
                # Log keys are sequence numbers: screens read the ring, so one marker is enough.
                self.pending.setdefault(table, set()).update(keys if table != "logs" else {""})

    def structural_interval(self) -> float:
        return self.STRUCTURAL if self.papp.pacing else 0.0

    def due(self) -> bool:
        if not self.papp.pacing:
            return True
        return time.monotonic() - self._last_redraw >= self.MIN_INTERVAL - 0.01

    def redraw(self) -> None:
        """Draw what changed since the last draw (everything on the first one)."""
        if not self.is_mounted:
            return
        self._last_redraw = time.monotonic()
        pending, self.pending = self.pending, {}
        full, self._full = self._full, False
        if full or HEADER_TABLES & pending.keys():
            self.query_one(StatusHeader).show(self.state, self.papp.engine_hint())
        self.show(pending, full)

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        """Update the body from `self.state`; `changed` maps tables to changed keys."""

    def palette(self) -> Iterable[SystemCommand]:
        """Commands this screen adds to the command palette."""
        return ()


class TableScreen(PxeScreen):
    """A screen that is one LiveTable over one keyed state table (clients, leases, transfers).

    Subclasses name the table (TABLE: an EngineState attribute, also the widget id and what
    the screen watches), its COLUMNS, how an item becomes a row (row_of) and, per column, a
    sort key the cells do not show (SORT; other columns sort by their text).
    """

    TABLE = ""
    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    SORT: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TABLE:
            cls.WATCH = frozenset({cls.TABLE})

    def items(self) -> Mapping[str, Any]:
        return getattr(self.state, self.TABLE)  # type: ignore[no-any-return]

    def body(self) -> Iterable[Widget]:
        yield LiveTable(self.COLUMNS, self.row, self.sort_value,
                        structural_interval=self.structural_interval(), id=self.TABLE)

    @property
    def table(self) -> LiveTable:
        return self.query_one(f"#{self.TABLE}", LiveTable)

    def row_of(self, item: Any) -> Row:
        raise NotImplementedError

    def row(self, key: str) -> Row | None:
        item = self.items().get(key)
        return None if item is None else self.row_of(item)

    def sort_value(self, key: str, column: str) -> Any:
        by = self.SORT.get(column)
        if by is None:
            return None
        item = self.items().get(key)
        return None if item is None else by(item)

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        if full:
            self.table.resync(self.items())
        elif self.TABLE in changed:
            self.table.sync(changed[self.TABLE])

    def palette(self) -> Iterable[SystemCommand]:
        yield SystemCommand(f"Sort {self.TABLE} by the next column", "s in the table",
                            self.table.action_cycle_sort)
