"""pxetui's HTTP server for the benchmark: the service's own code (Router + HttpServer on
uvloop) with the ISOs imported into a fresh library by `pxetui.iso.library.import_iso`, so
`iso/<name>/<file>` is served straight out of the .iso by sendfile, exactly as in production.

usage: python bench/http/iso_server.py ROOT PORT ISO [ISO...]   (prints "ready" when listening)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from pxetui.config import Config
from pxetui.emitter import LineEmitter
from pxetui.http.routes import Router
from pxetui.http.server import HttpServer, Limits
from pxetui.iso.library import import_iso
from pxetui.serviceapi import install_loop_policy


async def main(root: str, port: int, isos: list[str]) -> None:
    state = tempfile.mkdtemp(prefix="pxetui-bench-http-")
    cfg = Config.from_dict({"interface": "lo", "state_dir": state, "http": {"root": root, "port": port}})
    cfg.server_ip = "127.0.0.1"
    for iso in isos:
        import_iso(cfg, iso, name=Path(iso).stem)
    # Events are serialised as the service does, then dropped: their cost is part of the run.
    emit = LineEmitter(os.open(os.devnull, os.O_WRONLY), "http")
    router = Router(cfg, emit)  # the real menu library and its ISO provider
    # Every client of the benchmark is 127.0.0.1: http.max_per_client would refuse the 17th.
    server = HttpServer(router, emit, Limits(max_connections=1024, max_per_client=1024))
    lsock = HttpServer.bind("127.0.0.1", port)
    print("ready", flush=True)
    await server.serve(lsock)


if __name__ == "__main__":
    install_loop_policy()
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
