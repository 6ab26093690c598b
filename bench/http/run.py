"""HTTP benchmark: nginx (sendfile on) and pxetui side by side on loopback, interleaved rounds.

Scenarios: a 1 GiB file to one client, the same file to 20 concurrent clients, and the same
1 GiB file from inside an .iso (pxetui only: nginx cannot look inside an image; compared with
pxetui's own disk file in the same rounds). Clients are curl processes writing to /dev/null. Prints MiB/s, the
server's CPU seconds (utime+stime from /proc/<pid>/stat, nginx master and worker summed) and
the ratios against the goals: one client >= 0.9x nginx, 20 clients >= 0.8x nginx, iso ~ disk.

usage: python bench/http/run.py [--rounds 3] [--clients 20] [--size-mib 1024] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TICK = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICK


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def make_data(data: Path, size_mib: int) -> tuple[Path, Path]:
    """root/big.bin (random) and root/big.iso holding the same file at its top level."""
    root = data / "root"
    root.mkdir(parents=True, exist_ok=True)
    big = root / "big.bin"
    if not big.exists() or big.stat().st_size != size_mib << 20:
        print(f"writing {size_mib} MiB of random data to {big} ...", flush=True)
        chunk = os.urandom(16 << 20)
        with open(big, "wb") as fh:
            for i, at in enumerate(range(0, size_mib << 20, len(chunk))):
                block = chunk[i % 7:] + chunk[:i % 7]  # not one repeated block
                fh.write(block[:(size_mib << 20) - at])  # the last one cut: any whole MiB count
    iso = root / "big.iso"
    if not iso.exists() or iso.stat().st_mtime < big.stat().st_mtime:
        print(f"building {iso} with xorriso ...", flush=True)
        content = data / "isocontent" / "big"
        content.mkdir(parents=True, exist_ok=True)
        link = content / "big.bin"
        if not link.exists():
            os.link(big, link)
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "BENCH",
                        "-o", str(iso), str(content)], check=True, timeout=600)
    for f in (big, iso):  # warm the page cache: every round reads from memory
        with open(f, "rb") as fh:
            while fh.read(16 << 20):
                pass
    return big, iso


def fetch(urls: list[str]) -> tuple[int, float]:
    """Run one curl per URL at once; (total bytes, wall seconds)."""
    t0 = time.monotonic()
    procs = [subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", u],
                              stdout=subprocess.PIPE, text=True) for u in urls]
    total = 0
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"curl failed ({p.returncode}) for {p.args[-1]}")
        total += int(out)
    return total, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "pxetui-bench-http")
    args = ap.parse_args()
    for tool in ("nginx", "curl", "xorriso"):
        if not shutil.which(tool):
            raise SystemExit(f"needs {tool} (Debian package {'nginx-light' if tool == 'nginx' else tool})")
    big, iso = make_data(args.data, args.size_mib)
    size = big.stat().st_size

    tmp = Path(tempfile.mkdtemp(prefix="pxetui-bench-http-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        nport, pport = free_port(), free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=nport, root=big.parent))
        nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                                 start_new_session=True)
        procs.append(nginx)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        pxe = subprocess.Popen([sys.executable, str(HERE / "iso_server.py"), str(big.parent),
                                str(pport), str(iso)], env=env, start_new_session=True)
        procs.append(pxe)
        wait_port(nport)
        wait_port(pport)
        time.sleep(0.3)
        nginx_pids = lambda: [nginx.pid, *children(nginx.pid)]  # noqa: E731 - workers may respawn
        targets = {  # name -> (URL, pids to charge CPU to)
            "nginx": (f"http://127.0.0.1:{nport}/big.bin", nginx_pids),
            "pxetui": (f"http://127.0.0.1:{pport}/big.bin", lambda: [pxe.pid]),
            "pxetui-iso": (f"http://127.0.0.1:{pport}/iso/{iso.stem}/big.bin", lambda: [pxe.pid]),
        }
        scenarios = [
            ("1 client", 1, ("nginx", "pxetui", "pxetui-iso")),
            (f"{args.clients} clients", args.clients, ("nginx", "pxetui")),
        ]
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        print(f"file {size >> 20} MiB, {args.rounds} interleaved rounds; nginx {nginx_version()} "
              f"(worker_processes 1, sendfile on) vs pxetui (one process, uvloop); pxetui-iso is "
              f"the same file served from inside {iso.name}", flush=True)
        print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        for rnd in range(args.rounds):
            for name, n, who in scenarios:
                order = who[rnd % len(who):] + who[:rnd % len(who)]  # rotate who goes first
                for target in order:
                    url, pids = targets[target]
                    c0 = cpu_seconds(pids())
                    total, wall = fetch([url] * n)
                    cpu = cpu_seconds(pids()) - c0
                    if total != size * n:
                        raise SystemExit(f"{target} {name}: got {total} bytes, expected {size * n}")
                    mibs = total / wall / (1 << 20)
                    results.setdefault((name, target), []).append((mibs, cpu))
                    print(f"  round {rnd + 1} {name:<11} {target:<10} {mibs:7.0f} MiB/s  "
                          f"server CPU {cpu:5.2f} s ({cpu / wall * 100:4.0f}%)", flush=True)
        report(results, scenarios, size / (1 << 30))
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(a busy shared machine widens the spread)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def nginx_version() -> str:
    r = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    return r.stderr.strip().split("/")[-1]


def report(results: dict[tuple[str, str], list[tuple[float, float]]],
           scenarios: list[tuple[str, int, tuple[str, ...]]], gib: float) -> None:
    med = {k: (statistics.median(m for m, _ in v), statistics.median(c for _, c in v))
           for k, v in results.items()}
    print("\nmedians")
    print(f"  {'scenario':<11} {'server':<10} {'MiB/s':>7} {'CPU s':>6} {'CPU s/GiB':>10}")
    for name, n, who in scenarios:
        for target in who:
            mibs, cpu = med[(name, target)]
            print(f"  {name:<11} {target:<10} {mibs:7.0f} {cpu:6.2f} {cpu / (n * gib):10.3f}")
    many = scenarios[1][0]
    pairs = [("1 client, pxetui / nginx", "1 client", "pxetui", "nginx", 0.9),
             (f"{many}, pxetui / nginx", many, "pxetui", "nginx", 0.8),
             ("file inside .iso / on disk", "1 client", "pxetui-iso", "pxetui", 0.9)]
    # Each round's runs sit next to each other in time, so a per-round ratio cancels most of the
    # load that other processes put on a shared machine; the median of those is the verdict.
    print("\nratios (median of per-round ratios; ratio of medians; per-round range)")
    for label, scen, a, b, goal in pairs:
        per_round = [x[0] / y[0] for x, y in zip(results[(scen, a)], results[(scen, b)], strict=True)]
        ratio = statistics.median(per_round)
        of_medians = med[(scen, a)][0] / med[(scen, b)][0]
        print(f"  {label:<28} {ratio:5.2f}x  ({of_medians:4.2f}x; {min(per_round):4.2f}..{max(per_round):4.2f})"
              f"   goal >= {goal:.1f}  {'met' if ratio >= goal else 'NOT met'}")


if __name__ == "__main__":
    raise SystemExit(main())
