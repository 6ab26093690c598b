"""The `logs` service process: syslog (UDP, and TCP for rsyslog senders) and netconsole (UDP)
receivers on the interface's address (docs/CLIENT-LOGS.md).

Sockets are bound to the server address and to the interface (SO_BINDTODEVICE), as every other
service's (docs/SECURITY.md): a line that reaches this host through any other interface is not
ours to take. Port 514 needs root to bind; the service drops to the service user once its
sockets are open (ctx.ready), then opens its database as that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket

from pxetui import attribution
from pxetui.clientlogs.decode import NETCONSOLE, SYSLOG
from pxetui.clientlogs.framing import FrameError, Framer
from pxetui.clientlogs.receiver import Receiver
from pxetui.clientlogs.store import LogStore, db_path
from pxetui.serviceapi import ServiceContext

FLUSH_EVERY = 1.0  # seconds between batched writes of stored lines
READS_PER_WAKEUP = 256  # datagrams taken per readable event, so one socket cannot starve the other
RCVBUF = 1 << 20  # an installer's burst (debootstrap) while the loop is writing


def bind(kind: int, address: str, port: int, device: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        if kind == socket.SOCK_DGRAM:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(64)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _readable(sock: socket.socket, source: str, rx: Receiver) -> None:
    for _ in range(READS_PER_WAKEUP):
        try:
            data, addr = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # ICMP errors and the like: the next datagram is another sender's
            continue
        rx.take(source, data, addr[0])


class TcpSyslog:
    """Syslog over TCP: at most logs.max_connections at once, each closed after
    logs.idle_timeout of silence or at its first framing error."""

    def __init__(self, ctx: ServiceContext, rx: Receiver) -> None:
        self.ctx, self.rx = ctx, rx
        self.active = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lg = self.ctx.config.logs
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        if self.active >= lg.max_connections:
            self.rx.limits.hit("logs.max_connections", ip,
                               f"more than {lg.max_connections} syslog TCP connections: {ip} refused")
            writer.close()
            return
        self.active += 1
        framer = Framer(lg.max_line_bytes)
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), lg.idle_timeout)
                if not data:
                    break
                for msg in framer.feed(data):
                    self.rx.take(SYSLOG, msg, ip)
        except FrameError as exc:
            self.ctx.log(f"logs: syslog TCP from {ip} closed: {exc}", "warning", ip=ip)
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self.active -= 1
            writer.close()


async def _flush_every(rx: Receiver) -> None:
    while True:
        await asyncio.sleep(FLUSH_EVERY)
        rx.flush()


async def run(ctx: ServiceContext) -> None:
    cfg, lg = ctx.config, ctx.config.logs
    if not cfg.server_ip:
        raise OSError(errno.EADDRNOTAVAIL, "no server address: resolve the config against an interface")
    udp = {SYSLOG: bind(socket.SOCK_DGRAM, cfg.server_ip, lg.syslog_port, cfg.interface)}
    socks = [udp[SYSLOG]]
    try:
        udp[NETCONSOLE] = bind(socket.SOCK_DGRAM, cfg.server_ip, lg.netconsole_port, cfg.interface)
        socks.append(udp[NETCONSOLE])
    except OSError:
        for s in socks:
            s.close()
        raise
    lsock, tcp_problem = None, ""
    if lg.syslog_tcp:
        # Only Anaconda needs TCP: a host's own rsyslog holding TCP 514 costs those lines, not
        # the UDP receivers every other family uses (the log says why).
        try:
            lsock = bind(socket.SOCK_STREAM, cfg.server_ip, lg.syslog_port, cfg.interface)
            socks.append(lsock)
        except OSError as exc:
            tcp_problem = f"logs: syslog over TCP {cfg.server_ip}:{lg.syslog_port} is off: {exc}"
    ctx.ready([lg.syslog_port, lg.netconsole_port])
    if tcp_problem:
        ctx.log(tcp_problem, "error")
    store = LogStore(db_path(cfg), lg.max_lines_per_client)  # as the service user: its files are its own
    rx = Receiver(lg, ctx.emit, attribution.for_config(cfg).mac_for, store)
    loop = asyncio.get_running_loop()
    for source, sock in udp.items():
        loop.add_reader(sock.fileno(), _readable, sock, source, rx)
    server = None
    if lsock is not None:
        server = await asyncio.start_server(TcpSyslog(ctx, rx).handle, sock=lsock)
    ctx.log(f"logs: syslog on {cfg.interface} {cfg.server_ip}:{lg.syslog_port} (udp"
            f"{', tcp' if lsock is not None else ''}), netconsole on udp {lg.netconsole_port}")
    flusher = asyncio.ensure_future(_flush_every(rx))
    try:
        await asyncio.Event().wait()  # until cancelled
    finally:
        flusher.cancel()
        for sock in udp.values():
            loop.remove_reader(sock.fileno())
        if server is not None:
            server.close()
        try:
            rx.flush()
        finally:
            store.db.close()
        for s in socks:
            s.close()
        ctx.log(f"logs: stopped; {rx.lines} lines taken, {rx.dropped} dropped by logs.rate, "
                f"{rx.bad} bad messages")
