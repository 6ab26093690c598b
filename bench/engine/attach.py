"""A UI attached to an engine's control socket for a bounded time; prints its own CPU.

    python bench/engine/attach.py SOCK --seconds 12 [--mode fold|app] [--size 120x40]

fold: what every UI does with the stream, and nothing else: `ControlClient.typed_events()`
(each line rebuilt as its event class) folded into `EngineState` (pxetui/state.py).
app:  the real Textual app (screens/app.py), headless, on the dashboard, attached the same way.

Either way it reads everything the engine sends (replay, then live) until `--seconds` pass,
then prints one JSON object: its CPU as % of one core over that window, the events folded,
and the per-service drop counters the dashboard shows (EventsDropped folded into
EngineState.dropped; screens/dashboard.py renders them as its "dropped:" line); with `--tail`
it keeps reading a while after the load and reports the counters again (a service reports
its drops once a second, ahead of its backlog, pxetui/emitter.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pxetui.control import ControlClient  # noqa: E402
from pxetui.state import EngineState  # noqa: E402


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def dropped_line(state: EngineState) -> str | None:
    from screens.dashboard import dropped_text  # the dashboard's own line, rendered from the fold

    text = dropped_text(state)
    return text.plain if text is not None else None


def report(mode: str, state: EngineState, cpu: float, wall: float, seen0: int,
           line: str | None) -> dict[str, Any]:
    return {"mode": mode, "cpu_pct": round(cpu / wall * 100, 1) if wall > 0 else 0.0,
            "window_s": round(wall, 2), "events": state.events_seen - seen0,
            "events_per_s": round(max(0, state.events_seen - seen0) / wall) if wall > 0 else 0,
            # the engine cut a UI that fell behind (EventsDropped service "ui"); the app
            # reconnected and its fold restarted from the replay
            "reconnected": state.events_seen < seen0 or "ui" in state.dropped,
            "clients": len(state.clients), "leases": len(state.leases), "dropped": dict(state.dropped),
            "dashboard_dropped_line": line}


async def fold(sock: str, seconds: float, tail: float) -> dict[str, Any]:
    state = EngineState()
    client = await ControlClient.connect(sock)
    deadline = time.monotonic() + seconds
    c0, t0, seen0 = cpu_seconds(), time.monotonic(), 0

    async def consume() -> None:
        async for ev in client.typed_events():
            state.apply(ev)

    task = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(asyncio.shield(task), max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        pass
    c1, t1 = cpu_seconds(), time.monotonic()
    out = report("fold", state, c1 - c0, t1 - t0, seen0, dropped_line(state))
    if tail > 0 and not task.done():
        try:
            await asyncio.wait_for(asyncio.shield(task), tail)
        except TimeoutError:
            pass
    task.cancel()
    await client.close()
    return {**out, "dropped_after": dict(state.dropped), "dashboard_dropped_line_after": dropped_line(state),
            "clients_after": len(state.clients), "leases_after": len(state.leases)}


async def app(sock: str, seconds: float, size: str, tail: float) -> dict[str, Any]:
    from screens.app import PxetuiApp

    w, h = (int(x) for x in size.split("x"))
    ui = PxetuiApp(source_factory=lambda: ControlClient.connect(sock), start_mode="dashboard")
    async with ui.run_test(size=(w, h)) as pilot:
        c0, t0, seen0 = cpu_seconds(), time.monotonic(), ui.state.events_seen
        await pilot.pause(seconds)
        c1, t1 = cpu_seconds(), time.monotonic()
        out = report("app", ui.state, c1 - c0, t1 - t0, seen0, dropped_line(ui.state))
        if tail > 0:
            await pilot.pause(tail)
        return {**out, "dropped_after": dict(ui.state.dropped),
                "dashboard_dropped_line_after": dropped_line(ui.state), "clients_after": len(ui.state.clients), "leases_after": len(ui.state.leases)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sock")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mode", choices=("fold", "app"), default="fold")
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--tail", type=float, default=0.0,
                    help="then keep reading this long (not in the CPU figure) and report the drops again")
    a = ap.parse_args()
    seconds = min(a.seconds, 300.0)  # bounded whatever it is asked
    tail = min(a.tail, 120.0)
    out = asyncio.run(fold(a.sock, seconds, tail) if a.mode == "fold" else app(a.sock, seconds, a.size, tail))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
