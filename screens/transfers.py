"""Transfers: TFTP and HTTP downloads with progress, rate, outcome and negotiated options.

Laid out for 80 columns: who, which file, how far, how fast and how it ended fit the first
80 (a DataTable pads each column by one on both sides); the protocol, the negotiated options
and the retransmits follow to the right.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from pxetui.state import TransferInfo
from screens import fmt
from screens.base import TableScreen
from screens.widgets import Column

FILE_WIDTH = 17
CLIENT_WIDTH = 17  # a MAC whole; an IPv6 address (when the MAC is unknown) cut in the middle
COLUMNS = (
    Column("client", "Client", CLIENT_WIDTH), Column("file", "File", FILE_WIDTH),
    Column("progress", "Progress", 11), Column("rate", "Rate", 7),
    Column("status", "Status", 18), Column("proto", "Via", 4),
    Column("opts", "blk/win", 11), Column("rtx", "Resent", 6),
)
DIM = "dim"
MISS = "not found — normal"  # a per-machine config lookup that found nothing (pxetui.probes)


def tail(path: str, width: int) -> str:
    """A path cut from the left to `width`: the end tells lookups apart (pxelinux.cfg/0A4D0 ...)."""
    return path if len(path) <= width else "…" + path[-(width - 1):]


def options_text(t: TransferInfo) -> str:
    if t.protocol != "tftp":
        rng = t.options.get("range")
        return f"range {rng}" if rng else "-"
    blk = t.options.get("blksize", 512)
    win = t.options.get("windowsize", 1)
    return f"{blk}/{win}"


def progress_text(t: TransferInfo) -> str:
    """A bar and a percentage; the bytes so far when the size is unknown, never a bare '?'."""
    f = t.fraction
    if f is not None:
        return fmt.bar(f, 6) + " " + fmt.percent(f)
    return fmt.size(t.bytes_done) if t.bytes_done else "-"


def status_text(t: TransferInfo) -> Text:
    if t.expected_miss:
        return Text(MISS, DIM)
    if t.status == "failed":
        return Text(f"failed: {t.reason}", "bold red")
    if t.status == "done":
        return Text(f"done {fmt.duration(t.ts - t.started)}", "green")
    if t.status == "closed":  # no end was reported, but it is over: say why, quietly
        return Text(t.reason.removeprefix("the ") or "ended", DIM)
    return Text("running", "cyan")


class TransfersScreen(TableScreen):
    TABLE = "transfers"
    TITLE_TEXT = "Transfers"
    NAV_MODE = "transfers"
    COLUMNS = COLUMNS
    SORT = {"progress": lambda t: t.fraction or 0.0, "rate": lambda t: t.rate,
            "rtx": lambda t: t.retransmits, "status": lambda t: t.status}
    # Every live transfer changes every tick: 2 redraws a second and rows added/removed every
    # 2 s keep 100 live transfers under 20 % of a core (bench/ui).
    MIN_INTERVAL = 0.5
    STRUCTURAL = 2.0

    def row_of(self, t: TransferInfo) -> tuple[Any, ...]:
        cells = (
            t.mac or fmt.address(t.ip, CLIENT_WIDTH), tail(t.path, FILE_WIDTH), progress_text(t), fmt.rate(t.rate), status_text(t),
            t.protocol, options_text(t), str(t.retransmits),
        )
        if not t.expected_miss:
            return cells
        # an expected lookup is dimmed whole: it is how the loader works, not news
        return tuple(c if isinstance(c, Text) else Text(c, DIM) for c in cells)
