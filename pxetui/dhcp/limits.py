"""Token buckets for the DHCP server's rate limits (docs/SECURITY.md, "DHCP on a network that
is not ours").

A check is a dict lookup and a few float operations: it runs on every packet, and the server
holds thousands of DORA/s. The per-key table is bounded (least recently seen key forgotten
first), so a flood of spoofed MACs costs memory up to the cap and no more; a forgotten key
simply starts again with a full bucket.
"""

from __future__ import annotations

from collections import OrderedDict


class Bucket:
    """One token bucket: `rate` tokens a second, at most `burst` saved up."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.last = float(burst), now

    def take(self, now: float) -> bool:
        """Spend a token if there is one; False: over the limit."""
        elapsed = now - self.last
        self.last = now
        tokens = self.tokens
        if elapsed > 0:  # a clock that stepped back refills nothing
            tokens += elapsed * self.rate
            if tokens > self.burst:
                tokens = self.burst
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class KeyedBuckets:
    """A token bucket per key (a MAC), at most `size` keys remembered."""

    __slots__ = ("rate", "burst", "size", "buckets")

    def __init__(self, rate: float, burst: float, size: int) -> None:
        self.rate, self.burst, self.size = rate, float(burst), size
        self.buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last]

    def take(self, key: str, now: float) -> bool:
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) >= self.size:
                self.buckets.popitem(last=False)
            self.buckets[key] = [self.burst - 1.0, now]
            return True
        self.buckets.move_to_end(key)
        tokens, elapsed = b[0], now - b[1]
        b[1] = now
        if elapsed > 0:
            tokens += elapsed * self.rate
            if tokens > self.burst:
                tokens = self.burst
        if tokens < 1.0:
            b[0] = tokens
            return False
        b[0] = tokens - 1.0
        return True

    def __len__(self) -> int:
        return len(self.buckets)
