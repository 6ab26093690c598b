"""The process that hosts one network service (the interface they implement: serviceapi.py).

`python -m pxetui.service NAME CONFIG_JSON_FILE` hosts one service in its own process: events
go to stdout as JSON lines, logs to stderr, SIGTERM/SIGINT stop it, SIGHUP asks it to reload
(menus, overrides) through `ctx.reload_requested`.

The supervisor runs `python -m pxetui.service NAME - --parent PID`: the config comes as the first
line on stdin (never a file an unprivileged service could rewrite for its next, root, start), and
the service stops when that pipe reaches EOF or the parent dies (PR_SET_PDEATHSIG), so no service
outlives its engine. `ctx.ready()` drops root for the service user (docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from pxetui import privileges
from pxetui.config import Config
from pxetui.emitter import LineEmitter
from pxetui.events import Event
from pxetui.serviceapi import Runner, ServiceContext, install_loop_policy


# Each imports only its own service: a DHCP process never loads the HTTP server or the ISO
# reader (smaller, and less code running as the service user).
def _dhcp() -> Runner:
    from pxetui.dhcp.service import run

    return run


def _tftp() -> Runner:
    from pxetui.tftp.service import run

    return run


def _http() -> Runner:
    from pxetui.http.service import run

    return run


def _capture() -> Runner:
    from pxetui.capture.service import run

    return run


def _dhcp6() -> Runner:
    from pxetui.dhcp6.service import run

    return run


def _logs() -> Runner:
    from pxetui.clientlogs.service import run

    return run


SERVICES: dict[str, Callable[[], Runner]] = {"dhcp": _dhcp, "tftp": _tftp, "http": _http, "capture": _capture,
                                            "logs": _logs, "dhcp6": _dhcp6}

log = logging.getLogger("pxetui.service")
# The longest the last events wait for the supervisor to read them when the service stops (it
# is killed 1.5 s after SIGTERM).
EMIT_GRACE = 0.5

# An orphaned or stopping service must be gone within this, whatever its cleanup does: the
# engine promises no service outlives it by more than 2 s (docs/SECURITY.md, process hygiene).
STOP_DEADLINE = 1.5


def load_runner(name: str) -> Runner:
    if name not in SERVICES:
        raise SystemExit(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
    return SERVICES[name]()


def stop_within(task: asyncio.Future[object], seconds: float = STOP_DEADLINE) -> None:
    """Cancel `task` (its cleanup runs) and end the process by SIGALRM if that takes too long."""
    signal.setitimer(signal.ITIMER_REAL, seconds)
    task.cancel()


def watch_pipe(loop: asyncio.AbstractEventLoop, fd: int, on_eof: Callable[[], None]) -> None:
    """Call `on_eof` when the supervisor's end of our stdin pipe closes (it died or let go)."""

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            on_eof()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)


async def host(name: str, config: Config, emit: Callable[[Event], None], parent: int | None = None) -> None:
    """Run one service until SIGTERM/SIGINT (or, supervised, EOF on stdin); SIGHUP sets
    reload_requested."""
    run = load_runner(name)
    ctx = ServiceContext(name=name, config=config, emit=emit, parent=parent)
    if isinstance(emit, LineEmitter):
        ctx.admit = emit.admit
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run(ctx))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_within, task)
    loop.add_signal_handler(signal.SIGHUP, ctx.reload_requested.set)
    if parent is not None:
        watch_pipe(loop, sys.stdin.fileno(), lambda: stop_within(task))
    try:
        await task
    except asyncio.CancelledError:
        pass


USAGE = "usage: python -m pxetui.service NAME CONFIG_JSON_FILE | python -m pxetui.service NAME - --parent PID"


def parse_args(argv: list[str]) -> tuple[str, str, int | None] | None:
    """(name, config file or '-', parent pid) from the command line, None when it is wrong."""
    parent = None
    if len(argv) == 4 and argv[2] == "--parent" and argv[3].isdigit():
        parent = int(argv[3])
        argv = argv[:2]
    if len(argv) != 2 or (argv[1] == "-") != (parent is not None):
        return None
    return argv[0], argv[1], parent


def main(argv: list[str] | None = None) -> int:
    # A fatal signal (SIGSEGV, SIGBUS, ...) leaves the Python stack on stderr, which the
    # supervisor logs: the restart message then names where the service died.
    faulthandler.enable()
    os.umask(0o077)  # what a service creates (leases, pcaps, uploads, built loaders) is its own
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args is None:
        print(USAGE, file=sys.stderr)
        return 2
    name, cfg_file, parent = args
    if parent is not None:
        # Armed before anything else; getppid() closes the race with a parent that died first.
        privileges.die_with_parent(signal.SIGTERM, parent)
    logging.basicConfig(level=logging.INFO, format=f"{name}: %(message)s", stream=sys.stderr)
    text = sys.stdin.buffer.readline().decode() if cfg_file == "-" else Path(cfg_file).read_text()
    config = Config.from_json(text)
    install_loop_policy()
    # Events own stdout (made non-blocking: pxetui/emitter.py); a stray print() goes to the log.
    emitter = LineEmitter(sys.stdout.fileno(), name, config.events.queue_max,
                          packet_rate=config.events.packet_rate)
    sys.stdout = sys.stderr

    async def _main() -> None:
        try:
            await host(name, config, emitter, parent)
        finally:
            emitter.close(EMIT_GRACE)

    try:
        asyncio.run(_main())
    except OSError as exc:  # bind failures, a failed privilege drop: say what, exit non-zero
        emitter.close(EMIT_GRACE)
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
