"""Pieces bench/engine's run.py and flood.py share: CPU of a namespace, ports, nginx, a UI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.storm.run import NGINX_CONF
from pxetui.lab.network import Namespace

TICK = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot, from /proc/stat: the share of
    every core that something used (irq and softirq included, iowait counted as idle)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / TICK, total / TICK


def ns_cpu_seconds(ns: Any) -> float:
    """CPU (user + system) of every process in a namespace, plus the children they reaped:
    a process that ends between two readings (a TFTP worker) still counts, in its parent."""
    pids = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True,
                          timeout=10).stdout.split()
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / TICK


def ns_cpu_by_process(ns: Any) -> dict[int, tuple[str, float]]:
    """pid -> (what it runs, CPU seconds incl. reaped children): where a namespace's CPU goes."""
    pids = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True,
                          timeout=10).stdout.split()
    out: dict[int, tuple[str, float]] = {}
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv[1:]
                 if w and not w.startswith((b"/", b"-")) and any(c.isalpha() for c in w.decode(errors="replace"))]
        label = " ".join(words[:2]) or Path(argv[0].decode(errors="replace")).name
        out[int(pid)] = (label[:48], (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / TICK)
    return out


def cpu_by_label(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between two readings, summed per label (a new pid counts whole)."""
    spent: dict[str, float] = {}
    for pid, (label, cpu) in after.items():
        spent[label] = spent.get(label, 0.0) + cpu - before.get(pid, (label, 0.0))[1]
    return spent


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def wait_port(ns: Any, proto: str, port: int, procs: list[subprocess.Popen[bytes]],
              timeout: float = 30.0) -> None:
    """Something listens on the port in the namespace (ss), bounded; a server that exits fails."""
    deadline = time.monotonic() + timeout
    flag = "-ltnH" if proto == "tcp" else "-lunH"
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, p.args[-12:]))[:120]} exited with {p.returncode}")
        if ns.run("ss", flag, "sport", f"= :{port}", check=False).stdout.strip():
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {proto} {port} in {ns.name} after {timeout:.0f} s")


def make_content(root: Path) -> Path:
    """The files the transfers download (a boot loader's size over TFTP, a kernel's over
    HTTP), readable by nginx's worker and pxetui's unprivileged services."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    for name, size in (("loader.bin", 512 << 10), ("kernel.bin", 4 << 20)):
        (root / name).write_bytes(os.urandom(size))
        (root / name).chmod(0o644)
    return root


class Nginx:
    """One nginx worker (pxetui's HTTP service is one process), serving `root` on ip:80."""

    def __init__(self, ns: Any, work: Path, ip: str, root: Path) -> None:
        self.ns, self.work, self.ip, self.root = ns, work, ip, root

    def start(self) -> subprocess.Popen[bytes]:
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.work / d).mkdir(exist_ok=True)
        conf = self.work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.work, ip=self.ip, root=self.root))
        return self.ns.popen("/usr/sbin/nginx", "-c", str(conf), "-p", str(self.work),
                             log=self.work / "nginx.stderr")


class AttachedUi:
    """bench/engine/attach.py in its own process, attached to a control socket (a unix
    socket crosses namespaces: it runs in the root namespace, outside the engine's CPU)."""

    def __init__(self, sock: Path, seconds: float, mode: str, out: Path, tail: float = 0.0) -> None:
        self.out = out
        self.fh = open(out, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(HERE / "attach.py"), str(sock), "--seconds", str(seconds),
             "--mode", mode, "--tail", str(tail)], stdout=self.fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

    @staticmethod
    def last_json(out: bytes | str | None) -> dict[str, Any]:
        text = out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
        for line in reversed(text.splitlines()):
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    return value
        return {}

    def result(self, timeout: float) -> dict[str, Any]:
        self.proc.wait(timeout)
        self.fh.flush()
        got = self.last_json(self.out.read_bytes())
        if not got:
            raise RuntimeError(f"attached UI printed no result: {self.out.read_text(errors='replace')[-400:]}")
        return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            Namespace.stop(self.proc, 5)
        self.fh.close()
