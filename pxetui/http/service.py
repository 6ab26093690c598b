"""The HTTP service process: `python -m pxetui.service http CONFIG_JSON`."""

from __future__ import annotations

import asyncio
import errno

from pxetui.http.routes import Router
from pxetui.http.server import HttpServer, Limits
from pxetui.serviceapi import ServiceContext


async def _reload_on_request(ctx: ServiceContext, router: Router) -> None:
    while True:
        await ctx.reload_requested.wait()
        ctx.reload_requested.clear()
        router.reload()
        ctx.log("http: reloaded menus and ISO library")


async def run(ctx: ServiceContext) -> None:
    cfg = ctx.config
    if not cfg.server_ip:
        # Binding to every interface is never what a boot server on one wire wants.
        raise OSError(errno.EADDRNOTAVAIL, "no server address: resolve the config against an interface")
    if not cfg.http_root.is_dir():
        ctx.log(f"http: root {cfg.http_root} is not a directory; serving generated menus and "
                "imported ISOs only", "warning")
    router = Router(cfg, ctx.emit, log=ctx.log)
    h = cfg.http
    limits = Limits(max_connections=h.max_connections, header_timeout=h.header_timeout,
                    idle_timeout=h.idle_timeout, send_timeout=h.send_timeout,
                    max_per_client=h.max_per_client, min_rate=h.min_rate, min_rate_window=h.min_rate_window)
    server = HttpServer(router, ctx.emit, limits, log=ctx.log)
    # Bound to the interface too (docs/SECURITY.md): the address alone would take connections
    # that reach it through any other interface of this host.
    lsocks = [HttpServer.bind(cfg.server_ip, cfg.http.port, cfg.interface)]
    port = lsocks[0].getsockname()[1]
    where = f"{cfg.server_ip}:{port}"
    if cfg.ipv6.enabled and cfg.server_ip6:
        # Same port (the one IPv4 got, when configured as 0): URLs differ only in the address.
        try:
            lsocks.append(HttpServer.bind(cfg.server_ip6, port, cfg.interface))
        except OSError as exc:
            lsocks[0].close()
            raise OSError(exc.errno, f"http: cannot listen on [{cfg.server_ip6}]:{port}: "
                          f"{exc.strerror or exc}") from exc
        where += f" and [{cfg.server_ip6}]:{port}"
    ctx.log(f"http: serving {cfg.http_root} on {cfg.interface} {where}")
    ctx.ready([port])
    reloader = asyncio.ensure_future(_reload_on_request(ctx, router))
    try:
        await asyncio.gather(*(server.serve(s) for s in lsocks))
    finally:
        reloader.cancel()
        for s in lsocks:
            s.close()
