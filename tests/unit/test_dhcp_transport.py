"""The DHCP service's Transport: an OFFER goes out at once, an ACK only once its lease is
committed, and the loop never waits for the commit (pxetui/dhcp/service.py, committer.py)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from pathlib import Path

from netns import wait_for
from test_dhcp_server import Rig, client_packet, mac_bytes

from pxetui import store as dbstore
from pxetui.dhcp import options as o
from pxetui.dhcp.codec import build, parse
from pxetui.dhcp.committer import GroupCommitter
from pxetui.dhcp.transport import Transport
from pxetui.serviceapi import ServiceContext

GIADDR = "10.99.0.2"


class FakeSock:
    """What Transport calls of a socket: datagrams to read, and what it sent (from any thread)."""

    def __init__(self, datagrams: list[bytes]) -> None:
        self.inbox = list(datagrams)
        self.sent: list[bytes] = []
        self.lock = threading.Lock()

    def fileno(self) -> int:
        return -1  # never registered with the loop: the tests call readable() themselves

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.pop(0), (GIADDR, 67)

    def sendto(self, data: bytes, dest: tuple[str, int]) -> int:
        with self.lock:
            self.sent.append(data)
        return len(data)

    def types(self) -> list[int | None]:
        with self.lock:
            return [o.msg_type(parse(d)) for d in self.sent]



def test_an_offer_leaves_at_once_and_an_ack_only_after_its_lease_is_on_disk(tmp_path: Path) -> None:
    async def main() -> None:
        rig = Rig(tmp_path)
        gate = threading.Event()
        db = rig.cfg.db_path

        def slow_disk() -> sqlite3.Connection:
            gate.wait(10)  # the disk is busy: nothing can be committed yet
            return dbstore.connect(db)

        errors: list[str] = []
        committer = GroupCommitter(slow_disk, errors.append)
        ctx = ServiceContext(name="dhcp", config=rig.cfg, emit=rig.events.append)
        gi = GIADDR
        first = FakeSock([build(client_packet(o.DISCOVER, mac_bytes(1), giaddr=gi))])
        t = Transport(ctx, rig.server.handle, rig.store, first, 67, committer, hold=0)  # type: ignore[arg-type]
        t.readable()
        (offer,) = [parse(d) for d in first.sent]
        assert o.msg_type(offer) == o.OFFER
        # The client takes it; another client's DISCOVER arrives in the same batch.
        second = FakeSock([
            build(client_packet(o.REQUEST, mac_bytes(1), giaddr=gi, o54=offer.options[o.SERVER_ID],
                                o50=offer.yiaddr)),
            build(client_packet(o.DISCOVER, mac_bytes(2), giaddr=gi)),
        ])
        t.sock = second  # type: ignore[assignment]
        t0 = time.monotonic()
        t.readable()
        assert time.monotonic() - t0 < 1.0  # the loop did not wait for the disk (held 10 s)
        assert second.types() == [o.OFFER]  # the other client's OFFER went out at once ...
        row = dbstore.connect(db).execute("SELECT count(*) FROM dhcp_leases WHERE state='bound'").fetchone()
        assert row[0] == 0  # ... the ACK waits: its lease is not on disk yet
        gate.set()
        wait_for(lambda: len(second.sent) == 2)
        assert second.types() == [o.OFFER, o.ACK]
        row = dbstore.connect(db).execute("SELECT mac FROM dhcp_leases WHERE state='bound'").fetchone()
        assert row[0] == "52:54:00:aa:00:01"
        committer.close()
        assert errors == []

    asyncio.run(main())


class Recorder:
    """A server and lease store stand-in: which datagrams each wake-up handled (no replies,
    no leases)."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = [[]]
        self.pending: list[object] = []

    def handle(self, data: bytes, src: tuple[str, int]) -> list[object]:
        self.calls[-1].append(data)
        return []

    def take_pending(self) -> list[object]:
        self.calls.append([])  # readable() asks once per wake-up, after its batch
        return []


def test_what_arrives_while_the_socket_rests_is_handled_as_one_batch(tmp_path: Path) -> None:
    # Interrupt moderation (service.HOLD): a wake-up that empties the socket leaves it unread
    # for `hold`, so datagrams arriving meanwhile make one batch, not one wake-up each.
    async def main() -> None:
        rig = Rig(tmp_path)
        ctx = ServiceContext(name="dhcp", config=rig.cfg, emit=rig.events.append)
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        server = Recorder()
        committer = GroupCommitter(lambda: dbstore.connect(rig.cfg.db_path), lambda m: None)
        t = Transport(ctx, server.handle, server, rx, 67, committer, hold=0.2)  # type: ignore[arg-type]
        t.start()
        try:
            tx.sendto(b"first", rx.getsockname())
            for _ in range(100):  # bounded: 2 s
                await asyncio.sleep(0.02)
                if any(b"first" in c for c in server.calls):
                    break
            for name in (b"a", b"b", b"c"):  # apart, but all within the hold that wake-up started
                tx.sendto(name, rx.getsockname())
                await asyncio.sleep(0.03)
            await asyncio.sleep(0.6)
            handled = [c for c in server.calls if c]
            assert handled == [[b"first"], [b"a", b"b", b"c"]], server.calls
        finally:
            t.stop()
            committer.close()
            rx.close()
            tx.close()

    asyncio.run(main())
