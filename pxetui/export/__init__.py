"""Export pxetui's setup as another DHCP server's configuration (`pxetui export`).

plan.py decides what the server must do from the config, the state DB and pxetui's boot policy;
one module per format renders that plan: dnsmasq.py, kea.py, isc.py.
"""

from __future__ import annotations

from collections.abc import Callable

from pxetui.export import dnsmasq, isc, kea
from pxetui.export.plan import Plan

FORMATS: dict[str, Callable[[Plan], str]] = {"dnsmasq": dnsmasq.render, "kea": kea.render, "isc": isc.render}
