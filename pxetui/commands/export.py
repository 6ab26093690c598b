"""`pxetui export --format dnsmasq|kea|isc`: the running setup as another DHCP server's
config, for graduating it to the site's permanent server (README "Graduating to dnsmasq, Kea
or ISC dhcpd")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pxetui import exitcodes
from pxetui.cliconfig import add_common


def main(args: argparse.Namespace) -> int:
    from pxetui import store
    from pxetui.cliconfig import config_from
    from pxetui.export import FORMATS
    from pxetui.export.plan import build
    from pxetui.iso.library import list_isos
    from pxetui.loaders import find_loaders

    cfg = config_from(args)
    overrides: dict[str, dict[str, object]] = {}
    isos: list[str] = []
    if cfg.db_path.exists():
        conn = store.connect(cfg.db_path)
        try:
            overrides = {m: dict(r) for m, r in store.host_overrides(conn).items()}
            isos = [r.name for r in list_isos(conn)]
        finally:
            conn.close()
    mode, note = args.mode, None
    if mode is None:
        mode = cfg.dhcp.mode if cfg.dhcp.mode in ("full", "proxy") else "full"
        if cfg.dhcp.mode != mode:
            note = (f"dhcp.mode is {cfg.dhcp.mode!r}: exported as full DHCP (pass --mode proxy "
                    "to add boot information beside another DHCP server)")
    plan = build(cfg, overrides, mode, loaders=find_loaders(state_dir=cfg.state_dir),
                 isos=isos, mode_note=note)
    text = FORMATS[args.format](plan)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"pxetui: wrote {args.format} configuration to {args.output}", file=sys.stderr)
    return exitcodes.OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="the current setup as a dnsmasq, Kea or ISC dhcpd configuration",
                       description=__doc__)
    add_common(p, sub=True)
    p.add_argument("--format", required=True, choices=("dnsmasq", "kea", "isc"),
                   help="the server to write a configuration for")
    p.add_argument("--mode", choices=("full", "proxy"),
                   help="full DHCP or proxyDHCP (default: dhcp.mode; auto and off export as full)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=main)
