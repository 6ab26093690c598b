"""FileSender: sendfile from an offset (an extent inside an .iso), short files, stalled peers."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pxetui.http.sendfile import FileSender, ShortFile, TooSlow
from pxetui.http.transfer import Transfer


@contextmanager
def link(path: Path, data: bytes) -> Iterator[tuple[socket.socket, socket.socket, int]]:
    """`data` written to `path` and opened (fd), and a non-blocking socket pair (a sends to b)."""
    path.write_bytes(data)
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield a, b, fd
    finally:
        os.close(fd)
        a.close()
        b.close()


async def drain(sock: socket.socket, n: int, pause: float = 0.0, chunk: int = 1 << 20) -> bytes:
    """Read up to `n` bytes, `chunk` at a time, sleeping `pause` seconds after each read."""
    loop = asyncio.get_running_loop()
    out = b""
    while len(out) < n:
        got = await loop.sock_recv(sock, chunk)
        if not got:
            break
        out += got
        if pause:
            await asyncio.sleep(pause)
    return out


async def test_sends_the_exact_extent(tmp_path: Path):
    data = os.urandom(3_000_000)
    with link(tmp_path / "image.iso", data) as (a, b, fd):
        xfer = Transfer(lambda e: None, "ip", None, "x")
        sender = FileSender(a.fileno(), fd, 12345, 2_000_000, xfer, 5)
        got, _ = await asyncio.gather(drain(b, 2_000_000), sender.start())
        sender.stop()
        assert got == data[12345:12345 + 2_000_000]
        assert sender.sent == 2_000_000
        assert xfer.done == 2_000_000  # every chunk reported to the transfer


async def test_file_shorter_than_promised_is_an_error(tmp_path: Path):
    with link(tmp_path / "k", b"x" * 1000) as (a, b, fd):
        sender = FileSender(a.fileno(), fd, 0, 5000, Transfer(lambda e: None, "ip", None, "k"), 5)
        with pytest.raises(ShortFile):
            await asyncio.gather(drain(b, 1000), sender.start())
        sender.stop()
        assert sender.sent == 1000


async def test_peer_that_reads_nothing_times_out(tmp_path: Path):
    with link(tmp_path / "big", os.urandom(8 << 20)) as (a, b, fd):
        sender = FileSender(a.fileno(), fd, 0, 8 << 20, Transfer(lambda e: None, "ip", None, "big"), 0.3)
        with pytest.raises(TimeoutError):
            await sender.start()
        sender.stop()
        assert 0 < sender.sent < 8 << 20


async def test_slow_peer_that_keeps_reading_outlives_the_timeout(tmp_path: Path):
    """The timeout counts from the last progress, not from the start: a transfer that takes
    longer than it, but never stalls that long, completes."""
    data = os.urandom(4 << 20)
    with link(tmp_path / "slow", data) as (a, b, fd):
        loop = asyncio.get_running_loop()
        sender = FileSender(a.fileno(), fd, 0, len(data), Transfer(lambda e: None, "ip", None, "slow"), 0.5)
        t0 = loop.time()
        got, _ = await asyncio.gather(drain(b, len(data), pause=0.02, chunk=64 << 10), sender.start())
        sender.stop()
        assert loop.time() - t0 > 0.5, "the transfer did not outlast the timeout: test proves nothing"
        assert got == data


async def test_reader_under_min_rate_is_cut_though_it_never_stalls(tmp_path: Path):
    """A slow reader (docs/SECURITY.md): reads a little all the time, so the idle timeout never
    fires, but moves less than min_rate over a window."""
    with link(tmp_path / "big", os.urandom(16 << 20)) as (a, b, fd):
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sender = FileSender(a.fileno(), fd, 0, 16 << 20, Transfer(lambda e: None, "ip", None, "big"), 30.0,
                            min_rate=4 << 20, window=0.5)
        reader = asyncio.ensure_future(drain(b, 16 << 20, pause=0.05, chunk=4096))
        try:
            with pytest.raises(TooSlow) as slow:
                await sender.start()
        finally:
            reader.cancel()
            sender.stop()
        assert 0 < slow.value.rate < 4 << 20 and 0 < sender.sent < 16 << 20


async def test_reader_over_min_rate_completes_across_windows(tmp_path: Path):
    data = os.urandom(4 << 20)
    with link(tmp_path / "ok", data) as (a, b, fd):
        loop = asyncio.get_running_loop()
        sender = FileSender(a.fileno(), fd, 0, len(data), Transfer(lambda e: None, "ip", None, "ok"), 30.0,
                            min_rate=1024, window=0.2)
        t0 = loop.time()
        got, _ = await asyncio.gather(drain(b, len(data), pause=0.02, chunk=64 << 10), sender.start())
        sender.stop()
        assert loop.time() - t0 > 0.4, "fewer than two rate windows passed: test proves nothing"
        assert got == data
