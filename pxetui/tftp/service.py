"""The TFTP service: `async def run(ctx)`, hosted by `python -m pxetui.service tftp CONFIG`.

The service process serves, and starts one more worker process per extra CPU (workers.py);
all share the port with SO_REUSEPORT.
"""

from __future__ import annotations

import os
import signal

from pxetui.serviceapi import ServiceContext
from pxetui.tftp import pump as tftp_pump
from pxetui.tftp.resolver import build_resolver
from pxetui.tftp.server import TftpServer
from pxetui.tftp.slots import Slots
from pxetui.tftp.workers import Workers, port_taken, worker_count


async def run(ctx: ServiceContext) -> None:
    cfg = ctx.config
    os.makedirs(cfg.tftp_root, exist_ok=True)
    extra = worker_count() - 1
    ip6 = cfg.server_ip6 if cfg.ipv6.enabled else ""
    for ip in (cfg.server_ip, ip6):
        if extra and ip and port_taken(ip, cfg.tftp.port):
            raise OSError(f"UDP port {cfg.tftp.port} on {ip} is already in use")
    # One table of transfer counts for every process: the caps are per client, not per worker.
    slots, slots_fd = Slots.shared(1 + extra) if extra else (Slots.private(), None)
    server = TftpServer(cfg, build_resolver(cfg), ctx.emit, reuse_port=extra > 0, slots=slots)
    port = server.start()
    workers = Workers(cfg, ctx.emit, ctx.log, slots, slots_fd)
    try:
        if extra:
            started = await workers.start(extra)
            if started < extra:
                ctx.log(f"tftp: only {started} of {extra} extra worker processes started", "warning")
        ctx.ready([port])
        ctx.log(f"tftp: serving {cfg.tftp_root} on {cfg.server_ip}:{port}"
                + (f" and [{ip6}]:{port}" if ip6 else "") + f" with {1 + extra} processes"
                + (f", uploads into {cfg.tftp.uploads_dir}" if cfg.tftp.uploads_dir else ", read-only")
                + f", lock-step data in {tftp_pump.describe()}")
        while True:
            await ctx.reload_requested.wait()
            ctx.reload_requested.clear()
            workers.signal(signal.SIGHUP)
            try:
                server.resolver = build_resolver(cfg)
            except Exception as exc:  # noqa: BLE001 - keep serving with the old resolver
                ctx.log(f"tftp: reload failed, keeping the previous files: {exc}", "error")
            else:
                ctx.log("tftp: reloaded virtual files")
    finally:
        server.close()
        await workers.stop()
        if slots_fd is not None:
            os.close(slots_fd)
