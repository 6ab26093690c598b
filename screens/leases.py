"""Leases: the addresses we handed out and those seen on the wire, with who handed them out."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from pxetui.state import LeaseInfo
from screens import fmt
from screens.base import TableScreen
from screens.clients import IP_WIDTH, ip_order
from screens.widgets import Column

BY_WIDTH = 15
# IPv6 addresses (a DHCPv6 server answers from its link-local fe80::...) are cut in the middle
# to these widths (fmt.address), so the table keeps its 80-column layout.
COLUMNS = (
    Column("ip", "IP", IP_WIDTH), Column("mac", "MAC", 17), Column("by", "Handed out by", BY_WIDTH),
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
        by = Text("pxetui", "green") if le.ours else \
            Text(fmt.address(le.server_ip, BY_WIDTH) if le.server_ip else "another server", "yellow")
        return (fmt.address(le.ip, IP_WIDTH), le.mac, by, le.state, fmt.clock(le.expires), le.hostname or "")
