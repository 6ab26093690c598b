"""Leases: the addresses we handed out and those seen on the wire, with who handed them out."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from pxetui.state import LeaseInfo
from screens import fmt
from screens.base import TableScreen
from screens.clients import ip_order
from screens.widgets import Column

COLUMNS = (
    Column("ip", "IP", 15), Column("mac", "MAC", 17), Column("by", "Handed out by", 15),
    Column("state", "State", 7), Column("expires", "Expires", 8), Column("host", "Hostname", 20),
)


class LeasesScreen(TableScreen):
    TABLE = "leases"
    TITLE_TEXT = "Leases"
    NAV_MODE = "leases"
    COLUMNS = COLUMNS
    SORT = {"ip": lambda le: ip_order(le.ip),
            "by": lambda le: "" if le.ours else (le.server_ip or "?"),
            "expires": lambda le: le.expires}

    def row_of(self, le: LeaseInfo) -> tuple[Any, ...]:
        by = Text("pxetui", "green") if le.ours else Text(le.server_ip or "another server", "yellow")
        return (le.ip, le.mac, by, le.state, fmt.clock(le.expires), le.hostname or "")
