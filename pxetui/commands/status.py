"""`pxetui status [--json]`: what the running engine serves, counts and sees, for a person or a
script. It attaches to the control socket as a UI does, folds the replay into the engine's own
reducer (pxetui/state.py) up to ReplayDone, and reports the fold (pxetui/status.py); the JSON
is docs/status.schema.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pxetui import exitcodes
from pxetui.logfmt import printable_lines

if TYPE_CHECKING:  # imported where used: every `pxetui` command builds this parser
    from pxetui.state import EngineState

TIMEOUT = 30.0  # a replay of 10,000 clients takes a few seconds; a hung engine must not hang us


class NotRunning(Exception):
    """Nothing answers on the control socket."""


async def read_state(sock: Path, timeout: float = TIMEOUT) -> EngineState:
    """The engine's fold as a late UI rebuilds it: its replay, up to ReplayDone."""
    from pxetui.control import ControlClient
    from pxetui.events import ReplayDone
    from pxetui.state import EngineState

    try:
        client = await ControlClient.connect(sock, timeout=min(timeout, 5.0))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise NotRunning(f"no engine is running (nothing answers on {sock})") from exc
    state = EngineState(log_size=0, track_dirty=False)

    async def take() -> bool:
        async for ev in client.typed_events():
            if isinstance(ev, ReplayDone):
                return True
            state.apply(ev)
        return False

    try:
        done = await asyncio.wait_for(take(), timeout)
    except TimeoutError:
        raise OSError(f"the engine on {sock} sent no end of its replay within {timeout:.0f} s "
                      "(an engine older than `pxetui status`? restart it)") from None
    finally:
        await client.close()
    if not done:
        raise NotRunning(f"the engine on {sock} went away while it was being asked")
    return state


def main(args: argparse.Namespace) -> int:
    from pxetui.cliconfig import config_from
    from pxetui.control import socket_path
    from pxetui.status import status_of, text

    cfg = config_from(args, need_interface=False)
    sock = socket_path(cfg.state_dir)
    try:
        state = asyncio.run(read_state(sock))
    except NotRunning as exc:
        print(f"pxetui status: {exc}; start it with `pxetui serve`", file=sys.stderr)
        return exitcodes.NOT_RUNNING
    except PermissionError:
        print(f"pxetui status: {sock}: permission denied (the control socket is root's: run with sudo)",
              file=sys.stderr)
        return exitcodes.FAILED
    except OSError as exc:
        print(f"pxetui status: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    st = status_of(state, time.time())
    print(json.dumps(st, indent=2) if args.json else printable_lines(text(st)))  # alerts quote the wire
    return exitcodes.OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the running engine: services, DHCP mode, counters, clients",
                       description=__doc__)
    p.add_argument("--json", action="store_true", help="the JSON of docs/status.schema.json")
    p.add_argument("--state-dir", metavar="DIR", default=argparse.SUPPRESS,
                   help="where the engine's control.sock is [state_dir]")
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML config file")
    p.set_defaults(func=main)
