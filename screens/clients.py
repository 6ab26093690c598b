"""Clients: every machine that asked, its firmware, stage, progress and diagnosis."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import SystemCommand
from textual.widget import Widget
from textual.widgets import DataTable

from screens import fmt
from screens.base import PxeScreen
from screens.widgets import Column, LiveTable

COLUMNS = (
    Column("mac", "MAC", 17), Column("ip", "IP", 15), Column("fw", "Firmware", 8),
    Column("stage", "Stage", 10), Column("progress", "Progress", 11),
    Column("last", "Last event", 24), Column("diag", "Diagnosis", 48),
)
STAGE_STYLE = {"booted": "green", "installed": "green"}


def ip_order(ip: str | None) -> Any:
    try:
        return int(ipaddress.IPv4Address(ip or ""))
    except ValueError:
        return -1


class ClientsScreen(PxeScreen):
    WATCH = frozenset({"clients"})
    TITLE_TEXT = "Clients"
    NAV_MODE = "clients"

    def body(self) -> Iterable[Widget]:
        yield LiveTable(COLUMNS, self.row, self.sort_value,
                        structural_interval=self.structural_interval(), id="clients")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#clients", LiveTable)

    def row(self, mac: str) -> tuple[Any, ...] | None:
        c = self.state.clients.get(mac)
        if c is None:
            return None
        return (
            c.mac, c.ip or "-", fmt.firmware(c.firmware, c.arch),
            Text(c.stage or "new", "bold red" if c.diagnosis else STAGE_STYLE.get(c.stage, "")),
            fmt.bar(c.progress, 6) + " " + fmt.percent(c.progress),
            f"{fmt.clock(c.ts)} {c.last_event}",
            Text(c.diagnosis, "yellow") if c.diagnosis else "",
        )

    def sort_value(self, mac: str, column: str) -> Any:
        c = self.state.clients.get(mac)
        if c is None:
            return None
        return {
            "mac": c.mac, "ip": ip_order(c.ip), "fw": fmt.firmware(c.firmware, c.arch),
            "stage": c.stage, "progress": c.progress, "last": c.ts, "diag": c.diagnosis,
        }.get(column)

    def show(self, changed: dict[str, set[str]], full: bool) -> None:
        if full:
            self.table.resync(self.state.clients)
        elif "clients" in changed:
            self.table.sync(changed["clients"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_detail(str(event.row_key.value))

    def open_detail(self, mac: str | None) -> None:
        from screens.client_detail import ClientDetailScreen

        if mac and mac in self.state.clients:
            self.app.push_screen(ClientDetailScreen(mac))

    def palette(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Open the selected client", "its timeline, files and actions",
                            lambda: self.open_detail(self.table.selected_key()))
        yield SystemCommand("Sort clients by the next column", "s in the table",
                            self.table.action_cycle_sort)
