"""Lease store: does the cost of a lease grow with the number of leases? (It should not.)

Fills a fresh store (SQLite WAL on disk, in a temp dir) to several sizes and, at each size,
times offer + bind + commit of 2,000 more leases, one commit per lease (the worst case: the
server commits once per batch of packets) and 64 to a commit. Prints µs per lease.

    /tmp/venv/bin/python bench/dhcp/leases.py
"""

from __future__ import annotations

import ipaddress
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pxetui import store as dbstore  # noqa: E402
from pxetui.dhcp.leases import LeaseStore, Pool  # noqa: E402

SIZES = (1_000, 10_000, 100_000)
SAMPLE = 2_000


def mac(i: int) -> str:
    return i.to_bytes(6, "big").hex(":")


def fill(store: LeaseStore, pool: Pool, start: int, count: int, per_commit: int) -> float:
    now = time.time()
    t0 = time.perf_counter()
    for i in range(start, start + count):
        ip = store.offer(mac(i), pool, None, now)
        assert ip is not None, "pool too small for the benchmark"
        store.bind(mac(i), ip, 3600, None, now)
        if (i - start + 1) % per_commit == 0:
            store.commit()
    store.commit()
    return time.perf_counter() - t0


def main() -> int:
    net = ipaddress.IPv4Network("10.0.0.0/12")  # 1M addresses
    print(f"{'leases':>8} {'µs/lease, commit each':>22} {'µs/lease, 64 per commit':>24}")
    for size in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            conn = dbstore.connect(Path(tmp) / "leases.db")
            pool = Pool("bench", net, int(net.network_address) + 1, int(net.broadcast_address) - 1)
            store = LeaseStore(conn, [pool], {})
            fill(store, pool, 0, size, 5000)
            one = fill(store, pool, size, SAMPLE, 1)
            batch = fill(store, pool, size + SAMPLE, SAMPLE, 64)
            print(f"{size:8d} {one / SAMPLE * 1e6:22.1f} {batch / SAMPLE * 1e6:24.1f}", flush=True)
            conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
