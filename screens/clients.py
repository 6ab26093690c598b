"""Clients: every machine that asked, its firmware, stage, progress and diagnosis."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import SystemCommand
from textual.binding import Binding
from textual.widgets import DataTable

from pxetui.state import ClientInfo
from screens import fmt
from screens.base import TableScreen
from screens.widgets import Column

# Firmware holds the tracker's names whole ("uefi64/ipxe", "arm64-http": pxetui.archtypes);
# MAC to Progress fit 80 columns. An IPv6 address longer than IP_WIDTH is cut in the middle
# (fmt.address); the client's detail screen shows it whole.
IP_WIDTH = 15
COLUMNS = (
    Column("mac", "MAC", 17), Column("ip", "IP", IP_WIDTH), Column("fw", "Firmware", 11),
    Column("stage", "Stage", 10), Column("progress", "Progress", 11),
    Column("last", "Last event", 24), Column("diag", "Diagnosis", 48),
)
STAGE_STYLE = {"booted": "green", "installed": "green"}


def ip_order(ip: str | None) -> tuple[int, int]:
    """Numeric order, IPv4 before IPv6, none first."""
    try:
        a = ipaddress.ip_address(ip or "")
    except ValueError:
        return (0, 0)
    return (a.version, int(a))


class ClientsScreen(TableScreen):
    TABLE = "clients"
    TITLE_TEXT = "Clients"
    NAV_MODE = "clients"
    COLUMNS = COLUMNS
    BINDINGS = [Binding("o", "follow", "Follow in Logs", show=False)]
    SORT = {
        "mac": lambda c: c.mac, "ip": lambda c: ip_order(c.ip),
        "fw": lambda c: fmt.firmware(c.firmware, c.arch), "stage": lambda c: c.stage,
        "progress": lambda c: c.progress, "last": lambda c: c.ts, "diag": lambda c: c.diagnosis,
    }

    def row_of(self, c: ClientInfo) -> tuple[Any, ...]:
        return (
            c.mac, fmt.address(c.ip, IP_WIDTH), fmt.firmware(c.firmware, c.arch),
            Text(fmt.stage(c.stage), "bold red" if c.diagnosis else STAGE_STYLE.get(c.stage, "")),
            fmt.bar(c.progress, 6) + " " + fmt.percent(c.progress),
            f"{fmt.clock(c.ts)} {c.last_event}",
            Text(c.diagnosis, "yellow") if c.diagnosis else "",
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_detail(str(event.row_key.value))

    def open_detail(self, mac: str | None) -> None:
        from screens.client_detail import ClientDetailScreen

        if mac and mac in self.state.clients:
            self.app.push_screen(ClientDetailScreen(mac))

    def action_follow(self) -> None:
        mac = self.table.selected_key()
        if mac:
            self.papp.follow_client(mac)

    def palette(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Follow the selected client in the Logs screen", "o",
                            self.action_follow)
        yield SystemCommand("Open the selected client", "its timeline, files and actions",
                            lambda: self.open_detail(self.table.selected_key()))
        yield from super().palette()
