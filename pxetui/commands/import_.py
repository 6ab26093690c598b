"""`pxetui import FILE.iso`, `pxetui isos`, `pxetui seed`, and
`pxetui menu show|render|set|import-pxelinux|loaders`."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable

from pxetui.cliconfig import config_from
from pxetui.config import Config, ConfigError
from pxetui.menus import formats

PROGRESS_EVERY = 0.5  # seconds between progress lines


def _config(args: argparse.Namespace) -> Config:
    cfg = config_from(args, need_interface=False)
    if getattr(args, "server", None):
        cfg.server_ip = args.server
    elif not cfg.server_ip:
        cfg.server_ip = "SERVER"  # `menu render` without an address: a visible placeholder
    return cfg


def _hand_over(cfg: Config) -> None:
    """A database this command made (or grew a -wal for) as root belongs to the service user,
    who writes leases and reads seeds there once unprivileged; the state dir stays private
    (docs/SECURITY.md, least privilege)."""
    from pxetui import privileges

    if not cfg.state_path.is_dir():
        return
    try:
        ident = privileges.service_identity(cfg)
    except privileges.PrivilegeError:
        ident = None  # `serve` says so; the files still become private
    privileges.secure_state_dir(cfg, ident)


def _service_cannot_read(cfg: Config, path: str) -> str | None:
    """Why the unprivileged TFTP/HTTP services could not serve `path` (None: they can). They
    serve an ISO's files straight out of the .iso, as the service user, like dnsmasq's TFTP
    serves only what its user may read."""
    from pxetui import privileges

    try:
        ident = privileges.service_identity(cfg)
    except privileges.PrivilegeError as exc:
        return str(exc)
    if ident is None or privileges.readable_by(path, ident):
        return None
    return f"{privileges.how_to_grant(path, ident)}. The TFTP and HTTP services run as {ident.name}"


def _progress(quiet: bool) -> Callable[[str, int, int], None] | None:
    if quiet:
        return None
    last = {"t": 0.0, "step": ""}

    def show(step: str, done: int, total: int) -> None:
        now = time.monotonic()
        if step == last["step"] and now - last["t"] < PROGRESS_EVERY and done < total:
            return
        last["t"], last["step"] = now, step
        pct = f"{100 * done / total:5.1f}%" if total else ""
        print(f"  {step}: {pct} ({done}/{total})", file=sys.stderr, flush=True)

    return show


def cmd_import(args: argparse.Namespace) -> int:
    from pxetui.iso.library import import_iso
    from pxetui.iso.reader import IsoError
    from pxetui.menus.model import MenuError

    cfg = _config(args)  # a bad config: cli.main says so, exit 2 like every command
    refused = _service_cannot_read(cfg, args.file)
    if refused:
        print(f"pxetui import: {refused}", file=sys.stderr)
        return 1
    try:
        res = import_iso(cfg, args.file, name=args.name, sha256sums=args.sha256sums,
                         progress=_progress(args.quiet))
    except (IsoError, MenuError, ConfigError) as exc:
        print(f"pxetui import: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"pxetui import: state database: {exc}", file=sys.stderr)
        return 1
    finally:
        _hand_over(cfg)
    r, d = res.record, res.detection
    print(f"imported {r.name}: {d.family} ({d.label}), {r.files} files, "
          f"indexed in {res.seconds:.2f} s" + (", SHA256 verified" if r.sha256 else ""))
    for eid in r.entries:
        print(f"  menu entry: {eid}")
    for note in d.notes:
        print(f"  note: {note}")
    return 0


def cmd_isos(args: argparse.Namespace) -> int:
    from pxetui.iso.library import connect, list_isos, remove_iso
    from pxetui.iso.reader import IsoError

    cfg = _config(args)
    try:
        if args.remove:
            try:
                gone = remove_iso(cfg, args.remove)
            except IsoError as exc:
                print(f"pxetui isos: {exc}", file=sys.stderr)
                return 1
            print(f"removed {args.remove} and its entries: {', '.join(gone) or 'none'}")
            return 0
        conn = connect(cfg)
        try:
            for r in list_isos(conn):
                state = r.changed() or "ok"
                print(f"{r.name:24} {r.family:17} {r.files:6} files  {r.path}  [{state}]")
        finally:
            conn.close()
        return 0
    finally:
        _hand_over(cfg)


MenuAction = Callable[[Config, argparse.Namespace], int]


def _menu_command(action: MenuAction) -> Callable[[argparse.Namespace], int]:
    """A `pxetui menu ACTION`: its config, then the database it touched handed to the service user."""

    def run(args: argparse.Namespace) -> int:
        cfg = _config(args)
        try:
            return action(cfg, args)
        finally:
            _hand_over(cfg)

    return run


def _menu_loaders(cfg: Config, args: argparse.Namespace) -> int:
    from pxetui.loaders import find_loaders

    for line in find_loaders(state_dir=cfg.state_path / "cache").describe_lines():
        print(line)
    return 0


def _menu_show(cfg: Config, args: argparse.Namespace) -> int:
    from pxetui import store
    from pxetui.library.provider import effective_sources
    from pxetui.menus import model

    conn = store.connect(cfg.db_path)
    try:
        menu = model.load_menu(conn)
    finally:
        conn.close()
    print(f"{menu.title}  (default {menu.default}, timeout {menu.timeout or 'none'} s)")
    for e in menu.entries:
        mark = "*" if e.id == menu.default else " "
        print(f"{mark} {e.id:24} {e.kind:7} {','.join(e.archs):18} {e.label}")
        if e.kernel:
            print(f"    {e.kernel} {' '.join(e.initrds)} {e.full_args()}".rstrip())
        if e.notes:
            print(f"    note: {e.notes}")
    print("in effect:")
    for name, how in effective_sources(cfg).items():
        print(f"  {name:22} {how}")
    return 0


def _menu_render(cfg: Config, args: argparse.Namespace) -> int:
    from pxetui import store
    from pxetui.menus import model

    conn = store.connect(cfg.db_path)
    try:
        menu = model.load_menu(conn)
    finally:
        conn.close()
    print(formats.render(menu, cfg, args.format))
    return 0


def _menu_set(cfg: Config, args: argparse.Namespace) -> int:
    from pxetui import store

    conn = store.connect(cfg.db_path)
    try:
        return _set_menu(conn, args)
    finally:
        conn.close()


def _menu_import(cfg: Config, args: argparse.Namespace) -> int:
    from pxetui import store
    from pxetui.menus import model
    from pxetui.menus.parse_pxelinux import parse_file

    try:
        parsed = parse_file(args.file, args.root)
    except OSError as exc:
        print(f"pxetui menu import-pxelinux: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    for p in parsed.problems:
        print(f"cannot import: {p}", file=sys.stderr)
    if args.verbose:
        for p in parsed.ignored:
            print(f"ignored: {p}", file=sys.stderr)
    new = parsed.menu

    def merge(target: model.Menu) -> None:
        if args.replace:
            keep = [e for e in target.entries if e.source_iso]  # ISO entries stay
            target.title, target.entries, target.default = new.title, new.entries, new.default
            target.timeout, target.serial = new.timeout, new.serial
            for e in keep:
                target.add(e)
        else:
            for e in new.entries:
                if e.kind != "local":
                    target.add(e)

    conn = store.connect(cfg.db_path)
    try:
        # Read, merged and stored under one write lock: a change made meanwhile is not lost.
        model.update_menu(conn, merge)
    except model.MenuError as exc:
        print(f"pxetui menu import-pxelinux: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    imported = [e for e in new.entries if e.kind != "local" or args.replace]
    print(f"imported {len(imported)} entries from {args.file}; "
          f"{len(parsed.problems)} lines not imported, {len(parsed.ignored)} presentation lines ignored")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pxetui import store
    from pxetui.menus.model import MenuError
    from pxetui.menus.seeds import set_seed

    cfg = _config(args)
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"pxetui seed: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    conn = store.connect(cfg.db_path)
    try:
        served = set_seed(conn, args.name or Path(args.file).name, data, entry=args.entry, mac=args.mac)
    except (MenuError, ValueError) as exc:
        print(f"pxetui seed: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
        _hand_over(cfg)  # seeds hold passwords: 0600, the service user's
    print(f"stored; served as {served}")
    return 0


def _set_menu(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    from pxetui.menus import model

    def change(m: model.Menu) -> None:
        if args.title is not None:
            m.title = args.title
        if args.default is not None:
            if m.get(args.default) is None:
                raise model.MenuError(f"default: no entry {args.default!r}")
            m.default = args.default
        if args.timeout is not None:
            m.timeout = args.timeout
        if args.serial is not None:
            m.serial = args.serial
        for entry_id, extra in args.append or []:
            e = m.get(entry_id)
            if e is None:
                raise model.MenuError(f"--append: no entry {entry_id!r}")
            e.args = f"{e.args} {extra}".strip()

    try:
        menu = model.update_menu(conn, change)
    except model.MenuError as exc:
        print(f"pxetui menu set: {exc}", file=sys.stderr)
        return 1
    print(f"menu: default {menu.default}, timeout {menu.timeout} s, serial {menu.serial or 'off'}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", metavar="DIR", default=argparse.SUPPRESS,
                   help="library and menus live here [state_dir]")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML config file")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import an ISO image into the library and the boot menu")
    p.add_argument("file", metavar="FILE.iso")
    p.add_argument("--name", help="library name (default: the file name without .iso)")
    p.add_argument("--sha256sums", metavar="FILE", help="verify the image against this SHA256SUMS file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _common(p)
    p.set_defaults(func=cmd_import)

    i = sub.add_parser("isos", help="list imported ISO images (or remove one)")
    i.add_argument("--remove", metavar="NAME", help="remove an image and its menu entries")
    _common(i)
    i.set_defaults(func=cmd_isos)

    sd = sub.add_parser("seed", help="store an autoinstall/preseed/kickstart seed for an entry or a machine")
    who = sd.add_mutually_exclusive_group(required=True)
    who.add_argument("--entry", help="menu entry id (switches on its unattended arguments)")
    who.add_argument("--mac", help="one machine's MAC address")
    sd.add_argument("file", help="the seed file (user-data, preseed.cfg, ks.cfg ...)")
    sd.add_argument("--name", help="served name (default: the file's name)")
    _common(sd)
    sd.set_defaults(func=cmd_seed)

    m = sub.add_parser("menu", help="show, render or import the boot menu")
    _common(m)
    actions = m.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, run: MenuAction, what: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=what)
        _common(a)  # --state-dir/--config before or after the action
        a.set_defaults(func=_menu_command(run))
        return a

    action("show", _menu_show, "print the entries and which files are in effect")
    r = action("render", _menu_render, "print the menu as one boot loader reads it")
    r.add_argument("--format", choices=tuple(formats.FORMATS), default="pxelinux",
                   help="which menu")
    r.add_argument("--server", metavar="IP", help="the server address to fill in")
    s = action("set", _menu_set, "change the title, default, timeout, serial port or an entry's arguments")
    s.add_argument("--default", help="the default entry id")
    s.add_argument("--timeout", type=int, help="seconds before the default boots (0 = wait)")
    s.add_argument("--serial", metavar="'PORT BAUD'", help="also draw menus on this serial port ('' = off)")
    s.add_argument("--title", help="menu title")
    s.add_argument("--append", nargs=2, action="append", metavar=("ENTRY", "ARGS"),
                   help="add kernel arguments to an entry (repeatable)")
    i = action("import-pxelinux", _menu_import, "add the entries of a PXELINUX config file")
    i.add_argument("file", help="the PXELINUX config file")
    i.add_argument("--root", metavar="DIR", help="TFTP root that INCLUDE paths are relative to")
    i.add_argument("--replace", action="store_true", help="replace the menu (ISO entries stay)")
    i.add_argument("-v", "--verbose", action="store_true", help="list ignored lines too")
    action("loaders", _menu_loaders, "list the boot loaders found on this machine")
