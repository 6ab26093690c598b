"""TFTP benchmark: pxetui against tftpd-hpa, dnsmasq and atftpd, side by side.

Runs inside a network namespace made for the run (removed afterwards, also on failure), with
every server on its own local address of a veth inside it (traffic goes over the namespace's
loopback; tftpd-hpa refuses to start on 127.0.0.1 inside a namespace). Rounds interleave the
servers so that machine noise hits all of them alike. The client is atftp (C, supports
windowsize); servers without windowsize fall back to lock-step, as they would in the field.

    sudo /tmp/venv/bin/python bench/tftp/run.py [--rounds 3] [--mib 30] [--quick]

Prints MB/s (10^6 bytes/s, median of rounds), server CPU milliseconds per MB (from
/proc/<pid>/stat, children included: tftpd-hpa forks per transfer) and pxetui's ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from netns import Netns, NetnsFactory  # noqa: E402

from pxetui.config import Config  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SERVERS = ("pxetui", "tftpd-hpa", "dnsmasq", "atftpd")
ADDR = {"pxetui": "10.98.0.1", "tftpd-hpa": "10.98.0.2", "dnsmasq": "10.98.0.3", "atftpd": "10.98.0.4"}
WINDOWED = {"pxetui", "atftpd"}  # dnsmasq gained windowsize in 2.92; Debian 12 ships 2.90


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class CpuMeter:
    """A server's CPU time including every child it forked (tftpd-hpa forks per transfer).

    A cgroup v1 cpuacct group counts exited children too; without one, /proc/<pid>/stat's
    utime + stime + cutime + cstime (children only once reaped, 10 ms ticks).
    """

    def __init__(self, pid: int, name: str) -> None:
        self.pid = pid
        self.group: Path | None = None
        if CPUACCT.is_dir():
            group = CPUACCT / f"pxetui-bench-{os.getpid()}-{name}"
            try:
                group.mkdir()
                (group / "cgroup.procs").write_text(str(pid))
                self.group = group
            except OSError:
                if group.exists():
                    group.rmdir()

    def seconds(self) -> float:
        if self.group is not None:
            return int((self.group / "cpuacct.usage").read_text()) / 1e9
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / TICK

    def close(self) -> None:
        if self.group is not None:
            try:
                self.group.rmdir()  # empty once the server is gone
            except OSError:
                pass


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    cpu: CpuMeter  # ip netns exec execs, so proc.pid is the server itself


@dataclass
class Result:
    seconds: list[float] = field(default_factory=list)
    cpu: float = 0.0
    nbytes: int = 0
    failures: int = 0

    @property
    def mbps(self) -> float:
        per = self.nbytes / max(1, len(self.seconds))
        return per / statistics.median(self.seconds) / 1e6 if self.seconds else 0.0

    @property
    def cpu_ms_per_mb(self) -> float:
        return self.cpu * 1000 / (self.nbytes / 1e6) if self.nbytes else 0.0


def atftpd_binary() -> str:
    """atftpd conflicts with tftpd-hpa in Debian: unpack it to a temp dir (apt-get download)."""
    cached = Path(tempfile.gettempdir()) / "pxetui-bench-atftpd" / "usr/sbin/atftpd"
    if cached.exists():
        return str(cached)
    work = cached.parents[2]
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "atftpd"], cwd=work, check=True, capture_output=True)
    deb = next(work.glob("atftpd_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(work)], check=True, capture_output=True)
    return str(cached)


def start_servers(ns: Netns, root: Path, work: Path) -> dict[str, Server]:
    servers: dict[str, Server] = {}
    # The storm's clients all come from one address: tftp.max_per_client would refuse past 8.
    cfg = Config.from_dict({"state_dir": str(work / "state"), "tftp": {"root": str(root), "max_per_client": 1024}})
    cfg.server_ip, cfg.netmask, cfg.mtu = ADDR["pxetui"], "255.255.255.0", 65536  # lo's MTU
    (work / "pxetui.json").write_text(cfg.to_json())
    cmds: dict[str, list[str]] = {
        "pxetui": [sys.executable, "-m", "pxetui.service", "tftp", str(work / "pxetui.json")],
        "tftpd-hpa": ["in.tftpd", "--foreground", "--listen", "--user", "root",
                      "--address", f"{ADDR['tftpd-hpa']}:69", "--secure", str(root)],
        "dnsmasq": ["dnsmasq", "--keep-in-foreground", "--port=0", "--enable-tftp", f"--tftp-root={root}",
                    f"--listen-address={ADDR['dnsmasq']}", "--bind-interfaces", "--user=root",
                    "--conf-file=/dev/null", f"--pid-file={work}/dnsmasq.pid", "--tftp-max=100"],
        "atftpd": [atftpd_binary() if "atftpd" in SERVERS else "atftpd", "--daemon", "--no-fork", "--user", "root.root", "--port", "69",
                   "--bind-address", ADDR["atftpd"], "--maxthread", "100", "--logfile", "/dev/null",
                   str(root)],
    }
    for name, cmd in cmds.items():
        if name not in SERVERS:
            continue
        p = ns.popen(*cmd, log=work / f"{name}.log")
        servers[name] = Server(name, p, CpuMeter(p.pid, name))
    time.sleep(1.5)
    for s in servers.values():
        if s.proc.poll() is not None:
            raise SystemExit(f"{s.name} exited at start with {s.proc.returncode}: {' '.join(cmds[s.name])}")
    return servers


def fetch_cmd(server: str, name: str, blksize: int, window: int, out: str) -> list[str]:
    cmd = ["atftp", "--option", f"blksize {blksize}", "--tftp-timeout", "1"]
    if window > 1:
        cmd += ["--option", f"windowsize {window}"]
    return [*cmd, "-g", "-r", name, "-l", out, ADDR[server], "69"]


def one_fetch(ns: Netns, server: Server, name: str, size: int, blksize: int, window: int,
              res: Result, out: str = "/dev/null") -> None:
    c0 = server.cpu.seconds()
    t0 = time.perf_counter()
    r = ns.run(*fetch_cmd(server.name, name, blksize, window, out), check=False, timeout=120)
    dt = time.perf_counter() - t0
    time.sleep(0.05)  # let a forking server reap its child so its CPU shows in cutime
    res.cpu += server.cpu.seconds() - c0
    if r.returncode != 0:
        res.failures += 1
        return
    res.seconds.append(dt)
    res.nbytes += size


def storm(ns: Netns, server: Server, name: str, size: int, clients: int, blksize: int, window: int,
          res: Result, outdir: Path, digest: str) -> None:
    c0 = server.cpu.seconds()
    outs = [outdir / f"{server.name}-{i}" for i in range(clients)]
    t0 = time.perf_counter()
    procs = [ns.popen(*fetch_cmd(server.name, name, blksize, window, str(o)), log=Path(f"{o}.log"))
             for o in outs]
    for p in procs:
        try:
            p.wait(180)
        except subprocess.TimeoutExpired:
            ns.stop(p)
    dt = time.perf_counter() - t0
    time.sleep(0.1)
    res.cpu += server.cpu.seconds() - c0
    ok = 0
    for p, o in zip(procs, outs, strict=True):
        good = p.returncode == 0 and o.exists() and hashlib.sha256(o.read_bytes()).hexdigest() == digest
        ok += good
        o.unlink(missing_ok=True)
        Path(f"{o}.log").unlink(missing_ok=True)
    res.failures += clients - ok
    res.seconds.append(dt)
    res.nbytes += size * ok  # aggregate: only complete, correct files count


def table(title: str, rows: dict[str, dict[str, Result]], cols: list[str]) -> None:
    print(f"\n{title}")
    print(f"{'case':<22}" + "".join(f"{s:>22}" for s in SERVERS) + f"{'pxetui/hpa':>12}{'pxetui/best':>12}")
    for case in cols:
        cells, rates = [], {}
        for s in SERVERS:
            r = rows[case][s]
            rates[s] = r.mbps
            fail = f" {r.failures}F" if r.failures else ""
            cells.append(f"{r.mbps:8.1f} MB/s {r.cpu_ms_per_mb:5.1f}ms{fail}")
        best_other = max(rates[s] for s in SERVERS if s != "pxetui") or 1.0
        hpa = rates["tftpd-hpa"] or 1.0
        print(f"{case:<22}" + "".join(f"{c:>22}" for c in cells)
              + f"{rates['pxetui'] / hpa:12.2f}{rates['pxetui'] / best_other:12.2f}")


def main() -> int:
    global SERVERS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=30, help="size of the single-transfer file")
    ap.add_argument("--storm-clients", type=int, default=20)
    ap.add_argument("--storm-mib", type=int, default=8, help="file size each storm client fetches")
    ap.add_argument("--quick", action="store_true", help="1 round, blksize 1428 only")
    ap.add_argument("--blksizes", default="512,1428,1468", help="blksizes of the single transfers")
    ap.add_argument("--windows", default="1,4,16", help="windowsizes of the single transfers")
    ap.add_argument("--storm-windows", default="1,4", help="windowsizes of the storms")
    ap.add_argument("--servers", default=",".join(SERVERS), help="which servers to run (pxetui always)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespace, port 69)")
    for tool in ("ip", "atftp", "in.tftpd", "dnsmasq"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}")
    SERVERS = tuple(s for s in SERVERS if s == "pxetui" or s in args.servers.split(","))
    if "tftpd-hpa" not in SERVERS:
        raise SystemExit("--servers: tftpd-hpa is the anchor; keep it")
    rounds = 1 if args.quick else args.rounds
    blksizes = [1428] if args.quick else [int(b) for b in args.blksizes.split(",")]
    windows = [int(w) for w in args.windows.split(",")]

    factory = NetnsFactory()
    work = Path(tempfile.mkdtemp(prefix="pxetui-bench-"))
    servers: dict[str, Server] = {}
    try:
        ns = factory.new("pxb")
        # A veth pair with both ends here: the servers' addresses are local, so traffic uses lo.
        ns.run("ip", "link", "add", "bench0", "type", "veth", "peer", "name", "bench1")
        for a in ADDR.values():
            ns.run("ip", "addr", "add", f"{a}/24", "dev", "bench0")
        ns.run("ip", "link", "set", "bench0", "up")
        root = work / "root"
        root.mkdir()
        big, small = root / "big.bin", root / "storm.bin"
        big.write_bytes(os.urandom(args.mib << 20))
        small.write_bytes(os.urandom(args.storm_mib << 20))
        digest = hashlib.sha256(small.read_bytes()).hexdigest()
        for p in (work, root):
            p.chmod(0o755)
        servers = start_servers(ns, root, work)

        single: dict[str, dict[str, Result]] = {}
        cases = [(b, w) for b in blksizes for w in windows]
        for b, w in cases:
            single[f"bs {b} ws {w}"] = {s: Result() for s in SERVERS}
        for rnd in range(rounds):
            order = SERVERS[rnd % len(SERVERS):] + SERVERS[: rnd % len(SERVERS)]
            for b, w in cases:
                for s in order:
                    one_fetch(ns, servers[s], big.name, big.stat().st_size, b, w, single[f"bs {b} ws {w}"][s])
        cols = list(single)
        table(f"single transfer of {args.mib} MiB (median of {rounds} rounds; "
              "tftpd-hpa and dnsmasq have no windowsize: lock-step)", single, cols)

        storms: dict[str, dict[str, Result]] = {}
        storm_windows = [int(w) for w in args.storm_windows.split(",") if w]
        for w in storm_windows:
            storms[f"{args.storm_clients} x bs 1428 ws {w}"] = {s: Result() for s in SERVERS}
        outdir = work / "out"
        outdir.mkdir()
        for rnd in range(rounds):
            order = SERVERS[rnd % len(SERVERS):] + SERVERS[: rnd % len(SERVERS)]
            for w in storm_windows:
                for s in order:
                    storm(ns, servers[s], small.name, small.stat().st_size, args.storm_clients, 1428, w,
                          storms[f"{args.storm_clients} x bs 1428 ws {w}"][s], outdir, digest)
        table(f"storm: {args.storm_clients} clients at once, {args.storm_mib} MiB each "
              "(aggregate MB/s of correct files; F = failed transfers)", storms, list(storms))

        goals: list[tuple[str, bool]] = []
        if (ws1 := single.get("bs 1428 ws 1")) is not None:
            goals.append(("windowsize 1 >= tftpd-hpa", ws1["pxetui"].mbps >= ws1["tftpd-hpa"].mbps))
        if (ws16 := single.get("bs 1428 ws 16")) is not None:
            goals.append(("windowsize 16 >= 2x tftpd-hpa", ws16["pxetui"].mbps >= 2 * ws16["tftpd-hpa"].mbps))
        for case, st in storms.items():
            goals.append((f"storm {case} >= tftpd-hpa aggregate, no failures",
                          st["pxetui"].mbps >= st["tftpd-hpa"].mbps and st["pxetui"].failures == 0))
        print("\ngoals (blksize 1428):")
        for text, ok in goals:
            print(f"  {'MET ' if ok else 'MISS'} {text}")
        if args.json:
            def dump(rows: dict[str, dict[str, Result]]) -> dict[str, object]:
                return {c: {s: {"mbps": r.mbps, "cpu_ms_per_mb": r.cpu_ms_per_mb, "failures": r.failures}
                            for s, r in v.items()} for c, v in rows.items()}

            Path(args.json).write_text(json.dumps({"single": dump(single), "storm": dump(storms)}, indent=1))
        return 0
    finally:
        for s in servers.values():
            factory.made[0].stop(s.proc)
        factory.cleanup()
        for s in servers.values():
            s.cpu.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
