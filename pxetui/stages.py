"""The stages of one network boot, in order: what the tracker reports and the UI counts by.

A leaf module, so the UI can sort by stage without importing the tracker (and its SQLite).
"""

from __future__ import annotations

# An installer's stages (read from its log lines: pxetui/clientlogs/stages.py) come after the
# boot's and before "booted", the callback a finished install or a booted system makes.
INSTALL_STAGES = ("installer", "network", "seed", "partitioning", "installing", "installed")
STAGES = ("discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd", "rootfs",
          *INSTALL_STAGES, "booted")
# How far along a client at each stage is, for its progress bar.
PROGRESS = {"discover": 0.05, "offer": 0.1, "ack": 0.15, "bootloader": 0.3, "menu": 0.4,
            "kernel": 0.6, "initrd": 0.75, "rootfs": 0.8, "installer": 0.82, "network": 0.84,
            "seed": 0.86, "partitioning": 0.88, "installing": 0.92, "installed": 0.98, "booted": 1.0}
# Where a client's boot ends: nothing more is awaited (the tracker stops watching for "stuck").
FINAL = ("installed", "booted")
NEW = "new"  # the UI's name for a client with no stage yet
# Callback stages (`/callback/<token>/<stage>`) that mean the boot reached its end.
DONE_CALLBACKS = ("booted", "installed")


def rank(stage: str) -> int:
    """Sort key: a new client first, then boot order; anything else ("stuck", "failed", the
    tracker's verdicts) after the stages."""
    if stage == NEW:
        return 0
    return STAGES.index(stage) + 1 if stage in STAGES else len(STAGES) + 1
