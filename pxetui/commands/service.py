"""`pxetui service show|install`: the systemd unit (pxetui/unit.py) for this installation, its
ExecStart being the console script of the environment pxetui runs from (a pipx venv, .venv)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pxetui import exitcodes, unit


def console_script() -> Path | None:
    """The `pxetui` script installed beside this interpreter (pipx and pip put it there)."""
    p = Path(sys.executable).parent / "pxetui"
    return p if os.access(p, os.X_OK) else None


def _render(args: argparse.Namespace) -> str | None:
    exe = args.exec or console_script()
    if exe is None:
        print(f"pxetui service: no pxetui console script beside {sys.executable}; pass --exec PATH",
              file=sys.stderr)
        return None
    try:
        return unit.render(str(exe), args.config)
    except ValueError as exc:
        print(f"pxetui service: {exc}", file=sys.stderr)
        return None


def cmd_show(args: argparse.Namespace) -> int:
    text = _render(args)
    if text is None:
        return exitcodes.USAGE
    sys.stdout.write(text)
    return exitcodes.OK


def cmd_install(args: argparse.Namespace) -> int:
    text = _render(args)
    if text is None:
        return exitcodes.USAGE
    path = Path(args.unit_dir) / unit.NAME
    if path.exists() and path.read_text() != text and not args.force:
        print(f"pxetui service: {path} exists and differs; --force replaces it "
              f"(`pxetui service show` prints the new one)", file=sys.stderr)
        return exitcodes.FAILED
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".pxetui-new")
        tmp.write_text(text)
        tmp.chmod(0o644)  # systemd reads units as root; others may read what runs
        tmp.replace(path)
    except OSError as exc:
        print(f"pxetui service: cannot write {path}: {exc.strerror or exc} (run as root)", file=sys.stderr)
        return exitcodes.FAILED
    print(f"wrote {path}")
    if not Path(args.config).exists():
        print(f"note: {args.config} does not exist yet; write it (README, Configuration: `interface` "
              "at least) before starting, or the unit exits 2")
    print("then: systemctl daemon-reload && systemctl enable --now pxetui")
    return exitcodes.OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("service", help="the systemd unit that runs `pxetui serve` (show or install it)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, run, what in (("show", cmd_show, "print the unit for this installation"),
                            ("install", cmd_install, f"write it to {unit.UNIT_DIR}/{unit.NAME}")):
        a = actions.add_parser(name, help=what)
        a.add_argument("--config", metavar="FILE", default=unit.DEFAULT_CONFIG,
                       help=f"the config file the unit's serve reads (default {unit.DEFAULT_CONFIG})")
        a.add_argument("--exec", metavar="PATH",
                       help="the pxetui program to run (default: the console script beside this Python)")
        a.set_defaults(func=run)
        if name == "install":
            a.add_argument("--unit-dir", metavar="DIR", default=unit.UNIT_DIR,
                           help=f"where the unit goes (default {unit.UNIT_DIR})")
            a.add_argument("--force", action="store_true", help="replace a unit that differs")
