"""At most N a second, counted in whole seconds of a clock: the budget behind
events.packet_rate (pxetui/emitter.py), log.rate (pxetui/logfmt.py) and `pxetui watch --rate`.
A window rather than a token bucket (pxetui/dhcp/limits.py): what is held back is reported per
second, so the budget and the report count the same seconds."""

from __future__ import annotations

import time
from collections.abc import Callable


class PerSecond:
    __slots__ = ("rate", "clock", "second", "used")

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.clock = rate, clock
        self.second, self.used = -1, 0  # the second being counted, and how much of it is used

    def take(self) -> bool:
        """One more in this second, if the budget has room (always, with rate 0)."""
        if not self.rate:
            return True
        second = int(self.clock())
        if second != self.second:
            self.second, self.used = second, 0
        if self.used < self.rate:
            self.used += 1
            return True
        return False

    def new_second(self) -> bool:
        """Whether the clock is past the second being counted: what it held back can be said."""
        return int(self.clock()) != self.second
