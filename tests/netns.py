"""Test rig: network namespaces, veths and bridges with unique names, always removed.

Every DHCP server, probe and boot client in the tests runs inside namespaces made here.
Processes are tracked by PID (own session) and ended by PID; nothing is killed by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from pxetui.lab.network import Namespace
from pxetui.safety import GUARD_ENV

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing; in CI, fail instead (no silent skips)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}")
    pytest.skip(reason, allow_module_level=True)  # also a module's prerequisite


def require_root() -> None:
    require(os.geteuid() == 0, "needs root for network namespaces")
    require(shutil.which("ip") is not None, "needs iproute2 (`ip`)")


def require_tool(*names: str, package: str = "") -> None:
    for n in names:
        require(
            shutil.which(n) is not None or Path(n).exists(),
            f"needs {n} (Debian package {package or n})",
        )


def sh(*cmd: str, check: bool = True, timeout: float = 30, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, timeout=timeout, text=True, capture_output=True, **kw)  # type: ignore[call-overload]


def unique(prefix: str) -> str:
    # IFNAMSIZ is 16: keep names short. pid + random keeps xdist workers apart.
    return f"{prefix}{uuid.uuid4().hex[:7]}"


class Netns:
    """One network namespace made by a test, with the processes started in it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env[GUARD_ENV] = self.name
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        if extra:
            env.update(extra)
        return env

    def exec_args(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.exec_args(cmd), check=check, timeout=timeout, text=True,
                              capture_output=True, env=self.env(env), input=input)

    def popen(self, *cmd: str, log: Path | None = None, env: dict[str, str] | None = None,
              stdout: int | None = None, stdin: int | None = None) -> subprocess.Popen[bytes]:
        out: int | object
        if stdout is not None:
            out = stdout
        elif log is not None:
            out = open(log, "wb")  # noqa: SIM115 - closed with the process
        else:
            out = subprocess.DEVNULL
        p = subprocess.Popen(self.exec_args(cmd), stdout=out, stderr=subprocess.STDOUT if log else None,
                             stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             env=self.env(env), start_new_session=True)  # type: ignore[arg-type]
        self.procs.append(p)
        if log is not None:
            self.logs[p.pid] = log
        return p

    def python(self, *args: str, **kw: object) -> subprocess.Popen[bytes]:
        return self.popen(sys.executable, *args, **kw)  # type: ignore[arg-type]

    def stop(self, p: subprocess.Popen[bytes], timeout: float = 5) -> None:
        """SIGTERM to the process group, SIGKILL after `timeout` (the lab's way, by PID)."""
        Namespace.stop(p, timeout)

    def cleanup(self) -> None:
        """End our processes, anything else left inside (a daemon that forked: it is ours),
        then delete the namespace; as the lab's Namespace.destroy() does."""
        Namespace(self.name, procs=self.procs).destroy()


class NetnsFactory:
    def __init__(self) -> None:
        self.made: list[Netns] = []

    def new(self, prefix: str = "pxt") -> Netns:
        name = unique(prefix)
        sh("ip", "netns", "add", name)
        ns = Netns(name)
        self.made.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def link(self, a: Netns, b: Netns, a_addr: str | None, b_addr: str | None,
             a_if: str = "eth0", b_if: str = "eth0") -> tuple[str, str]:
        """A veth pair between two namespaces; names inside each namespace are a_if and b_if."""
        tmp_a, tmp_b = unique("va"), unique("vb")
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        sh("ip", "link", "set", tmp_a, "netns", a.name)
        sh("ip", "link", "set", tmp_b, "netns", b.name)
        for ns, tmp, ifn, addr in ((a, tmp_a, a_if, a_addr), (b, tmp_b, b_if, b_addr)):
            ns.run("ip", "link", "set", tmp, "name", ifn)
            if addr:
                ns.run("ip", "addr", "add", addr, "dev", ifn)
            ns.run("ip", "link", "set", ifn, "up")
        return a_if, b_if

    def pair(self, server_addr: str = "10.99.0.1/24", client_addr: str | None = None) -> tuple[Netns, Netns]:
        """Server and client namespaces joined by a veth (eth0 on both sides)."""
        s, c = self.new("pxs"), self.new("pxc")
        self.link(s, c, server_addr, client_addr)
        return s, c

    def lan(self, *addrs: str | None) -> list[Netns]:
        """One namespace per address (None: no address), all with `eth0` on one bridge that
        lives in its own namespace: a shared segment (broadcasts reach every member)."""
        hub = self.new("pxb")
        hub.run("ip", "link", "add", "br0", "type", "bridge")
        hub.run("ip", "link", "set", "br0", "type", "bridge", "forward_delay", "0")
        hub.run("ip", "link", "set", "br0", "up")
        members = []
        for i, addr in enumerate(addrs):
            ns = self.new("pxl")
            port = f"p{i}"
            self.link(hub, ns, None, addr, a_if=port)
            hub.run("ip", "link", "set", port, "master", "br0")
            members.append(ns)
        return members

    def cleanup(self) -> None:
        for ns in reversed(self.made):
            ns.cleanup()
        self.made.clear()


def wait_for(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `pred` until it returns a truthy value; bounded in time."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
