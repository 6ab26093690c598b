"""ISOs: the images imported into the library, their detected family and menu entries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.widget import Widget

from screens import fmt
from screens.base import PxeScreen
from screens.widgets import Column, LiveTable

COLUMNS = (
    Column("name", "Name", 22), Column("family", "Family", 14), Column("entries", "Entries", 30),
    Column("when", "Imported", 8), Column("path", "File", 40),
)


class IsosScreen(PxeScreen):
    TITLE_TEXT = "ISOs"
    NAV_MODE = "isos"
    WATCH = frozenset({"library"})

    def body(self) -> Iterable[Widget]:
        yield LiveTable(COLUMNS, self.row, structural_interval=0.0, id="library")

    def row(self, name: str) -> tuple[Any, ...] | None:
        iso = self.state.library.get(name)
        if iso is None:
            return None
        return (iso.name, iso.family, ", ".join(iso.entries), fmt.clock(iso.ts), iso.path)

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        table = self.query_one("#library", LiveTable)
        if full:
            table.resync(self.state.library)
        elif "library" in changed:
            table.sync(k for k in changed["library"] if k != "menu")
