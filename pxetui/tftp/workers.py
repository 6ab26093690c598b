"""Worker processes: the TFTP port shared by one process per CPU (SO_REUSEPORT).

One Python process tops out at one core; a boot storm has dozens of transfers. The kernel
spreads requests over the sockets of a SO_REUSEPORT group by a hash of the client's address
and port, so a retransmitted request reaches the same worker, and each transfer lives in one
process. The per-client and total transfer caps count over every process: each worker maps the
service's slot table (slots.py), passed as a memfd. Workers print their events as JSON lines; the service process re-emits them.

    python -m pxetui.tftp.workers      (config JSON on stdin; started by service.py only)
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable

from pxetui.config import Config
from pxetui.emitter import LineEmitter, LineReader
from pxetui.events import Event, EventDecodeError, Log, ServiceState, from_json
from pxetui.interpreter import python_module
from pxetui.tftp.slots import Slots

MAX_WORKERS = 4
READY_TIMEOUT = 15.0


def worker_count() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus))


def port_taken(ip: str, port: int) -> bool:
    """Is a UDP socket already bound to ip:port (or the wildcard) in this network namespace?

    SO_REUSEPORT would silently share the port with a stale server of the same user, so
    look first (/proc/net/udp lists sockets of the caller's namespace).
    """
    want_port = f"{port:04X}"
    ours = _proc_address(ip) if ip else ""
    for table, wildcard in (("/proc/net/udp", "00000000"), ("/proc/net/udp6", "0" * 32)):
        try:
            with open(table) as fh:
                lines = fh.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 2 or ":" not in fields[1]:
                continue
            addr, p = fields[1].rsplit(":", 1)
            if p == want_port and addr in (ours, wildcard):
                return True
    return False


def _proc_address(ip: str) -> str:
    """`ip` as /proc/net/udp{,6} print it: each 32-bit word in host (little-endian) order."""
    if ":" in ip:
        raw = socket.inet_pton(socket.AF_INET6, ip)
        return "".join(raw[i:i + 4][::-1].hex() for i in range(0, 16, 4)).upper()
    return socket.inet_aton(ip)[::-1].hex().upper()


class Workers:
    """The extra worker processes of one service, with their event relays."""

    def __init__(self, cfg: Config, emit: Callable[[Event], None], log: Callable[[str, str], None],
                 slots: Slots | None = None, slots_fd: int | None = None) -> None:
        self.cfg, self.emit, self.log = cfg, emit, log
        self.slots, self.slots_fd = slots, slots_fd  # row 0 is the service's, worker i has row i
        self.procs: list[asyncio.subprocess.Process] = []
        self.relays: list[asyncio.Task[None]] = []

    async def start(self, count: int) -> int:
        """Start `count` workers; returns how many got their socket (the others are logged)."""
        ready: list[asyncio.Future[bool]] = []
        loop = asyncio.get_running_loop()
        for i in range(count):
            share: list[str] = []
            if self.slots is not None and self.slots_fd is not None:
                share = ["--slots", f"{self.slots_fd}:{self.slots.rows}:{i + 1}"]
            proc = await asyncio.create_subprocess_exec(
                *python_module("pxetui.tftp.workers", *share),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                pass_fds=(self.slots_fd,) if share else ())
            assert proc.stdin is not None
            proc.stdin.write(self.cfg.to_json().encode())
            proc.stdin.close()
            fut: asyncio.Future[bool] = loop.create_future()
            self.procs.append(proc)
            ready.append(fut)
            self.relays.append(asyncio.create_task(self._relay(proc, fut, i + 1)))
        await asyncio.wait(ready, timeout=READY_TIMEOUT)
        return sum(1 for f in ready if f.done() and f.result())

    async def _relay(self, proc: asyncio.subprocess.Process, ready: asyncio.Future[bool], row: int) -> None:
        """A worker's events into ours. Never blocks: the read awaits, and our emitter queues
        (pxetui/emitter.py); a worker whose lines we read late queues and counts on its side."""
        assert proc.stdout is not None
        async for lines in LineReader(proc.stdout).batches():
            for line in lines:
                try:
                    ev = from_json(line)
                except EventDecodeError:
                    continue
                if isinstance(ev, ServiceState):  # the worker's own health: ours to report
                    if not ready.done():
                        ready.set_result(ev.state == "running")
                    continue
                self.emit(ev)
        code = await proc.wait()
        if self.slots is not None and row < self.slots.rows:
            self.slots.clear_row(row)  # its transfers ended with it
        if not ready.done():
            ready.set_result(False)
        if code not in (0, -signal.SIGTERM):
            self.log(f"tftp: worker {proc.pid} exited with {code}; its transfers were lost", "error")

    def signal(self, sig: int) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.send_signal(sig)

    async def stop(self) -> None:
        self.signal(signal.SIGTERM)
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 5)
            except TimeoutError:
                p.kill()
                await p.wait()
        for t in self.relays:
            t.cancel()


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: a worker must not outlive its service (e.g. after SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _slots(argv: list[str]) -> Slots:
    """`--slots FD:ROWS:ROW` from the service, else counts of our own."""
    if len(argv) == 2 and argv[0] == "--slots":
        fd, rows, row = (int(x) for x in argv[1].split(":"))
        try:
            return Slots.attach(fd, rows, row)
        finally:
            os.close(fd)
    return Slots.private()


def main() -> int:
    from pxetui import privileges
    from pxetui.serviceapi import install_loop_policy
    from pxetui.tftp.resolver import build_resolver
    from pxetui.tftp.server import TftpServer

    parent = os.getppid()  # the service: PR_SET_PDEATHSIG is re-armed after the uid change
    _die_with_parent()
    cfg = Config.from_json(sys.stdin.read())
    slots = _slots(sys.argv[1:])
    install_loop_policy()
    emitter = LineEmitter(sys.stdout.fileno(), "tftp", cfg.events.queue_max)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = TftpServer(cfg, build_resolver(cfg), emitter, reuse_port=True, slots=slots)
        try:
            port = server.start()
            privileges.drop_for_worker(cfg, parent)  # root only for the bind (docs/SECURITY.md)
        except OSError as exc:
            emitter(ServiceState(state="failed", reason=str(exc), pid=os.getpid()))
            return
        emitter(ServiceState(state="running", pid=os.getpid(), ports=[port]))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)

        def reload() -> None:
            try:
                server.resolver = build_resolver(cfg)
            except Exception as exc:  # noqa: BLE001 - keep serving with the old resolver
                emitter(Log(level_name="error", message=f"tftp: reload failed in worker: {exc}"))

        loop.add_signal_handler(signal.SIGHUP, reload)
        try:
            await stop.wait()
        finally:
            server.close()

    try:
        asyncio.run(serve())
    finally:
        emitter.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
