"""A UI-protocol reader attached to the engine's control socket through a boot storm.

    python bench/storm/watch.py SOCK --clients N [--settle 60] [--max-seconds 600]

It does what every UI does with the stream and nothing else: `ControlClient.typed_events()`
folded into `EngineState` (pxetui/state.py), replay then live. bench/storm/run.py starts it
before the storm and writes one line to its stdin when the storm is over; it then reads on
until the tracker has reported every storm client at its initrd stage (or `--settle` passes)
and prints one JSON object. A UI that falls behind is cut loose by the engine (EventsDropped
"ui", events.ui_queue_max): like the app, it attaches again after 2 s and folds the replay.
Printed: its own CPU over the storm (% of one core), the events folded, what
the tracker says of the storm's clients (pxetui.lab.storm.tracker_view: stage reached, stuck,
failed, diagnoses), the per-service EventsDropped counters and the limits hit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pxetui.control import ControlClient  # noqa: E402
from pxetui.lab.storm import client_macs, tracker_view  # noqa: E402
from pxetui.state import EngineState  # noqa: E402


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


RECONNECT_SECONDS = 2.0  # as the UI (screens/app.py): a UI the engine cut loose attaches again


class Watch:
    """The fold of one UI, rebuilt from the replay each time it attaches (as the app does)."""

    def __init__(self, sock: str) -> None:
        self.sock = sock
        self.state = EngineState()
        self.attaches = 0
        self.events = 0  # over every connection
        self.max_lag = 0.0  # seconds from an event's ts to its arrival here, worst seen
        self.client: ControlClient | None = None

    async def run(self) -> None:
        """Until cancelled; each time the engine closes the connection, attach again."""
        while True:
            self.client = await ControlClient.connect(self.sock)
            self.state = EngineState()  # the replay rebuilds everything
            self.attaches += 1
            live = False
            async for ev in self.client.typed_events():
                self.state.apply(ev)
                self.events += 1
                ts = getattr(ev, "ts", None)
                # the replay carries old events: only live ones say how late the stream runs
                if live and isinstance(ts, (int, float)):
                    self.max_lag = max(self.max_lag, time.time() - ts)
                live = live or self.attaches > 1 or self.events > 50
            await self.client.close()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


async def watch(sock: str, clients: int, settle: float, max_seconds: float) -> dict[str, Any]:
    macs = client_macs(clients)
    w = Watch(sock)
    loop = asyncio.get_running_loop()
    c0, t0 = cpu_seconds(), time.monotonic()
    reader = asyncio.create_task(w.run())
    while w.attaches == 0 and not reader.done():
        await asyncio.sleep(0.05)
    if reader.done():
        reader.result()  # could not attach: the error says why
    print("attached", flush=True)  # run.py starts the storm after this line
    # The storm is over when run.py writes a line (or closes our stdin).
    over = loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.wait([reader, over], timeout=max_seconds, return_when=asyncio.FIRST_COMPLETED)
    c1, t1 = cpu_seconds(), time.monotonic()
    # Events trail the bytes: the tracker reports once per tick (pxetui/tracker.py).
    deadline = time.monotonic() + settle
    while not reader.done() and time.monotonic() < deadline and not tracker_view(w.state, macs).all_booted:
        await asyncio.sleep(0.2)
    view = tracker_view(w.state, macs)
    reader.cancel()
    await w.close()
    state, wall = w.state, t1 - t0
    return {
        "cpu_s": round(c1 - c0, 2), "window_s": round(wall, 2),
        "cpu_pct": round((c1 - c0) / wall * 100, 1) if wall > 0 else 0.0,
        "events": w.events, "attaches": w.attaches, "max_lag_s": round(w.max_lag, 2),
        "settle_s": round(time.monotonic() - t1, 1),
        "tracker": {**asdict(view), "missing": len(view.missing), "stuck": len(view.stuck),
                    "failed": len(view.failed), "without_initrd": len(view.without_initrd),
                    "unfinished": len(view.unfinished),
                    "diagnosed": len(view.diagnosed),
                    "diagnosis_examples": sorted(set(view.diagnosed.values()))[:3],
                    "all_booted": view.all_booted},
        "dropped": dict(state.dropped),
        "dropped_types": {k: dict(v) for k, v in state.dropped_types.items()},
        "limits": {k: v.count for k, v in state.limits.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sock")
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--settle", type=float, default=60.0)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    a = ap.parse_args()
    out = asyncio.run(watch(a.sock, a.clients, min(a.settle, 120.0), min(a.max_seconds, 900.0)))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
