"""The engine's own /metrics listener (config [metrics], off by default).

The supervisor holds the one fold; the HTTP service is a separate, unprivileged process without
it, and handing it the counters would mean a channel from the engine into the process that
faces the LAN. So the supervisor answers scrapes itself, on a listener of its own that does as
little as a request can make it do (docs/SECURITY.md, "Metrics"): a peer outside
`metrics.allow` is closed before a byte is read, at most `metrics.max_connections` at once,
a request head of at most 4 KiB within 5 s, one request per connection, only `GET /metrics`.
Refusals are LimitHit events, once per interval per limit and address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable

from pxetui.config import MetricsConfig
from pxetui.events import Event, LimitReporter
from pxetui.metrics import CONTENT_TYPE

HEAD_MAX = 4096
HEAD_TIMEOUT = 5.0


def response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nCache-Control: no-store\r\n\r\n")
    return head.encode() + body


def answer(head: bytes, render: Callable[[], str]) -> bytes:
    """The response to one request head (bytes up to the blank line)."""
    try:
        method, target, _version = head.split(b"\r\n", 1)[0].decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        return response("400 Bad Request", b"bad request\n")
    if target.split("?", 1)[0] != "/metrics":
        return response("404 Not Found", b"only /metrics here\n")
    if method not in ("GET", "HEAD"):
        return response("405 Method Not Allowed", b"GET /metrics\n")
    full = response("200 OK", render().encode(), CONTENT_TYPE)
    return full.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" if method == "HEAD" else full


class MetricsServer:
    def __init__(self, cfg: MetricsConfig, render: Callable[[], str],
                 emit: Callable[[Event], None]) -> None:
        self.cfg, self.render = cfg, render
        self.allow = [ipaddress.IPv4Network(n, strict=False) for n in cfg.allow]
        self.limits = LimitReporter(emit)
        self.open = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen; OSError (address not ours, port taken) says which to the caller."""
        self.server = await asyncio.start_server(self._conn, self.cfg.address, self.cfg.port,
                                                 family=socket.AF_INET, reuse_address=True,
                                                 limit=HEAD_MAX)  # readuntil's bound

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def allowed(self, ip: str) -> bool:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.allow)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ip = str((writer.get_extra_info("peername") or ("?",))[0])
        try:
            if not self.allowed(ip):
                self.limits.hit("metrics.allow", ip, f"{ip} is not in metrics.allow: closed")
                return
            if self.open >= self.cfg.max_connections:
                self.limits.hit("metrics.max_connections", ip,
                                f"{self.open} scrapes at once: {ip} closed")
                return
            self.open += 1
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
                writer.write(answer(head, self.render))
                await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT)
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
                writer.write(response("400 Bad Request", b"bad or oversized request head\n"))
            finally:
                self.open -= 1
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
