"""TFTP request flood: pxetui against dnsmasq, side by side (docs/SECURITY.md, "TFTP and HTTP
limits", "What remains possible").

    sudo .venv/bin/python bench/tftp/flood.py [--rates 2000,5000,10000] [--seconds 2] [--rounds 3]

(PXETUI_BENCH_KEEP=1 keeps the work directory, with each server's log of its last run.)

What a forged-source flood looks like to a server: read requests (with blksize, so an OACK is
due), each from its own port, none ever acknowledged, at a fixed rate for a few seconds, with
a real download (curl, 1 MB) started half a second in. Namespaces made for the run (removed
afterwards, also on failure): the server on 10.98.0.1; in a client namespace the flood from 141
addresses in turn (10.98.0.110-250, as a forged flood comes from many) and the real client at
10.98.0.101. Each run starts a fresh server, alone in its
namespace; the servers take turns, `--rounds` times. Both hold 1,024 transfers at once
(pxetui's tftp.max_transfers default; dnsmasq --tftp-max=1024).

Each rate runs cold (the server just started: no real client has answered it yet) and warm
(one real download before the flood, as on a network where machines were booting). Prints
per case the medians of: the share of requests answered (OACK, DATA or ERROR, the first
answer to each request's port, within the flood and half a second after), server CPU per
request sent (µs, everything in the server's namespace), and the real download's time (or
how many of the rounds it failed), then the ratio pxetui/dnsmasq. The sender runs on the same
machine: past a few thousand a second it is part of what is measured, alike for both.
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(REPO / "bench" / "engine"))
sys.path.insert(0, str(REPO))

from common import ns_cpu_seconds, wait_port  # noqa: E402
from netns import Netns, NetnsFactory  # noqa: E402

from pxetui.config import Config  # noqa: E402

SERVER, FLOODER, LEGIT = "10.98.0.1", "10.98.0.100", "10.98.0.101"
# The flood's sources, taken in turn: a forged flood comes from many addresses, so the
# per-client cap (8) does not stop it (141 x 8 > 1,024) and a full table is what it meets.
SOURCES = [f"10.98.0.{i}" for i in range(110, 251)]
SERVERS = ("pxetui", "dnsmasq")
TABLE = 1024  # transfers at once, both servers

# In the client namespace: `rate` RRQs a second for `seconds`, each from a new socket (port),
# never acknowledged; counts the sockets that got any answer. Bounded by the fd limit.
SENDER = r"""
import json, resource, select, socket, sys, time
rate, seconds, dst, sources = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
rrq = b"\0\1big.bin\0octet\0blksize\0" + b"1428\0"
poller, sent, answered = select.poll(), 0, 0
t0 = time.monotonic()
end = t0 + seconds
while (now := time.monotonic()) < end and sent < limit - 64:
    due = min(int((now - t0) * rate), limit - 64)
    while sent < due:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.bind((sources[sent % len(sources)], 0))
        try:
            s.sendto(rrq, (dst, 69))
        except BlockingIOError:
            pass
        poller.register(s, select.POLLIN)
        sent += 1
    for fd, _ in poller.poll(1):
        poller.unregister(fd)
        answered += 1
grace = time.monotonic() + 0.5
while (left := grace - time.monotonic()) > 0:
    for fd, _ in poller.poll(left * 1000):
        poller.unregister(fd)
        answered += 1
print(json.dumps({"sent": sent, "answered": answered, "seconds": time.monotonic() - t0}))
"""


@dataclass
class Runs:
    answered: list[float] = field(default_factory=list)  # fraction of the requests sent
    cpu_us_per_request: list[float] = field(default_factory=list)
    fetch_seconds: list[float] = field(default_factory=list)
    fetch_failed: int = 0


def start(name: str, ns: Netns, root: Path, work: Path) -> subprocess.Popen[bytes]:
    if name == "pxetui":
        cfg = Config.from_dict({"state_dir": str(work / "state"), "interface": "eth0",
                                "tftp": {"root": str(root), "max_transfers": TABLE}})
        cfg.server_ip, cfg.netmask = SERVER, "255.255.255.0"
        (work / "pxetui.json").write_text(cfg.to_json())
        cmd = [sys.executable, "-m", "pxetui.service", "tftp", str(work / "pxetui.json")]
    else:
        cmd = ["dnsmasq", "--keep-in-foreground", "--port=0", "--enable-tftp", f"--tftp-root={root}",
               f"--listen-address={SERVER}", "--bind-interfaces", "--user=root", "--conf-file=/dev/null",
               f"--pid-file={work}/dnsmasq.pid", f"--tftp-max={TABLE}"]
    p = ns.popen(*cmd, log=work / f"{name}.log")
    wait_port(ns, "udp", 69, [p])
    return p


def fetch(client: Netns) -> tuple[bool, float]:
    """The real client's download, from its own address (curl: atftp cannot pick its source)."""
    t0 = time.perf_counter()
    r = client.run("curl", "-sS", "--max-time", "30", "--interface", LEGIT, "--tftp-blksize", "1428",
                   "-o", "/dev/null", f"tftp://{SERVER}/legit.bin", check=False, timeout=60)
    return r.returncode == 0, time.perf_counter() - t0


def one_run(name: str, server: Netns, client: Netns, root: Path, work: Path, rate: int, seconds: float,
            warm: bool, runs: Runs) -> None:
    p = start(name, server, root, work)
    try:
        if warm:  # a network where machines were booting before the flood began
            fetch(client)
        cpu0 = ns_cpu_seconds(server)
        flood = client.popen(sys.executable, str(work / "sender.py"), str(rate), str(seconds), SERVER,
                             ",".join(SOURCES), stdout=subprocess.PIPE)
        time.sleep(0.5)
        ok, took = fetch(client)
        out, _ = flood.communicate(timeout=seconds + 30)
        cpu = ns_cpu_seconds(server) - cpu0
    finally:
        server.stop(p)
    res = json.loads(out)
    sent = max(1, res["sent"])
    runs.answered.append(res["answered"] / sent)
    runs.cpu_us_per_request.append(cpu * 1e6 / sent)
    if ok:
        runs.fetch_seconds.append(took)
    else:
        runs.fetch_failed += 1
    print(f"  {name:<8} {'warm' if warm else 'cold'} {rate:>6}/s  sent {res['sent']:>6}  answered {res['answered']:>6} "
          f"({100 * res['answered'] / sent:3.0f} %)  cpu {cpu * 1e6 / sent:6.0f} µs/request  "
          f"real download {f'{took:.2f} s' if ok else 'FAILED'}", flush=True)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="2000,5000,10000")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, port 69)")
    for tool in ("ip", "curl", "dnsmasq"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}")
    rates = [int(r) for r in args.rates.split(",")]
    factory = NetnsFactory()
    work = Path(tempfile.mkdtemp(prefix="pxetui-bench-"))
    cases = [(rate, warm) for rate in rates for warm in (False, True)]
    results: dict[tuple[int, bool], dict[str, Runs]] = {c: {s: Runs() for s in SERVERS} for c in cases}
    started = time.monotonic()
    try:
        server, client = factory.pair(server_addr=f"{SERVER}/24", client_addr=f"{FLOODER}/24")
        for addr in [LEGIT, *SOURCES]:
            client.run("ip", "addr", "add", f"{addr}/24", "dev", "eth0")
        root = work / "root"
        root.mkdir()
        (root / "big.bin").write_bytes(os.urandom(1 << 20))
        (root / "legit.bin").write_bytes(os.urandom(1 << 20))
        for p in (work, root):
            p.chmod(0o755)
        (work / "sender.py").write_text(SENDER)
        print(f"bench/tftp/flood: {args.seconds:g} s per run, rates {rates}, {args.rounds} rounds, "
              f"servers {list(SERVERS)}, {TABLE} transfers at once each")
        for rate, warm in cases:
            print(f"rate {rate}/s, {'warm' if warm else 'cold'}:")
            for _ in range(args.rounds):
                for name in SERVERS:
                    one_run(name, server, client, root, work, rate, args.seconds, warm, results[rate, warm][name])
                    time.sleep(1)
        print("\nmedians (answered: % of the requests sent that got any answer; CPU per request sent; the real"
              " 1 MB download half a second into the flood; warm: one real download before the flood began)")
        print(f"  {'server':<8} {'case':<11} {'answered':>9} {'µs/request':>11} {'download s':>11} {'failed':>7}")
        for rate, warm in cases:
            case = f"{rate}/s {'warm' if warm else 'cold'}"
            for name in SERVERS:
                r = results[rate, warm][name]
                print(f"  {name:<8} {case:<11} {100 * med(r.answered):>8.0f}% {med(r.cpu_us_per_request):>11.0f} "
                      f"{med(r.fetch_seconds):>11.2f} {r.fetch_failed:>4}/{args.rounds}")
            px, dm = results[rate, warm]["pxetui"], results[rate, warm]["dnsmasq"]
            print(f"  {'':<8} {case:<11} pxetui/dnsmasq: answered {med(px.answered) / med(dm.answered):.2f}x, "
                  f"cpu per request {med(px.cpu_us_per_request) / med(dm.cpu_us_per_request):.2f}x")
    finally:
        factory.cleanup()
        if not os.environ.get("PXETUI_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
