"""The TFTP service: `async def run(ctx)`, hosted by `python -m pxetui.service tftp CONFIG`.

The service process serves, and starts one more worker process per extra CPU (workers.py);
all share the port with SO_REUSEPORT.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence

from pxetui.config import Config
from pxetui.files import Provider, Resolver
from pxetui.service import ServiceContext
from pxetui.tftp import pump as tftp_pump
from pxetui.tftp.server import TftpServer
from pxetui.tftp.slots import Slots
from pxetui.tftp.workers import Workers, port_taken, worker_count

# Virtual files (menus, per-MAC configs, files inside ISOs) come from the library, when present.
virtual_providers: Callable[[Config], Sequence[Provider]] | None
try:
    from pxetui.library.provider import virtual_providers
except ModuleNotFoundError as _exc:
    if _exc.name not in ("pxetui.library", "pxetui.library.provider"):
        raise
    virtual_providers = None


def build_resolver(cfg: Config) -> Resolver:
    providers = list(virtual_providers(cfg)) if virtual_providers is not None else []
    return Resolver(cfg.tftp_root, providers, case_insensitive=cfg.tftp.case_insensitive)


async def run(ctx: ServiceContext) -> None:
    cfg = ctx.config
    os.makedirs(cfg.tftp_root, exist_ok=True)
    extra = worker_count() - 1
    if extra and port_taken(cfg.server_ip, cfg.tftp.port):
        raise OSError(f"UDP port {cfg.tftp.port} on {cfg.server_ip} is already in use")
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
        ctx.log(f"tftp: serving {cfg.tftp_root} on {cfg.server_ip}:{port} with {1 + extra} processes"
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
