"""The stages of one network boot, in order: what the tracker reports and the UI counts by.

A leaf module, so the UI can sort by stage without importing the tracker (and its SQLite).
"""

from __future__ import annotations

STAGES = ("discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd", "rootfs", "booted")
# How far along a client at each stage is, for its progress bar.
PROGRESS = {"discover": 0.05, "offer": 0.1, "ack": 0.15, "bootloader": 0.3, "menu": 0.4,
            "kernel": 0.6, "initrd": 0.75, "rootfs": 0.9, "booted": 1.0}
NEW = "new"  # the UI's name for a client with no stage yet
# Callback stages (`/callback/<token>/<stage>`) that mean the boot reached its end.
DONE_CALLBACKS = ("booted", "installed")


def rank(stage: str) -> int:
    """Sort key: a new client first, then boot order; anything else ("stuck", "failed", the
    tracker's verdicts) after the stages."""
    if stage == NEW:
        return 0
    return STAGES.index(stage) + 1 if stage in STAGES else len(STAGES) + 1
