"""Event sources the app can consume: anything with `events()` (an async iterator of event
dicts) and `async send(cmd)`. The real one is `pxetui.control.ControlClient`; tests and the
UI benchmark use `MemorySource`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from pxetui.control import socket_path
from pxetui.events import LabVm


class EventSource(Protocol):
    def events(self) -> AsyncIterator[dict[str, Any]]: ...

    async def send(self, cmd: dict[str, Any]) -> None: ...


SourceFactory = Callable[[], "EventSource | Awaitable[EventSource]"]


class LabControl(Protocol):
    """The lab's VM under `pxetui lab` (pxetui.lab.keeper.Keeper): its state, polled, and
    booting it again. Called from the UI; `boot` blocks briefly (it starts QEMU)."""

    def status(self) -> LabVm: ...

    def boot(self) -> LabVm: ...


async def open_source(factory: SourceFactory) -> EventSource:
    made = factory()
    if inspect.isawaitable(made):
        return await made
    return made


def state_dir_of(source: object) -> str | None:
    """The engine's state directory, read off a control-socket connection: the socket lives at
    `pxetui.control.socket_path(state_dir)`, and a unix socket's peer name is its path."""
    writer = getattr(source, "writer", None)
    if writer is None:
        return None
    peer = writer.get_extra_info("peername")
    if not isinstance(peer, str) or not peer:
        return None
    path = Path(peer)
    return str(path.parent) if path == socket_path(path.parent) else None


class MemorySource:
    """Replays `initial`, then yields whatever is `push()`ed until `finish()`; records commands."""

    def __init__(self, initial: Iterable[dict[str, Any]] = (), *, end_after_initial: bool = False,
                 fail_with: str | None = None) -> None:
        self.initial = list(initial)
        self.end_after_initial = end_after_initial
        self.fail_with = fail_with
        self.sent: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any] | None] | None = None
        self._early: list[dict[str, Any] | None] = []

    def _q(self) -> asyncio.Queue[dict[str, Any] | None]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            for ev in self._early:
                self._queue.put_nowait(ev)
            self._early.clear()
        return self._queue

    def push(self, ev: dict[str, Any]) -> None:
        if self._queue is None:
            self._early.append(ev)
        else:
            self._queue.put_nowait(ev)

    def finish(self) -> None:
        self.push(None)  # type: ignore[arg-type]

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        for ev in self.initial:
            yield ev
        if self.fail_with:
            raise ConnectionResetError(self.fail_with)
        if self.end_after_initial:
            return
        q = self._q()
        while True:
            ev = await q.get()
            if ev is None:
                return
            yield ev

    async def send(self, cmd: dict[str, Any]) -> None:
        self.sent.append(cmd)
