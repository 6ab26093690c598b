"""The C pump's bounded pool (pump.py): at most `size` threads, no queueing, threads reused."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

from netns import require

from pxetui.tftp import pump

require(pump._pump is not None, "pxetui.tftp._pump is not built (setup.py's extension)")


def pumps_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("tftp-pump"))


async def test_at_most_size_threads_and_a_full_pool_refuses(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(os.urandom(200_000))
    fd = os.open(path, os.O_RDONLY)
    outcomes: list[pump.Outcome] = []
    done = asyncio.Event()
    socks: list[socket.socket] = []

    def finished(out: pump.Outcome) -> None:
        outcomes.append(out)
        done.set()

    def new_pump() -> pump.Pump:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never ACKs
        client.bind(("127.0.0.1", 0))
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        srv.connect(client.getsockname())
        socks.extend((client, srv))
        return pump.Pump(srv, fd, 0, 200_000, 1428, 0.05, 0.5, 30.0, finished)

    pool = pump.PumpPool(2)
    before = pumps_threads()
    try:
        first = [new_pump() for _ in range(2)]
        assert all(p.start(pool) for p in first)
        extra = new_pump()
        assert not extra.start(pool) and not extra.running  # full: the caller serves it in Python
        assert pool.busy == 2 and pumps_threads() - before == 2
        for p in first:
            p.cancel()
        while len(outcomes) < 2:
            done.clear()
            await asyncio.wait_for(done.wait(), 5)
        assert [o.code for o in outcomes] == [pump.CANCELLED] * 2 and pool.busy == 0
        again = new_pump()
        assert again.start(pool)  # a kept thread takes it: no new one
        assert pumps_threads() - before == 2
        again.cancel()
        while len(outcomes) < 3:
            done.clear()
            await asyncio.wait_for(done.wait(), 5)
    finally:
        pool.close(2)
        for s in socks:
            s.close()
        os.close(fd)
    assert pumps_threads() == before


def test_a_pool_of_zero_never_starts_a_thread():
    pool = pump.PumpPool(0)
    assert not pool.submit(object()) and pool.threads == []  # type: ignore[arg-type]
