"""pxetui's HTTP server for the benchmark: the service's own code (Router + HttpServer on
uvloop) with an ISO provider built from pycdlib byte extents, so `iso/<name>/<file>` is served
straight out of the .iso by sendfile, as the ISO library does.

usage: python bench/http/iso_server.py ROOT PORT ISO [ISO...]   (prints "ready" when listening)
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pycdlib

from pxetui.config import Config
from pxetui.files import Client, Source
from pxetui.http.routes import Router
from pxetui.http.server import HttpServer, Limits
from pxetui.service import LineEmitter, install_loop_policy


class IsoExtents:
    def __init__(self, iso: Path) -> None:
        self.iso, self.name = iso, iso.stem
        self.mtime = iso.stat().st_mtime
        self.files: dict[str, tuple[int, int]] = {}
        p = pycdlib.PyCdlib()
        p.open(str(iso))
        try:
            for dirname, _, files in p.walk(rr_path="/"):
                for f in files:
                    rr = f"{dirname.rstrip('/')}/{f}"
                    extents = p.get_file_byte_extents(rr_path=rr)
                    if len(extents) == 1:
                        self.files[rr.lstrip("/")] = extents[0]
        finally:
            p.close()

    def lookup(self, path: str, client: Client) -> Source | None:
        prefix = f"iso/{self.name}/"
        if path.startswith(prefix) and path[len(prefix):] in self.files:
            offset, length = self.files[path[len(prefix):]]
            return Source(name=path, size=length, mtime=self.mtime, path=str(self.iso),
                          offset=offset, origin="iso")
        return None


class Menus:
    def __init__(self, providers: list[IsoExtents]) -> None:
        self.providers = providers

    def virtual_providers(self, cfg: Config) -> list[IsoExtents]:
        return self.providers


async def main(root: str, port: int, isos: list[str]) -> None:
    cfg = Config.from_dict({"interface": "lo", "http": {"root": root, "port": port}})
    cfg.server_ip = "127.0.0.1"
    # Events are serialised as the service does, then dropped: their cost is part of the run.
    emit = LineEmitter(os.open(os.devnull, os.O_WRONLY), "http")
    router = Router(cfg, emit, boot=Menus([IsoExtents(Path(i)) for i in isos]))
    server = HttpServer(router, emit, Limits(max_connections=1024))
    lsock = HttpServer.bind("127.0.0.1", port)
    print("ready", flush=True)
    await server.serve(lsock)


if __name__ == "__main__":
    install_loop_policy()
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
