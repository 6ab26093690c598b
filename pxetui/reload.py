"""What a config reload (SIGHUP to `pxetui serve`) changes: which keys differ, which keys it
cannot apply while running, and which services must restart to take the new values.

Each service reads its config once, from its stdin pipe, when it starts (pxetui/service.py), so
a service whose keys changed is restarted; the others only get SIGHUP and re-read what lives in
the state directory (menus, host overrides, the ISO library). A DHCP restart keeps every lease
(they are on disk before the ACK, README "Leases"); a TFTP or HTTP restart ends that service's
transfers in flight, which is why an untouched service is never restarted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pxetui.config import Config

# Keys whose change needs the whole engine restarted: the control socket, the databases and the
# served roots' owner follow state_dir and security.user, and every socket is bound to the
# interface (docs/SECURITY.md, "Least privilege").
REFUSED = ("interface", "state_dir", "security")
# Read by the engine process once at start (the tracker, its log, the metrics listener):
# applied at its next start only.
ENGINE_AT_START = ("tracker", "log", "metrics")
# What every service process reads (derived from the interface, or how it reports events).
COMMON = ("interface", "server_ip", "netmask", "mtu", "state_dir", "security", "events.queue_max")
# The menus the TFTP and HTTP services render carry the log receivers' arguments
# (pxetui/menus/logargs.py).
MENU_LOG_KEYS = ("logs.enabled", "logs.menu_args", "logs.syslog_port", "logs.netconsole_port")
# TFTP and HTTP listen on the IPv6 address too, and render its URLs, while ipv6.enabled
# (docs/IPV6.md "TFTP and HTTP").
LISTEN6_KEYS = ("ipv6.enabled", "server_ip6")
# Keys (or sections) each service reads beyond COMMON: the menus and ISO providers render
# http_base (http.port) and look in both roots (pxetui/library, pxetui/menus).
SERVICE_KEYS: dict[str, tuple[str, ...]] = {
    "dhcp": ("dhcp", "http.port", "http.root", "tftp.root", "tftp.port"),
    "tftp": ("tftp", "http.port", "http.root", "http.token_ttl", *MENU_LOG_KEYS, *LISTEN6_KEYS),
    "http": ("http", "tftp.root", *MENU_LOG_KEYS, *LISTEN6_KEYS),
    "capture": ("capture", "http.port", "tftp.port"),
    "logs": ("logs",),
    "dhcp6": ("ipv6", "dhcp", "http.port", "http.root", "tftp.root", "tftp.port", "server_ip6", "prefix6"),
}


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value  # lists (reservations, dns) compare whole


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted keys whose values differ, sorted."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flat(dataclasses.asdict(old), "", a)
    _flat(dataclasses.asdict(new), "", b)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def refused(changed: list[str]) -> list[str]:
    """A problem per key a running engine cannot take."""
    return [f"{k}: changes only when pxetui serve restarts (systemctl restart pxetui); "
            "the running engine keeps the previous config" for k in changed if _under(k, REFUSED)]


def at_next_start(changed: list[str]) -> list[str]:
    return [k for k in changed if _under(k, ENGINE_AT_START)]


def restarts(changed: list[str], names: list[str]) -> dict[str, list[str]]:
    """Each service in `names` whose keys changed, with those keys."""
    out: dict[str, list[str]] = {}
    for n in names:
        keys = [k for k in changed if _under(k, COMMON + SERVICE_KEYS.get(n, ()))]
        if keys:
            out[n] = keys
    return out
