"""Start one real pxetui service inside a test namespace and read its events."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from netns import Netns, wait_for

from pxetui.config import Config
from pxetui.control import ControlClient


class ServiceProc:
    """A service process (python -m pxetui.service NAME cfg.json) and the events it printed."""

    def __init__(self, ns: Netns, name: str, cfg: Config, workdir: Path) -> None:
        self.ns, self.name = ns, name
        cfg_file = workdir / f"{name}-config.json"
        cfg_file.write_text(cfg.to_json())
        self.log = workdir / f"{name}.stderr"
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.proc = ns.popen(sys.executable, "-m", "pxetui.service", name, str(cfg_file),
                             stdout=subprocess.PIPE)
        self._err = open(self.log, "wb")  # noqa: SIM115
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(ev)

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("type") == type_
                    and all(e.get(k) == v for k, v in match.items())]

    def wait_event(self, type_: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(type_, **match)
            if found:
                return found[0]
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader drain
                found = self.of(type_, **match)
                if found:
                    return found[0]
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before {type_} {match}")
            time.sleep(0.05)
        raise AssertionError(f"no {type_} {match} from {self.name} within {timeout}s; got {[e['type'] for e in self.events][-20:]}")

    def wait_running(self, timeout: float = 15.0) -> dict[str, Any]:
        return self.wait_event("ServiceState", timeout=timeout, state="running")

    def stop(self) -> int | None:
        self.ns.stop(self.proc)
        self._reader.join(2)
        return self.proc.returncode


def base_config(tmp: Path, interface: str = "eth0", server_ip: str = "10.99.0.1",
                netmask: str = "255.255.255.0", **sections: dict[str, Any]) -> Config:
    """A resolved config for tests, without asking psutil (the test process is not in the ns)."""
    raw: dict[str, Any] = {"interface": interface, "state_dir": str(tmp / "state")}
    for k, v in sections.items():
        raw[k] = v
    cfg = Config.from_dict(raw)
    cfg.server_ip, cfg.netmask = server_ip, netmask
    if not cfg.dhcp.range:
        base = server_ip.rsplit(".", 1)[0]
        cfg.dhcp.range = f"{base}.100-{base}.199"
    return cfg


def library_config(tmp: Path) -> Config:
    """base_config with its TFTP and HTTP roots made, and the ISO provider's per-root state
    forgotten (pxetui/library/provider.py keeps it per process)."""
    from pxetui.library import provider

    cfg = base_config(tmp)
    cfg.tftp.root, cfg.http.root = str(tmp / "tftp"), str(tmp / "http")
    Path(cfg.tftp.root).mkdir()
    Path(cfg.http.root).mkdir()
    provider._STATES.clear()
    return cfg


async def collect(sock: Path, until, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Attach to an engine's control socket like the UI does; gather events until
    `until(events)` is true (bounded by `timeout`)."""
    client = await ControlClient.connect(sock)
    seen: list[dict[str, Any]] = []
    try:
        async def run() -> None:
            async for ev in client.events():
                seen.append(ev)
                if until(seen):
                    return
        await asyncio.wait_for(run(), timeout)
    finally:
        await client.close()
    return seen


# busybox udhcpc's script: configure the address it is given and log "<event> <address>".
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
esac
echo "$1 $ip" >> "{log}"
"""


def udhcpc_lease(client: Netns, workdir: Path, prefix: str = "10.99.0.", timeout: float = 30.0) -> str:
    """A real DHCP client (busybox udhcpc, left running) on the client's eth0: the address
    it was bound to."""
    log, script = workdir / "udhcpc.log", workdir / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT.format(log=log))
    script.chmod(0o755)
    client.popen("busybox", "udhcpc", "-i", "eth0", "-f", "-s", str(script), "-t", "5", "-T", "1")
    wait_for(lambda: log.exists() and f"bound {prefix}" in log.read_text(), timeout=timeout, what="a lease")
    return log.read_text().split("bound ", 1)[1].split()[0]


def served_roots(tmp: Path, loader: bytes, kernel: bytes) -> tuple[Path, Path, Path]:
    """(tftp root with pxelinux.0, http root with vmlinuz, state dir) for an engine under test."""
    tftp_root, http_root, state = tmp / "tftp", tmp / "http", tmp / "state"
    tftp_root.mkdir()
    http_root.mkdir()
    (tftp_root / "pxelinux.0").write_bytes(loader)
    (http_root / "vmlinuz").write_bytes(kernel)
    return tftp_root, http_root, state
