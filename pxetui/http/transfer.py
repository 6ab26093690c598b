"""Events for one HTTP request: started, progress (at most 4 a second), finished or failed.

Every TransferStarted is followed by exactly one TransferFinished or TransferFailed with the
same transfer_id; requests refused before a path is known get only a TransferFailed.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from typing import Any

from pxetui.events import Event, TransferFailed, TransferFinished, TransferProgress, TransferStarted

PROGRESS_INTERVAL = 0.25  # seconds: the UI refreshes at most 4 times a second
_ids = itertools.count(1)


def new_id() -> str:
    return f"http-{os.getpid():x}-{next(_ids)}"


class Transfer:
    def __init__(self, emit: Callable[[Event], None], ip: str | None, mac: str | None,
                 path: str, size: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.emit = emit
        self.id = new_id()
        self.ip, self.mac, self.path, self.size = ip, mac, path, size
        self.options = options or {}
        self.done = 0
        self.t0 = time.monotonic()
        self._next_progress = self.t0 + PROGRESS_INTERVAL
        self._ended = False

    def started(self) -> None:
        self.emit(TransferStarted(transfer_id=self.id, protocol="http", path=self.path,
                                  size=self.size, options=self.options, ip=self.ip, mac=self.mac))

    def progress(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now < self._next_progress:
            return
        self._next_progress = now + PROGRESS_INTERVAL
        self.emit(TransferProgress(transfer_id=self.id, protocol="http", bytes_done=done,
                                   size=self.size, rate=self._rate(now), ip=self.ip, mac=self.mac))

    def finished(self, status: int) -> None:
        if self._ended:
            return
        self._ended = True
        now = time.monotonic()
        self.emit(TransferFinished(transfer_id=self.id, protocol="http", path=self.path,
                                   bytes_done=self.done, seconds=round(now - self.t0, 6),
                                   rate=self._rate(now), status=status, ip=self.ip, mac=self.mac))

    def failed(self, reason: str, status: int | None) -> None:
        if self._ended:
            return
        self._ended = True
        self.emit(TransferFailed(transfer_id=self.id, protocol="http", path=self.path,
                                 reason=reason, bytes_done=self.done, status=status,
                                 ip=self.ip, mac=self.mac))

    def _rate(self, now: float) -> float:
        return round(self.done / max(now - self.t0, 1e-6), 1)
