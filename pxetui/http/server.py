"""asyncio HTTP/1.1 server: keep-alive, GET and HEAD, single byte ranges, conditional requests,
and zero-copy sendfile from files on disk and from byte extents inside .iso images.

Raw non-blocking sockets on the loop (sock_accept / sock_recv, and os.sendfile driven by
add_writer) rather than streams: uvloop implements neither loop.sendfile for its transports nor
loop.sock_sendfile, and the stream fallback copies every byte through Python.

Limits (docs/SECURITY.md): connections in all and per client address (503 past either), a
whole request head within header_timeout (slowloris), a response that moves fewer than
min_rate bytes/s over min_rate_window (a slow reader) or nothing for send_timeout is cut. Each
refusal or cut is a LimitHit, once per interval per limit and client. The listening socket is
bound to the interface (SO_BINDTODEVICE); accepted connections inherit it. With ipv6.enabled a
second listening socket on [server_ip6] feeds the same `serve` (docs/IPV6.md "TFTP and HTTP"):
the limits count both families together, per client address as the peer sends it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pxetui import __version__
from pxetui.events import Event, LimitReporter
from pxetui.files import Forbidden, NotFound, Source
from pxetui.http.parser import (
    HttpError,
    Request,
    body_length,
    head_end,
    parse_head,
    skip_empty_lines,
)
from pxetui.http.routes import BadRequest, Routed, Router, Unavailable
from pxetui.http.semantics import (
    Unsatisfiable,
    byte_range,
    content_type,
    etag,
    http_date,
    if_range_allows,
    last_modified,
    not_modified,
    precondition_failed,
)
from pxetui.http.sendfile import FileSender, ShortFile, TooSlow
from pxetui.http.transfer import Transfer

SERVER = f"pxetui/{__version__}"
RECV_SIZE = 65536
MAX_DISCARD = 65536  # request body bytes we read and drop before refusing with 413
LINGER = 1.0  # seconds to drain a refused client so our error is not lost to a RST
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a RST

REASONS = {
    200: "OK", 206: "Partial Content", 304: "Not Modified", 400: "Bad Request",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    412: "Precondition Failed",
    413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}

LogFn = Callable[[str, str], None]


@dataclass
class Limits:
    """As the http.* config keys of the same names."""

    max_connections: int = 512
    header_timeout: float = 10.0  # whole request head, from accept or from its first byte
    idle_timeout: float = 30.0  # keep-alive wait for the next request
    send_timeout: float = 60.0  # a client that reads nothing for this long is dropped
    max_per_client: int = 16  # connections at once from one address
    min_rate: int = 1024  # bytes/s of a file response, averaged over min_rate_window (0: off)
    min_rate_window: float = 30.0


class HttpServer:
    def __init__(self, router: Router, emit: Callable[[Event], None], limits: Limits,
                 log: LogFn | None = None) -> None:
        self.router, self.emit, self.limits = router, emit, limits
        self.log: LogFn = log or (lambda msg, level: None)
        self.active = 0
        self.per_client: dict[str, int] = {}  # open connections by client address
        self.limit_hits = LimitReporter(emit)
        self._refusing = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._date_ts = -1
        self._date = ""
        self._warned = 0.0

    # -- listening -----------------------------------------------------------------------
    @staticmethod
    def bind(host: str, port: int, device: str = "") -> socket.socket:
        """A listening socket on exactly one address (never all interfaces) and, given a
        device, only for connections that come in through it (as DHCP's sockets). An IPv6
        address is IPV6_V6ONLY: IPv4 clients keep the IPv4 listener and its URLs."""
        v6 = ":" in host
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if device:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
            sock.bind((host, port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def serve(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    conn, addr = await loop.sock_accept(lsock)
                except OSError as exc:  # EMFILE and friends: back off, keep the others going
                    self._warn_once(f"http: accept failed: {exc}")
                    await asyncio.sleep(0.1)
                    continue
                try:
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:  # reset between accept and here
                    conn.close()
                    continue
                ip = addr[0]
                if self.active >= self.limits.max_connections:
                    self._refuse_busy(conn, ip, "http.max_connections", self.limits.max_connections)
                    continue
                held = self.per_client.get(ip, 0)
                if held >= self.limits.max_per_client:
                    self._refuse_busy(conn, ip, "http.max_per_client", self.limits.max_per_client)
                    continue
                self.per_client[ip] = held + 1
                self.active += 1
                self._spawn(self._connection(conn, ip))
        finally:
            for t in list(self._tasks):
                t.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one connection ------------------------------------------------------------------
    async def _connection(self, sock: socket.socket, ip: str) -> None:
        loop = asyncio.get_running_loop()
        buf = bytearray()
        deadline: float | None = loop.time() + self.limits.header_timeout  # first request
        try:
            while True:
                req = await self._read_request(sock, ip, buf, deadline)
                if req is None or not await self._answer(sock, ip, req):
                    return
                deadline = None  # next request: idle timeout until its first byte
        except (ConnectionError, TimeoutError):
            pass  # reset by the client, or stalled while we wrote an error: nothing to tell
        except Exception as exc:  # noqa: BLE001 - one bad connection must not stop the server
            self.log(f"http: internal error serving {ip}: {exc!r}", "error")
        finally:
            sock.close()
            self.active -= 1
            left = self.per_client.pop(ip, 1) - 1
            if left > 0:
                self.per_client[ip] = left

    async def _recv(self, sock: socket.socket, timeout: float) -> bytes | None:
        """Data, b'' at EOF, or None when `timeout` passed first."""
        if timeout <= 0:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.get_running_loop().sock_recv(sock, RECV_SIZE)
        except TimeoutError:
            return None

    async def _read_request(self, sock: socket.socket, ip: str, buf: bytearray,
                            deadline: float | None) -> Request | None:
        """The next request head (pipelined bytes stay in `buf`), or None to close quietly."""
        loop = asyncio.get_running_loop()
        while True:
            skip_empty_lines(buf)
            try:
                end = head_end(buf)
            except HttpError as err:
                await self._refuse(sock, ip, err, _hint(buf))
                return None
            if end is not None:
                head = bytes(buf[:end])
                del buf[:end]
                try:
                    req = parse_head(head)
                    await self._discard_body(sock, buf, body_length(req), deadline)
                except HttpError as err:
                    await self._refuse(sock, ip, err, _hint(head))
                    return None
                return req
            if deadline is None and not buf:
                data = await self._recv(sock, self.limits.idle_timeout)
                if not data:
                    return None  # idle keep-alive connection, or closed: no answer owed
                deadline = loop.time() + self.limits.header_timeout
            else:
                if deadline is None:
                    deadline = loop.time() + self.limits.header_timeout
                data = await self._recv(sock, deadline - loop.time())
                if data is None:
                    if buf:  # slowloris: a head trickling in byte by byte is cut off here
                        err = HttpError(408, f"request head not complete within "
                                             f"{self.limits.header_timeout:g} s")
                        self.limit_hits.hit("http.header_timeout", ip, f"{ip}: {err.reason} "
                                            f"(http.header_timeout); connection closed")
                        await self._refuse(sock, ip, err, _hint(buf))
                    return None
                if not data:
                    return None
            buf += data

    async def _discard_body(self, sock: socket.socket, buf: bytearray, length: int,
                            deadline: float | None) -> None:
        if length > MAX_DISCARD:
            raise HttpError(413, f"request body of {length} bytes (GET and HEAD take none)")
        loop = asyncio.get_running_loop()
        limit = deadline if deadline is not None else loop.time() + self.limits.header_timeout
        while len(buf) < length:
            data = await self._recv(sock, limit - loop.time())
            if data is None:
                raise HttpError(408, "request body not complete in time")
            if not data:
                raise ConnectionResetError("client closed during the request body")
            buf += data
        del buf[:length]

    # -- answering -----------------------------------------------------------------------
    async def _answer(self, sock: socket.socket, ip: str, req: Request) -> bool:
        """Serve one request; True to keep the connection for the next one."""
        keep = req.keep_alive
        allowed = self.router.methods(req.path)  # a POST's body was read and dropped above (MAX_DISCARD)
        if req.method not in allowed:
            Transfer(self.emit, ip, None, req.path.lstrip("/")).failed(f"method {req.method} not allowed", 405)
            await self._send_error(sock, 405, f"{req.method} is not served", keep, req,
                                   extra=[f"Allow: {', '.join(allowed)}"])
            return keep
        mac = None
        try:
            client = self.router.identify(ip, req.query)
            mac = client.mac
            routed = self.router.route(req.path, req.query, client, req.method)
        except Exception as exc:  # noqa: BLE001 - NotFound, Forbidden, BadRequest, Unavailable, bugs
            status, reason = _status_of(exc)
            if status == 500:
                self.log(f"http: {req.path!r} for {ip}: {exc!r}", "error")
            for ev in getattr(exc, "events", ()):  # a changed ISO's Alert, the first time
                self.emit(ev)
            Transfer(self.emit, ip, mac, req.path.lstrip("/")).failed(reason, status)
            await self._send_error(sock, status, reason, keep, req)
            return keep
        try:
            return await self._serve(sock, ip, req, routed, mac, keep)
        finally:
            routed.source.close()  # the lookup's fd, unless _send_file took it (HEAD, 304, ...)

    async def _serve(self, sock: socket.socket, ip: str, req: Request, routed: Routed,
                     mac: str | None, keep: bool) -> bool:
        src = routed.source
        tag, modified = etag(src), last_modified(src)
        fields = [f"Content-Type: {content_type(src.name)}", f"ETag: {tag}",
                  "Accept-Ranges: bytes"]
        if modified:
            fields.append(f"Last-Modified: {modified}")
        if routed.dynamic:
            fields.append("Cache-Control: no-store")
        options: dict[str, object] = {"method": req.method}
        if ua := req.header("user-agent"):
            options["user_agent"] = ua[:120]

        if precondition_failed(req.headers, tag, src.mtime):
            reason = "If-Match / If-Unmodified-Since: the file has changed"
            Transfer(self.emit, ip, mac, src.name, 0, options).failed(reason, 412)
            await self._send_error(sock, 412, reason, keep, req, extra=[f"ETag: {tag}"])
            return keep
        if not_modified(req.headers, tag, src.mtime):
            xfer = Transfer(self.emit, ip, mac, src.name, 0, options)
            return await self._send_whole(sock, req, 304, fields, b"", xfer, routed.quiet, keep)
        try:
            rng = (byte_range(req.header("range"), src.size)
                   if if_range_allows(req.header("if-range"), tag, modified) else None)
        except Unsatisfiable:
            reason = f"range {req.header('range')!r} not satisfiable for {src.size} bytes"
            Transfer(self.emit, ip, mac, src.name, 0, options).failed(reason, 416)
            await self._send_error(sock, 416, reason, keep, req,
                                   extra=[f"Content-Range: bytes */{src.size}"])
            return keep
        start, last = rng if rng is not None else (0, src.size - 1)
        length = last - start + 1
        status = 206 if rng is not None else 200
        if rng is not None:
            fields.append(f"Content-Range: bytes {start}-{last}/{src.size}")
            options["range"] = f"{start}-{last}"
            options["total"] = src.size
        fields.append(f"Content-Length: {length}")
        xfer = Transfer(self.emit, ip, mac, src.name, length, options)

        if req.method == "HEAD" or src.data is not None or length == 0:
            body = b"" if req.method == "HEAD" or src.data is None else src.data[start:last + 1]
            return await self._send_whole(sock, req, status, fields, body, xfer, routed.quiet, keep)
        return await self._send_file(sock, req, src, start, length, status, fields, xfer, keep)

    async def _send_file(self, sock: socket.socket, req: Request, src: Source, start: int,
                         length: int, status: int, fields: list[str], xfer: Transfer,
                         keep: bool) -> bool:
        """Head, then the bytes by sendfile from the file (or the .iso, at the file's extent)."""
        fd = src.take_fd()  # opened once by the lookup (docs/SECURITY.md); closed below
        try:
            xfer.started()
            await self._send_head_more(sock, self._head(status, fields, keep))
            await self._sendfile(sock, fd, src.offset + start, length, xfer)
        except (ConnectionError, BrokenPipeError):
            xfer.failed(f"client closed the connection after {xfer.done} of {length} bytes", status)
            return False
        except TooSlow as slow:
            reason = (f"client read {slow.rate:.0f} bytes/s over {self.limits.min_rate_window:g} s, under "
                      f"http.min_rate={self.limits.min_rate} ({xfer.done} of {length} bytes)")
            xfer.failed(reason, status)
            self.limit_hits.hit("http.min_rate", xfer.ip, f"{xfer.ip}: {src.name}: {reason}; connection reset")
            _reset(sock)
            return False
        except TimeoutError:
            xfer.failed(f"client read nothing for {self.limits.send_timeout:g} s "
                        f"after {xfer.done} of {length} bytes", status)
            self.limit_hits.hit("http.send_timeout", xfer.ip, f"{xfer.ip}: {src.name}: read nothing for "
                                f"{self.limits.send_timeout:g} s (http.send_timeout); connection reset")
            _reset(sock)
            return False
        except ShortFile:
            xfer.failed(f"file shrank while being sent ({xfer.done} of {length} bytes)", status)
            return False
        except OSError as exc:  # EIO reading the file, and the like
            xfer.failed(f"sending failed after {xfer.done} of {length} bytes: {exc.strerror}", status)
            return False
        finally:
            os.close(fd)
        xfer.finished(status)
        return keep

    async def _send_whole(self, sock: socket.socket, req: Request, status: int,
                          fields: list[str], body: bytes, xfer: Transfer, quiet: bool,
                          keep: bool) -> bool:
        if not quiet:
            xfer.started()
        try:
            await self._sendall(sock, self._head(status, fields, keep) + body)
        except (ConnectionError, BrokenPipeError):
            if not quiet:
                xfer.failed("client closed the connection", status)
            return False
        except TimeoutError:
            if not quiet:
                xfer.failed(f"client read nothing for {self.limits.send_timeout:g} s", status)
            return False
        xfer.done = len(body)
        if not quiet:
            xfer.finished(status)
        return keep

    def _head(self, status: int, fields: list[str], keep: bool) -> bytes:
        now = int(time.time())
        if now != self._date_ts:
            self._date_ts, self._date = now, http_date(now)
        lines = [f"HTTP/1.1 {status} {REASONS[status]}", f"Server: {SERVER}",
                 f"Date: {self._date}", *fields,
                 "Connection: keep-alive" if keep else "Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1")

    async def _sendall(self, sock: socket.socket, data: bytes) -> None:
        """sock_sendall bounded by send_timeout: a client that pipelines requests and never
        reads the answers must not hold its connection slot forever (TimeoutError)."""
        async with asyncio.timeout(self.limits.send_timeout):
            await asyncio.get_running_loop().sock_sendall(sock, data)

    async def _send_head_more(self, sock: socket.socket, head: bytes) -> None:
        """Send the head with MSG_MORE so it leaves in the same segment as the file's start."""
        try:
            n = sock.send(head, socket.MSG_MORE)
        except BlockingIOError:
            n = 0
        if n < len(head):
            await self._sendall(sock, head[n:])

    async def _sendfile(self, sock: socket.socket, fd: int, offset: int, count: int,
                        xfer: Transfer) -> None:
        lim = self.limits
        sender = FileSender(sock.fileno(), fd, offset, count, xfer, lim.send_timeout, lim.min_rate,
                            lim.min_rate_window)
        try:
            await sender.start()
        finally:
            sender.stop()

    # -- errors and refusals -------------------------------------------------------------
    async def _send_error(self, sock: socket.socket, status: int, reason: str, keep: bool,
                          req: Request | None = None, extra: list[str] | None = None) -> None:
        body = f"{status} {REASONS[status]}: {reason}\n".encode("utf-8", "replace")
        fields = ["Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}",
                  "X-Content-Type-Options: nosniff", *(extra or [])]
        if req is not None and req.method == "HEAD":
            body = b""
        await self._sendall(sock, self._head(status, fields, keep) + body)

    async def _refuse(self, sock: socket.socket, ip: str, err: HttpError, hint: str) -> None:
        """A request we cannot parse or that broke a limit: answer, then close gracefully."""
        Transfer(self.emit, ip, None, hint).failed(err.reason, err.status)
        try:
            async with asyncio.timeout(LINGER):
                await self._send_error(sock, err.status, err.reason, False)
        except (ConnectionError, TimeoutError):
            return
        await self._linger(sock)

    async def _linger(self, sock: socket.socket) -> None:
        """Half-close and drain briefly: closing with unread input would send a RST that can
        destroy the error response before the client reads it."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER
        drained = 0
        while drained < MAX_DISCARD:
            data = await self._recv(sock, deadline - loop.time())
            if not data:
                return
            drained += len(data)

    def _warn_once(self, message: str) -> None:
        """A warning at most every 5 s: a flood must not become a flood of log lines."""
        now = time.monotonic()
        if now - self._warned > 5:
            self._warned = now
            self.log(message, "warning")

    def _refuse_busy(self, conn: socket.socket, ip: str, limit: str, value: int) -> None:
        """503 with Retry-After (RFC 9110 15.6.4), reported as one LimitHit per interval (a
        flood of refusals must not become a flood of events)."""
        if limit == "http.max_connections":
            reason = f"too many connections (http.max_connections={value})"
            self.limit_hits.hit(limit, None, f"{self.active} connections open ({limit}={value}); "
                                f"refusing new ones with 503, latest from {ip}")
        else:
            reason = f"too many connections from your address ({limit}={value})"
            self.limit_hits.hit(limit, ip, f"{ip} has {value} connections open ({limit}); refused with 503")
        if self._refusing >= self.limits.max_connections:
            conn.close()  # a flood: do not even spend a task on it
            return
        self._refusing += 1
        self._spawn(self._busy(conn, reason))

    async def _busy(self, conn: socket.socket, reason: str) -> None:
        try:
            async with asyncio.timeout(LINGER):
                await self._send_error(conn, 503, reason, False, extra=["Retry-After: 1"])
            await self._linger(conn)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            conn.close()
            self._refusing -= 1


def _reset(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0) once the socket is closed: a plain close would leave the
    kernel feeding the slow reader what our send buffer still holds, at its pace, long after
    its slot was freed (what nginx's reset_timedout_connection does)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    except OSError:
        pass


def _status_of(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, NotFound):
        return 404, exc.reason
    if isinstance(exc, Forbidden):
        return 403, exc.reason
    if isinstance(exc, BadRequest):
        return 400, str(exc)
    if isinstance(exc, Unavailable):
        return 503, str(exc)
    return 500, f"internal error: {type(exc).__name__}"


def _hint(buf: bytes | bytearray) -> str:
    """The request target of a refused request, shortened, for the event (computed only when
    refusing: never on the path of a request that parses)."""
    line = bytes(buf[:256]).split(b"\n", 1)[0]
    parts = line.split(b" ")
    text = parts[1] if len(parts) > 1 else parts[0]
    return text[:120].decode("ascii", "replace")
