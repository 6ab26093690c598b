"""Leases: the addresses we handed out and those seen on the wire, with who handed them out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import SystemCommand
from textual.widget import Widget

from screens import fmt
from screens.base import PxeScreen
from screens.clients import ip_order
from screens.widgets import Column, LiveTable

COLUMNS = (
    Column("ip", "IP", 15), Column("mac", "MAC", 17), Column("by", "Handed out by", 15),
    Column("state", "State", 7), Column("expires", "Expires", 8), Column("host", "Hostname", 20),
)


class LeasesScreen(PxeScreen):
    WATCH = frozenset({"leases"})
    TITLE_TEXT = "Leases"
    NAV_MODE = "leases"

    def body(self) -> Iterable[Widget]:
        yield LiveTable(COLUMNS, self.row, self.sort_value,
                        structural_interval=self.structural_interval(), id="leases")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#leases", LiveTable)

    def row(self, key: str) -> tuple[Any, ...] | None:
        le = self.state.leases.get(key)
        if le is None:
            return None
        by = Text("pxetui", "green") if le.ours else Text(le.server_ip or "another server", "yellow")
        return (le.ip, le.mac, by, le.state, fmt.clock(le.expires), le.hostname or "")

    def sort_value(self, key: str, column: str) -> Any:
        le = self.state.leases.get(key)
        if le is None:
            return None
        return {"ip": ip_order(le.ip), "by": "" if le.ours else (le.server_ip or "?"),
                "expires": le.expires}.get(column)

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        if full:
            self.table.resync(self.state.leases)
        elif "leases" in changed:
            self.table.sync(changed["leases"])

    def palette(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Sort leases by the next column", "s in the table",
                            self.table.action_cycle_sort)
