"""The narrow interface every network service implements.

A service is a module with ``async def run(ctx: ServiceContext) -> None`` that serves until it
is cancelled. It knows nothing of Textual or of the supervisor: it gets its config and an
`emit` callable. The process that hosts one is pxetui/service.py (`python -m pxetui.service`);
this module is what the services import, so that host and services do not import each other.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pxetui import privileges
from pxetui.config import Config
from pxetui.events import Event, Log, ServiceState, admit_all


@dataclass
class ServiceContext:
    name: str
    config: Config
    emit: Callable[[Event], None]
    reload_requested: asyncio.Event = field(default_factory=asyncio.Event)
    parent: int | None = None  # the supervisor's pid, when supervised
    identity: privileges.Identity | None = None  # who the service runs as once ready
    # Whether to make a per-packet event now (events.packet_rate; pxetui/emitter.py admit):
    # ask before making one. Hosted by pxetui/service.py, the emitter's; else always.
    admit: Callable[[str, str | None], bool] = admit_all

    def ready(self, ports: list[int]) -> None:
        """Call once, when everything that needs root is open (sockets, capture, SO_RCVBUFFORCE):
        the process drops to the service user for good, then the supervisor shows it running."""
        if self.identity is None:
            self.identity = privileges.drop_for_service(self.config, self.name, self.parent)
        self.emit(ServiceState(service=self.name, state="running", pid=os.getpid(), ports=ports))

    def log(self, message: str, level: str = "info", **kw: object) -> None:
        self.emit(Log(service=self.name, level_name=level, message=message, **kw))  # type: ignore[arg-type]


Runner = Callable[[ServiceContext], Awaitable[None]]


def install_loop_policy() -> None:
    try:
        import uvloop  # measured 1.9x TFTP throughput, 2.6x less CPU (docs/FIELD-NOTES.md)

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
