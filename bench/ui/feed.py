"""A synthetic engine for the UI benchmark: serves the control-socket protocol (JSON lines)
with N clients and M live transfers, at rates like a busy lab.

    python bench/ui/feed.py SOCK [--clients 1000] [--transfers 100] [--seconds 60]

Replay first (EngineStarted, services, every client and lease, the live transfers), then live:
each transfer reports progress `--progress-hz` times a second and is replaced when done; each
client changes stage every ~`--client-period` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGES = ("dhcp", "tftp", "menu", "kernel", "initrd", "booting", "booted")


def mac(i: int) -> str:
    return f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def ip(i: int) -> str:
    return f"10.{100 + (i >> 16)}.{i >> 8 & 255}.{i & 255}"


class Feed:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(7)
        self.clients: dict[int, int] = {}  # client -> stage index
        self.transfers: dict[str, dict] = {}
        self.next_tid = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.owed = 0.0  # client updates due but not yet sent

    def client_ev(self, i: int, now: float) -> dict:
        s = self.clients[i]
        stages = [{"stage": STAGES[k], "ts": now - (s - k) * 3, "detail": ""} for k in range(s + 1)]
        return {"type": "ClientUpdate", "ts": now, "service": "tracker", "mac": mac(i), "ip": ip(i),
                "stage": STAGES[s], "stages": stages, "firmware": "uefi64" if i % 2 else "bios",
                "arch": 7 if i % 2 else 0, "progress": (s + 1) / len(STAGES),
                "last_event": f"{STAGES[s]} reached", "diagnosis": ""}

    def new_transfer(self, now: float) -> dict:
        tid = f"t{self.next_tid}"
        self.next_tid += 1
        c = self.rng.randrange(self.args.clients)
        size = self.rng.choice((40_000_000, 80_000_000, 150_000_000))
        t = {"tid": tid, "c": c, "size": size, "done": 0, "rate": self.rng.uniform(5e6, 20e6)}
        self.transfers[tid] = t
        return {"type": "TransferStarted", "ts": now, "service": "tftp", "mac": mac(c), "ip": ip(c),
                "transfer_id": tid, "protocol": "tftp", "path": "images/vmlinuz-initrd.img",
                "size": size, "options": {"blksize": 1468, "windowsize": 4}}

    def replay(self) -> list[dict]:
        now = time.time()
        out = [{"type": "EngineStarted", "ts": now, "service": "supervisor", "interface": "bench0",
                "address": "10.100.0.1", "netmask": "255.255.0.0", "dhcp_mode": "full",
                "dhcp_mode_reason": "benchmark", "http_port": 80, "version": "bench"}]
        for n, name in enumerate(("dhcp", "tftp", "http", "capture")):
            out.append({"type": "ServiceState", "ts": now, "service": name, "state": "running",
                        "pid": 100 + n, "ports": [67 + n]})
        for i in range(self.args.clients):
            self.clients[i] = self.rng.randrange(len(STAGES))
            out.append(self.client_ev(i, now))
            out.append({"type": "LeaseGranted", "ts": now, "service": "dhcp", "mac": mac(i),
                        "ip": ip(i), "ours": True, "expires": now + 3600})
        for _ in range(self.args.transfers):
            out.append(self.new_transfer(now))
        return out

    def tick(self, dt: float) -> list[dict]:
        now = time.time()
        out: list[dict] = []
        for tid, t in list(self.transfers.items()):
            t["done"] = min(t["size"], t["done"] + int(t["rate"] * dt))
            base = {"ts": now, "service": "tftp", "mac": mac(t["c"]), "ip": ip(t["c"]),
                    "transfer_id": tid, "protocol": "tftp"}
            if t["done"] >= t["size"]:
                out.append({**base, "type": "TransferFinished", "path": "images/vmlinuz-initrd.img",
                            "bytes_done": t["done"], "seconds": 5.0, "rate": t["rate"]})
                del self.transfers[tid]
                out.append(self.new_transfer(now))
            else:
                out.append({**base, "type": "TransferProgress", "bytes_done": t["done"],
                            "size": t["size"], "rate": t["rate"], "retransmits": 0})
        self.owed += self.args.clients * dt / self.args.client_period
        n, self.owed = int(self.owed), self.owed - int(self.owed)
        for _ in range(n):
            i = self.rng.randrange(self.args.clients)
            self.clients[i] = (self.clients[i] + 1) % len(STAGES)
            out.append(self.client_ev(i, now))
        return out

    async def serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write("".join(json.dumps(e) + "\n" for e in self.replay()).encode())
        await writer.drain()
        self.writers.append(writer)
        try:
            while await reader.readline():
                pass
        finally:
            self.writers.remove(writer)

    async def run(self) -> None:
        server = await asyncio.start_unix_server(self.serve_client, path=self.args.sock)
        dt = 1 / self.args.progress_hz
        end = time.monotonic() + self.args.seconds
        async with server:
            while time.monotonic() < end:
                await asyncio.sleep(dt)
                if not self.writers:
                    continue
                data = "".join(json.dumps(e) + "\n" for e in self.tick(dt)).encode()
                for w in list(self.writers):
                    w.write(data)
                    await w.drain()


@contextmanager
def running(sock: str, clients: int, transfers: int, seconds: float) -> Iterator[None]:
    """This feed in its own process serving `sock` (waited for, bounded), stopped on exit."""
    feed = subprocess.Popen([sys.executable, __file__, sock, "--clients", str(clients),
                             "--transfers", str(transfers), "--seconds", str(seconds)])
    try:
        for _ in range(100):
            if Path(sock).exists():
                break
            time.sleep(0.05)
        yield
    finally:
        feed.terminate()
        feed.wait(5)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sock")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--transfers", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--progress-hz", type=float, default=4)
    p.add_argument("--client-period", type=float, default=10.0)
    args = p.parse_args()
    Path(args.sock).unlink(missing_ok=True)
    asyncio.run(Feed(args).run())


if __name__ == "__main__":
    main()
