"""Plain formatting helpers for the screens: sizes, rates, times, bars. No widgets here."""

from __future__ import annotations

import os
import time

from pxetui import archtypes
from pxetui.logfmt import human_size

BAR_EIGHTHS = " ▏▎▍▌▋▊▉█"


def size(n: float | None) -> str:
    return human_size(n, compact=True)


def rate(bps: float | None) -> str:
    """Three significant digits at most ("586K/s", "11.9M/s"): seven columns hold any rate."""
    if not bps:
        return "-"
    n, unit = float(bps), "B"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            break
        n /= 1024
    if unit == "B":
        return f"{n:.0f}B/s"
    return f"{n:.1f}{unit}/s" if n < 10 else f"{n:.0f}{unit}/s"


def clock(ts: float | None) -> str:
    """Wall time of an event, local time (tests pin TZ=UTC)."""
    if not ts:
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(ts))


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def bar(fraction: float | None, width: int) -> str:
    """A progress bar drawn with eighth blocks; '?' when the total is unknown."""
    if fraction is None:
        return "?".center(width)
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (BAR_EIGHTHS[part] if part and full < width else "")
    return text.ljust(width)


# The Clients table's Stage column is 10 wide, and the detail screen's timeline beside the
# logs is narrow: every stage name fits but the installer's "partitioning" (pxetui/stages.py).
STAGE_LABELS = {"partitioning": "partition"}


def stage(name: str) -> str:
    return STAGE_LABELS.get(name, name) if name else "new"


def percent(fraction: float | None) -> str:
    return "?" if fraction is None else f"{fraction * 100:3.0f}%"


def firmware(name: str, arch: int | None) -> str:
    """The tracker's firmware name, else option 93's short name (pxetui.archtypes)."""
    return name or archtypes.name(arch) or "?"


def address(ip: str | None, width: int) -> str:
    """An address cut to `width` from the middle: an IPv6 address (up to 39 characters) keeps
    its start (the prefix) and more of its end (the host part, what tells clients of one /64
    apart). IPv4 addresses and short IPv6 ones ("fd99::1000") are whole."""
    if not ip:
        return "-"
    if len(ip) <= width:
        return ip
    head = (width - 1) // 3
    return ip[:head] + "…" + ip[len(ip) - (width - 1 - head):]


def short_path(path: str) -> str:
    """Relative to the working directory when below it (narrow columns), else as given."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
