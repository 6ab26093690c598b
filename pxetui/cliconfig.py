"""The command line as configuration: the engine options every command shares, and the Config
they make together with the config file (the command line wins).

Its own module so that cli.py and the subcommand modules (pxetui/commands/) both import it
without importing each other."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pxetui.config import (
    BOOT_KINDS,
    DEFAULT_CONFIG,
    DHCP_MODES,
    Config,
    ConfigError,
    merge,
    read_file,
    resolve,
)
from pxetui.netinfo import interfaces, usable


def default_state_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/pxetui"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "pxetui")


def add_common(p: argparse.ArgumentParser, sub: bool = False) -> None:
    """Options shared by the UI and `serve`; each maps onto a config-file key.

    On a subcommand the defaults are suppressed, so `pxetui -i eth1 serve` keeps `-i`."""
    g = p.add_argument_group("engine options (each also a config-file key)")
    if sub:
        g.argument_default = argparse.SUPPRESS
    g.add_argument("--interface", "-i", metavar="IFACE", help="serve on this interface only [interface]")
    g.add_argument("--dhcp", choices=DHCP_MODES, help="DHCP mode; auto probes for another server first [dhcp.mode]")
    g.add_argument("--range", metavar="START-END", help="address pool in full mode [dhcp.range]")
    g.add_argument("--router", metavar="IP", help="default gateway handed out [dhcp.router]")
    g.add_argument("--dns", metavar="IP[,IP]", help="DNS servers handed out [dhcp.dns]")
    g.add_argument("--boot-file", action="append", default=[], metavar="KIND=FILE_OR_URL",
                   help=f"boot file per client kind ({', '.join(BOOT_KINDS)}); repeatable [dhcp.boot_files.KIND]")
    g.add_argument("--tftp-root", metavar="DIR", help="TFTP root [tftp.root]")
    g.add_argument("--http-root", metavar="DIR", help="HTTP root [http.root]")
    g.add_argument("--http-port", type=int, metavar="N", help="HTTP port [http.port]")
    g.add_argument("--state-dir", metavar="DIR", help="leases, library, menus, control socket [state_dir]")
    g.add_argument("--ipv6", action="store_true", help="also serve DHCPv6, TFTP and HTTP over IPv6 [ipv6.enabled]")
    g.add_argument("--no-capture", action="store_true", help="do not watch the wire [capture.enabled=false]")
    g.add_argument("--logs", action="store_true",
                   help="receive installer syslog and kernel netconsole from clients [logs.enabled]")
    g.add_argument("--config", metavar="FILE", help=f"TOML config file (default {DEFAULT_CONFIG} if it exists)")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The command line as a config tree; it wins over the file."""
    o: dict[str, Any] = {}
    a = {k: getattr(args, k, None) for k in (
        "interface", "dhcp", "range", "router", "dns", "boot_file", "tftp_root", "http_root",
        "http_port", "state_dir", "no_capture", "ipv6", "logs", "config", "log_file")}

    def put(path: str, value: Any) -> None:
        if value is None:
            return
        node = o
        *parents, leaf = path.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value

    put("interface", a['interface'])
    put("dhcp.mode", a['dhcp'])
    put("dhcp.range", a['range'])
    put("dhcp.router", a['router'])
    if a['dns'] is not None:
        put("dhcp.dns", [d.strip() for d in a['dns'].split(",") if d.strip()])
    for spec in a['boot_file'] or []:
        kind, sep, value = spec.partition("=")
        if not sep or not value:
            raise ConfigError([f"--boot-file {spec!r}: expected KIND=FILE_OR_URL"])
        put(f"dhcp.boot_files.{kind.strip()}", value.strip())
    put("tftp.root", a['tftp_root'])
    put("http.root", a['http_root'])
    put("http.port", a['http_port'])
    put("state_dir", a['state_dir'])
    put("log.file", a['log_file'])
    if a['no_capture']:
        put("capture.enabled", False)
    if a['ipv6']:
        put("ipv6.enabled", True)
    if a['logs']:
        put("logs.enabled", True)
    return o


def config_from(args: argparse.Namespace, need_interface: bool = True) -> Config:
    path = getattr(args, "config", None) or os.environ.get("PXETUI_CONFIG") or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    over = overrides_from(args)
    raw = read_file(path) if path else {}  # read once: the config, and whether it sets state_dir
    cfg = Config.from_dict(merge(raw, over))  # config.load, without a second read of the file
    if "state_dir" not in over and "state_dir" not in raw:
        cfg.state_dir = default_state_dir()
    if need_interface:
        resolve_interface(cfg)
    return cfg


def resolve_interface(cfg: Config) -> None:
    """Fill in what the interface decides, or say which interfaces could be used."""
    if not cfg.interface:
        ok = ", ".join(i.describe() for i in usable(interfaces())) or "none"
        raise ConfigError([f"interface: not set; pass --interface IFACE (usable: {ok})"])
    resolve(cfg)
