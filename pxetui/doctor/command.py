"""The options `pxetui doctor` adds to the machine checks in cli.py: the host findings
(`--json`) and `--self-test`. Exit codes: 0 nothing found / everything served, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pxetui import __version__, exitcodes
from pxetui.cliconfig import config_from
from pxetui.config import Config
from pxetui.control import is_live, socket_path
from pxetui.doctor import engineargs, host, selftest
from pxetui.doctor.finding import Finding


def add_options(d: argparse.ArgumentParser) -> None:
    d.add_argument("--json", action="store_true",
                   help="print the host findings as JSON (shape: README.md, Troubleshooting)")
    d.add_argument("--self-test", action="store_true",
                   help="fetch from the running engine what each architecture would get")
    d.add_argument("--server", metavar="IP", help="--self-test: this address instead of the interface's")


def findings(cfg: Config) -> tuple[list[Finding], list[str]]:
    return host.check(cfg.interface or None, cfg.http.port, cfg.ipv6.enabled,
                      cfg.ipv6.router_advertisements != "off")


def print_findings(found: list[Finding], read: list[str], interface: str) -> None:
    where = f"on {interface}" if interface else "(no --interface: interface checks skipped)"
    print(f"host {where}: firewall read from {', '.join(read) or 'nothing (nft and iptables-save missing)'}")
    for f in found:
        print(f"  {f.severity.upper()} {f.check}: {f.problem}")
        print(f"    fix: {f.fix}")
    if not found:
        print("  nothing on this host blocks PXE")


def as_json(cfg: Config, found: list[Finding], read: list[str]) -> int:
    doc = {"version": __version__, "interface": cfg.interface or None, "firewall_read": read,
           "ok": not any(f.severity == "error" for f in found), "findings": [f.as_dict() for f in found]}
    json.dump(doc, sys.stdout, indent=2)
    print()
    return exitcodes.OK if doc["ok"] else exitcodes.FAILED


def self_test(args: argparse.Namespace) -> int:
    """With no interface given, the running engine's own options are used (engineargs.py): a
    technician types `pxetui doctor --self-test` and tests what is being served."""
    base = config_from(args, need_interface=False)
    sock = socket_path(base.state_dir)
    if not base.interface and is_live(sock) and not os.environ.get(engineargs.CHILD_ENV):
        report = engineargs.run(sock, ["--server", args.server] if args.server else [])
    else:
        report = selftest.run(config_from(args), args.server)
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2)
        print()
    else:
        print("\n".join(report.lines()))
    return exitcodes.OK if report.ok else exitcodes.FAILED

