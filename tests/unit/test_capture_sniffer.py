"""RawSniffer's reading rhythm (pxetui/capture/sniffer.py HOLD): a wake-up that empties the
socket leaves it unread for `hold`, so a storm's frames are read in batches; detach() ends it.

A UDP socket stands in for the AF_PACKET one: read_ready only needs recvfrom and a fileno."""

from __future__ import annotations

import asyncio
import socket

from pxetui.capture.sniffer import RawSniffer


def test_frames_arriving_while_the_socket_rests_are_read_together_and_detach_stops_it() -> None:
    async def main() -> None:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        sn = RawSniffer("lo", "udp", hold=0.2)
        sn.sock = rx
        batches: list[list[bytes]] = []
        calls = 0
        real = sn.read_ready

        def counting(handler, budget: int = 1024) -> int:  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            batches.append([])
            return real(handler, budget)

        sn.read_ready = counting  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        sn.attach(loop, lambda data, ts: batches[-1].append(data))
        try:
            tx.sendto(b"first", rx.getsockname())
            for _ in range(100):  # bounded: 2 s
                await asyncio.sleep(0.02)
                if [b"first"] in batches:
                    break
            for name in (b"a", b"b", b"c"):  # apart, but all within the hold
                tx.sendto(name, rx.getsockname())
                await asyncio.sleep(0.03)
            await asyncio.sleep(0.5)
            assert [b for b in batches if b] == [[b"first"], [b"a", b"b", b"c"]], batches
            assert sn.received == 4
            # Detached while resting: never read again, nothing left scheduled.
            tx.sendto(b"d", rx.getsockname())
            await asyncio.sleep(0.05)
            before = calls
            sn.detach(loop)
            await asyncio.sleep(0.4)
            assert calls == before and sn._resume is None
            assert all(b"d" not in b for b in batches[before:])
        finally:
            sn.detach(loop)
            rx.close()
            tx.close()

    asyncio.run(main())
