"""Command line: `pxetui` (the UI), `pxetui serve`, `pxetui lab`, `pxetui import`, ..."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pxetui import __version__, exitcodes
from pxetui.cliconfig import add_common, config_from, resolve_interface
from pxetui.commands import analyze, export, import_, lab, service, status, watch
from pxetui.config import Config, ConfigError
from pxetui.doctor.command import add_options as doctor_options
from pxetui.interpreter import python_module
from pxetui.logfile import open_emptied
from pxetui.netinfo import interfaces
from pxetui.uiport import NO_UI, RunUi

if TYPE_CHECKING:
    from pxetui.supervisor import Supervisor

# Subcommands other modules contribute: each has register(subparsers).
COMMAND_MODULES = (import_, lab, watch, analyze, export, status, service)


# -- serve ----------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from pxetui import logfile, logfmt
    from pxetui.supervisor import Supervisor, preflight, services_for

    cfg = config_from(args)
    logfile.log_to_file(cfg.log)  # --log-file: a size-rotated file instead of stderr
    names = services_for(cfg)
    problems = preflight(cfg, names)
    if os.geteuid() != 0 and ("dhcp" in names or "capture" in names or cfg.tftp.port < 1024
                              or cfg.http.port < 1024):
        problems.append("needs root (DHCP and ports below 1024): run with sudo")
    problems += privilege_problems(cfg)
    if problems:
        for p in problems:
            print(f"pxetui: cannot start: {p}", file=sys.stderr)
        return exitcodes.FAILED

    show = logfmt.Printer(verbose=args.verbose, rate=cfg.log.rate)

    async def main() -> int:
        sup = Supervisor(cfg, names, on_event=show)
        loop = asyncio.get_running_loop()
        # Installed explicitly, whatever was inherited (a parent that ignores SIGINT). SIGHUP
        # reloads, as for any daemon (README "Run it permanently"): a closed terminal no longer
        # stops a foreground `serve`.
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(sup.stop()))
        loop.add_signal_handler(signal.SIGHUP, lambda: reload_config(args, sup))
        await sup.start()
        await sup.wait()
        show.close()
        if sup.fatal:
            print(f"pxetui: cannot start: {sup.fatal}", file=sys.stderr)
            return exitcodes.FAILED
        return exitcodes.OK

    from pxetui.serviceapi import install_loop_policy

    install_loop_policy()
    return asyncio.run(main())


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def reload_config(args: argparse.Namespace, sup: Supervisor) -> None:
    """SIGHUP: read the config file again, with the same command line winning over it, and
    validate it; a bad one is an error event and the engine keeps the config in effect."""
    try:
        new = config_from(args)
    except ConfigError as exc:
        sup.reload_failed(exc.problems)
        return
    asyncio.ensure_future(sup.reload(new))


def privilege_problems(cfg: Config) -> list[str]:
    """What stops the services from running as the service user (docs/SECURITY.md)."""
    from pxetui import privileges

    try:
        ident = privileges.service_identity(cfg)
    except privileges.PrivilegeError as exc:
        return [str(exc)]
    return privileges.code_problems(ident) if ident is not None else []


# -- the UI ---------------------------------------------------------------------------


def engine_logs(cfg: Config) -> list[Path]:
    """Where a UI-started engine writes: what it printed before its log was open (a start-up
    crash; rewritten at each start), then its log, rotated by size (log.max_bytes)."""
    return [cfg.state_path / "engine.stderr", Path(cfg.log.file) if cfg.log.file else cfg.state_path / "engine.log"]


def start_engine(args: argparse.Namespace, cfg: Config) -> subprocess.Popen[bytes]:
    """`pxetui serve` with the same options, its log in the state dir."""
    cmd = python_module("pxetui", "serve", *sys.argv[1:])
    if "--state-dir" not in cmd:
        cmd += ["--state-dir", cfg.state_dir]
    stray, log = engine_logs(cfg)
    if not cfg.log.file:
        cmd += ["--log-file", str(log)]
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    err = open_emptied(stray)
    try:
        return subprocess.Popen(cmd, stdout=err, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(err)  # the child has its own copy


def cmd_ui(args: argparse.Namespace) -> int:
    from pxetui.control import ControlClient, is_live, socket_path

    run_ui: RunUi | None = args.run_ui
    if run_ui is None:
        print(f"pxetui: {NO_UI}", file=sys.stderr)
        return exitcodes.USAGE
    cfg = config_from(args, need_interface=False)
    sock = socket_path(cfg.state_dir)
    engine = None
    if not is_live(sock):
        resolve_interface(cfg)  # the engine needs it; the file is not read again
        try:
            engine = start_engine(args, cfg)
        except OSError as exc:
            print(f"pxetui: cannot start the engine: {exc.strerror or exc}", file=sys.stderr)
            return exitcodes.FAILED
        deadline = time.monotonic() + 15
        while not is_live(sock):
            if engine.poll() is not None or time.monotonic() > deadline:
                from pxetui.logfile import tail as tail_of

                tail = tail_of(engine_logs(cfg), 8)
                print("pxetui: the engine did not start:\n  " + "\n  ".join(tail), file=sys.stderr)
                return exitcodes.FAILED
            time.sleep(0.1)
    console = args.console or str(cfg.state_path / "lab" / "console.log")
    if engine is not None:
        # SIGTERM or a closed terminal must not leave the engine we started behind (it runs in
        # a session of its own): end the UI through the `finally` below.
        def leave(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, leave)
    try:
        return run_ui(lambda: ControlClient.connect(sock), console, state_dir=cfg.state_dir,
                      config_path=getattr(args, "config", None))
    finally:
        if engine is not None and not args.keep_engine:
            engine.send_signal(signal.SIGTERM)
            try:
                engine.wait(5)
            except subprocess.TimeoutExpired:
                engine.kill()


# -- doctor ---------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    """What pxetui needs on this machine, and what is missing (with the package to install)."""
    from pxetui.doctor import command as doctor

    if args.self_test:
        return doctor.self_test(args)
    cfg = config_from(args, need_interface=False)
    if args.json:
        return doctor.as_json(cfg, *doctor.findings(cfg))
    ok = True
    print(f"pxetui {__version__}, Python {sys.version.split()[0]}")
    print(f"root: {'yes' if os.geteuid() == 0 else 'no (DHCP, capture and ports < 1024 need root)'}")
    print("interfaces:")
    for i in interfaces().values():
        print(f"  {i.describe()}  mac {i.mac}  {i.speed_mbps} Mb/s  mtu {i.mtu}")
    from pxetui.loaders import find_loaders

    print("boot loaders:")
    for line in find_loaders().describe_lines():
        print(f"  {line}")
    from pxetui.tftp import pump

    hint = "" if pump._pump is not None else (" (install gcc and python3-dev, then reinstall: "
                                              "pipx reinstall pxetui, or pip install -e . in a clone)")
    print(f"tftp lock-step transfers: {pump.describe()}{hint}")
    from pxetui import debpackages

    print("Debian packages (what each adds):")
    for line in debpackages.describe_lines():
        print(f"  {line}")
    from pxetui.capture.filters import boot_filter, compile_filter

    try:
        compile_filter(boot_filter())
        print("libpcap: ok (the capture's BPF filter compiles)")
    except Exception as exc:  # scapy raises several types here
        ok = False
        print(f"libpcap: cannot compile BPF filters ({exc}); apt-get install libpcap0.8")
    problems = doctor_privileges(cfg)
    for p in problems:
        print(f"  {p}")
    found, read = doctor.findings(cfg)
    doctor.print_findings(found, read, cfg.interface)
    ok = ok and not any(f.severity == "error" for f in found)
    return exitcodes.OK if ok and not problems else exitcodes.FAILED


def doctor_privileges(cfg: Config) -> list[str]:
    """Print who the services run as; return what that user cannot reach (docs/SECURITY.md)."""
    from pxetui import privileges

    try:
        ident = privileges.service_identity(cfg)
    except privileges.PrivilegeError as exc:
        print("service user: none")
        return [str(exc)]
    if ident is None:
        print("service user: none (not root, or security.user = root): services keep the caller's privileges")
        return []
    print(f"service user: {ident.name} (uid {ident.uid}, gid {ident.gid}); services drop to it "
          "once their sockets are open")
    problems = privileges.code_problems(ident)
    for what, root in (("tftp.root", cfg.tftp_root), ("http.root", cfg.http_root)):
        if root.exists() and not privileges.readable_by(root, ident):
            problems.append(f"{what}: {privileges.how_to_grant(root, ident)}")
    up = cfg.tftp.uploads_dir
    if up and Path(up).exists() and not privileges.writable_by(up, ident):
        problems.append(f"tftp.uploads_dir: {up}: {ident.name} cannot write there; "
                        f"`chown {ident.name} {up}` (or `setfacl -m u:{ident.name}:rwx {up}`)")
    pcap_dir = Path(cfg.capture.pcap).parent if cfg.capture.pcap else None
    if pcap_dir is not None and pcap_dir.exists() and not privileges.writable_by(pcap_dir, ident):
        problems.append(f"capture.pcap: {ident.name} cannot write in {pcap_dir}, where the recording "
                        f"rotates; `chown {ident.name} {pcap_dir}` or record into the state directory")
    if cfg.db_path.exists():
        from pxetui.iso.library import connect, list_isos

        conn = connect(cfg)
        try:
            isos = list_isos(conn)
        finally:
            conn.close()
        for r in isos:
            if not privileges.readable_by(r.path, ident):
                problems.append(f"ISO {r.name}: {privileges.how_to_grant(r.path, ident)}")
    return problems


# -- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pxetui", description="A terminal control centre for network (PXE) booting.",
                                epilog=exitcodes.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"pxetui {__version__}")
    add_common(p)
    p.add_argument("--console", metavar="FILE", help="show this file as the VM console (the lab sets it)")
    p.add_argument("--keep-engine", action="store_true", help="leave the engine running when the UI quits")
    p.set_defaults(func=cmd_ui)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the engine headless in the foreground (logs to stderr)")
    add_common(s, sub=True)
    s.add_argument("-v", "--verbose", action="store_true", help="also log progress and ignored packets")
    s.add_argument("--log-file", metavar="FILE",
                   help="log here instead of stderr, rotated by size (log.max_bytes, log.backups) [log.file]")
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("doctor", help="check this machine: root, interfaces, boot loaders, libpcap, "
                       "firewall and what else breaks PXE on the interface; --self-test fetches from the engine")
    add_common(d, sub=True)
    doctor_options(d)
    d.set_defaults(func=cmd_doctor)

    for mod in COMMAND_MODULES:
        mod.register(sub)
    return p


def main(argv: list[str] | None = None, run_ui: RunUi | None = None) -> int:
    """The whole command line, its exit code (pxetui/exitcodes.py). `run_ui` is the UI that
    `pxetui` and `pxetui lab` open; the engine has none of its own (pxetui/uiport.py)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.run_ui = run_ui
    # Private by default: the state dir holds leases, seeds and passwords (docs/SECURITY.md).
    # Restored on return: tests call main() in their own process.
    umask = os.umask(0o077)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"pxetui: {problem}", file=sys.stderr)
        return exitcodes.USAGE
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    finally:
        os.umask(umask)
