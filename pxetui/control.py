"""The control socket between an engine (supervisor) and its UIs.

A unix stream socket at `<state_dir>/control.sock`. Engine → client: one JSON event per line,
first a replay of the current state, then live events. Client → engine: one JSON command per
line, e.g. `{"cmd": "reload"}`, `{"cmd": "set_host", "mac": M, "boot_once": "local"}`,
`{"cmd": "forget", "mac": M}`, `{"cmd": "restart", "service": "tftp"}`, `{"cmd": "stop"}`.
A unix socket crosses network namespaces, so a UI in the root namespace can attach to a lab
engine running inside one, and an SSH drop does not stop a headless engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pxetui.events import Event, EventDecodeError, from_dict, loads

# 16 MiB lines: a replay event with a long client history must not break the stream.
LINE_LIMIT = 16 * 1024 * 1024


def socket_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / "control.sock"


def is_live(path: str | Path) -> bool:
    """True when an engine answers on the socket (a stale file from a crash is not live)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def check_peer(sock: socket.socket | None) -> None:
    """The engine at the other end runs as root or as us. The state directory belongs to the
    unprivileged service user (it writes the leases there), so a compromised service could put
    its own socket where control.sock was and feed a UI a made-up engine (docs/SECURITY.md)."""
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    if uid not in (0, os.getuid()):
        raise ConnectionRefusedError(
            f"the engine socket is served by uid {uid} (PID {pid}), neither root nor us: not pxetui's engine")


class ControlClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: str | Path, timeout: float = 5.0) -> ControlClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=LINE_LIMIT), timeout
        )
        try:
            check_peer(writer.get_extra_info("socket"))
        except ConnectionRefusedError:
            writer.close()
            raise
        return cls(reader, writer)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Event dicts until the engine goes away (then the iterator ends)."""
        while True:
            line = await self.reader.readline()
            if not line:
                return
            try:
                ev = loads(line)  # per event: the fast decoder, as the engine's relay uses
            except ValueError:
                continue
            if isinstance(ev, dict):
                yield ev

    async def typed_events(self) -> AsyncIterator[Event | dict[str, Any]]:
        """The same stream, each line rebuilt as its event class once, here (what the UI
        folds, pxetui/state.py). A line of a type this version does not know (a newer engine)
        comes as its dict: the fold logs it and changes nothing."""
        async for d in self.events():
            try:
                yield from_dict(d)
            except EventDecodeError:
                yield d

    async def send(self, cmd: dict[str, Any]) -> None:
        self.writer.write(json.dumps(cmd).encode() + b"\n")
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
