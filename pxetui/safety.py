"""Guards that keep DHCP off wires it must not touch.

Tests and the lab set PXETUI_NETNS_GUARD to the name of the network namespace they created;
a DHCP server or probe started with the guard set refuses to run anywhere else. That turns
"a test forgot `ip netns exec`" from an office-wide outage into a failed test.
"""

from __future__ import annotations

import os

GUARD_ENV = "PXETUI_NETNS_GUARD"


class UnsafeNetwork(RuntimeError):
    pass


def current_netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def check_netns_guard() -> None:
    """Raise UnsafeNetwork if the guard is set and we are not inside that namespace."""
    name = os.environ.get(GUARD_ENV)
    if not name:
        return
    try:
        want = os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        raise UnsafeNetwork(f"{GUARD_ENV}={name}: no such network namespace") from None
    if current_netns_inode() != want:
        raise UnsafeNetwork(
            f"{GUARD_ENV}={name}: refusing to run DHCP outside network namespace {name}"
        )
