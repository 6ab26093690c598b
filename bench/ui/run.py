"""UI benchmark: 1,000 clients and 100 live transfers; the UI process's CPU, per screen.

    python bench/ui/run.py [--clients 1000] [--transfers 100] [--window 10] [--size 120x40]

Starts the synthetic engine (`feed.py`, its own process) on a unix socket, runs the real app
headless in this process attached through `pxetui.control.ControlClient`, and measures this
process's CPU with psutil over a window on each screen. Also reports the redraw time per tick
and the event-loop lag (how late a 50 ms timer fires): the UI's responsiveness. Goal: < 20 %
of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.ui.feed import running  # noqa: E402
from pxetui.control import ControlClient  # noqa: E402
from screens.app import PxetuiApp  # noqa: E402

SCREENS = tuple(os.environ.get("BENCH_SCREENS", "clients,transfers,dashboard,leases,logs").split(","))


class TimedApp(PxetuiApp):
    """The app, with each redraw timed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.flush_ms: list[float] = []

    def flush(self) -> None:
        t = time.perf_counter()
        super().flush()
        self.flush_ms.append((time.perf_counter() - t) * 1000)


async def lag_probe(samples: list[float], stop: asyncio.Event, period: float = 0.05) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(period)
        samples.append(max(0.0, (time.perf_counter() - t - period) * 1000))


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def bench(args: argparse.Namespace, sock: str) -> list[dict]:
    w, h = (int(x) for x in args.size.split("x"))
    app = TimedApp(source_factory=lambda: ControlClient.connect(sock), start_mode="dashboard")
    me = psutil.Process()
    results = []
    async with app.run_test(size=(w, h)) as pilot:
        deadline = time.monotonic() + 30
        while len(app.state.clients) < args.clients and time.monotonic() < deadline:
            await pilot.pause(0.2)
        if len(app.state.clients) < args.clients:
            raise SystemExit(f"replay incomplete: {len(app.state.clients)} clients after 30 s")
        for mode in SCREENS:
            app.action_go(mode)
            await pilot.pause(args.warmup)
            app.flush_ms.clear()
            lags: list[float] = []
            stop = asyncio.Event()
            probe = asyncio.create_task(lag_probe(lags, stop))
            seen0, redraws0 = app.state.events_seen, app.refreshes
            c0, t0 = me.cpu_times(), time.monotonic()
            await asyncio.sleep(args.window)
            c1, t1 = me.cpu_times(), time.monotonic()
            stop.set()
            await probe
            cpu = (c1.user - c0.user + c1.system - c0.system) / (t1 - t0) * 100
            results.append({
                "screen": mode, "cpu_pct": cpu,
                "events_per_s": (app.state.events_seen - seen0) / (t1 - t0),
                "redraws_per_s": (app.refreshes - redraws0) / (t1 - t0),
                "redraw_ms_p50": statistics.median(app.flush_ms) if app.flush_ms else 0.0,
                "redraw_ms_max": max(app.flush_ms, default=0.0),
                "lag_ms_p99": pct(lags, 0.99),
            })
        # Responsiveness to keys with everything live: move the cursor on the clients table.
        app.action_go("clients")
        await pilot.pause(0.5)
        key_ms = []
        for _ in range(20):
            t = time.perf_counter()
            await pilot.press("down")
            key_ms.append((time.perf_counter() - t) * 1000)
        results.append({"screen": "keypress(down) on clients", "key_ms_p50": statistics.median(key_ms),
                         "key_ms_max": max(key_ms)})
    return results


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--transfers", type=int, default=100)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--size", default="120x40")
    args = p.parse_args()
    total = (args.window + args.warmup) * len(SCREENS) + 60
    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "control.sock")
        with running(sock, args.clients, args.transfers, total):
            results = asyncio.run(bench(args, sock))
    print(f"UI benchmark: {args.clients} clients, {args.transfers} live transfers, "
          f"{args.size}, {args.window:.0f} s per screen, CPU of the UI process (goal < 20 %)")
    for r in results:
        if "cpu_pct" in r:
            print(f"  {r['screen']:<10} cpu {r['cpu_pct']:5.1f} %  events {r['events_per_s']:6.0f}/s  "
                  f"redraws {r['redraws_per_s']:.1f}/s  tick p50 {r['redraw_ms_p50']:.1f} ms "
                  f"max {r['redraw_ms_max']:.1f} ms  loop lag p99 {r['lag_ms_p99']:.1f} ms")
        else:
            print(f"  {r['screen']}: p50 {r['key_ms_p50']:.1f} ms  max {r['key_ms_max']:.1f} ms")
    worst = max(r["cpu_pct"] for r in results if "cpu_pct" in r)
    print(f"  worst screen: {worst:.1f} % of one core -> {'OK' if worst < 20 else 'OVER GOAL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
