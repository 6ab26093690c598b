"""Full mode keeps looking for another DHCP server after start (docs/SECURITY.md, "DHCP on a
network that is not ours").

The probe at start only sees the servers that answer then. While we serve full DHCP, this
listens on the client port (68) for other servers' OFFERs and ACKs (passively: a broadcast one
reaches every host on the segment) and, every `dhcp.recheck_seconds`, sends a DISCOVER of its
own from a made-up MAC (`probe.recheck_mac`, which our server ignores) with the broadcast flag
set, so that a quiet server answers where we hear it. The first reply that hands out an address
from a server id that is not ours makes the server step back to proxyDHCP
(`DhcpServer.saw_reply`); then the watch ends.

The port-68 socket is opened before the service drops root (`ServiceContext.ready`); sending on
it later needs no privilege.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

from pxetui.dhcp.probe import discover_packet, interface_mac, recheck_mac
from pxetui.dhcp.server import SERVER_PORT, DhcpServer
from pxetui.serviceapi import ServiceContext

BATCH = 64  # datagrams read per wake-up


class ForeignWatch:
    def __init__(self, ctx: ServiceContext, server: DhcpServer, sock: socket.socket,
                 interval: float, on_switch: Callable[[], None] = lambda: None) -> None:
        self.ctx, self.server, self.sock, self.interval = ctx, server, sock, interval
        self.on_switch = on_switch
        self.mac = bytes.fromhex(recheck_mac(interface_mac(ctx.config.interface).hex(":")).replace(":", ""))
        server.probe_mac = self.mac.hex(":")
        self.task: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.sock.fileno(), self.readable)
        if self.interval > 0:
            self.task = asyncio.ensure_future(self._recheck())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.loop is not None and self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def readable(self) -> None:
        for _ in range(BATCH):
            try:
                data, src = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.ctx.log(f"receive on port 68 failed: {exc}", "warning")
                return
            if self.server.saw_reply(data, src):
                self.stop()  # proxyDHCP from now on: nothing left to watch for
                self.on_switch()
                return

    async def _recheck(self) -> None:
        warned = False
        while True:
            await asyncio.sleep(self.interval)
            xid = int.from_bytes(os.urandom(4))
            try:
                self.sock.sendto(discover_packet(self.mac, xid), ("255.255.255.255", SERVER_PORT))
            except OSError as exc:
                if not warned:  # say it once, keep trying: the interface may come back
                    self.ctx.log(f"probe for other DHCP servers failed: {exc}", "warning")
                    warned = True
            else:
                warned = False

