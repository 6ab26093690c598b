"""FileSender: sendfile from an offset (an extent inside an .iso), short files, stalled peers."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from pxetui.http.sendfile import FileSender, ShortFile
from pxetui.http.transfer import Transfer


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def drain(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    out = b""
    while len(out) < n:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            break
        out += chunk
    return out


async def test_sends_the_exact_extent(tmp_path: Path):
    data = os.urandom(3_000_000)
    f = tmp_path / "image.iso"
    f.write_bytes(data)
    a, b = pair()
    fd = os.open(f, os.O_RDONLY)
    events: list = []
    try:
        sender = FileSender(a.fileno(), fd, 12345, 2_000_000, Transfer(events.append, "ip", None, "x"), 5)
        got, _ = await asyncio.gather(drain(b, 2_000_000), sender.start())
        sender.stop()
        assert got == data[12345:12345 + 2_000_000]
        assert sender.sent == 2_000_000
    finally:
        os.close(fd)
        a.close()
        b.close()


async def test_file_shorter_than_promised_is_an_error(tmp_path: Path):
    f = tmp_path / "k"
    f.write_bytes(b"x" * 1000)
    a, b = pair()
    fd = os.open(f, os.O_RDONLY)
    try:
        sender = FileSender(a.fileno(), fd, 0, 5000, Transfer(lambda e: None, "ip", None, "k"), 5)
        with pytest.raises(ShortFile):
            await asyncio.gather(drain(b, 1000), sender.start())
        sender.stop()
        assert sender.sent == 1000
    finally:
        os.close(fd)
        a.close()
        b.close()


async def test_peer_that_reads_nothing_times_out(tmp_path: Path):
    f = tmp_path / "big"
    f.write_bytes(os.urandom(8 << 20))
    a, b = pair()
    fd = os.open(f, os.O_RDONLY)
    try:
        sender = FileSender(a.fileno(), fd, 0, 8 << 20, Transfer(lambda e: None, "ip", None, "big"), 0.3)
        with pytest.raises(TimeoutError):
            await sender.start()
        sender.stop()
        assert 0 < sender.sent < 8 << 20
    finally:
        os.close(fd)
        a.close()
        b.close()
