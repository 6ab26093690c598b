"""Boot storm benchmark: N simulated clients (pxetui.lab.storm: DHCP, boot loader over TFTP,
kernel + initrd over HTTP) started at once against dnsmasq (DHCP + TFTP) plus nginx (HTTP),
and against pxetui, on the lab network (pxetui.lab.network: namespaces only, never the host's
interfaces). Same files, same clients, interleaved rounds; prints time-to-all-booted for both
and the ratio (pxetui / anchor: below 1 means pxetui is faster).

pxetui runs as deployed: `pxetui serve` with capture and the tracker on (the lab's engine), and
a UI-protocol reader attached to its control socket through the storm (bench/storm/watch.py:
the typed events folded into pxetui.state.EngineState, as every UI does). After each pxetui
round it prints from that fold what the tracker says of the storm's clients (stage reached,
stuck, failed), the reader's CPU, and the EventsDropped counters and limits hit.

nginx runs one worker (pxetui's HTTP service is one process); dnsmasq is single-threaded and
runs with --no-ping (pxetui does not probe addresses before offering them either). The storm
client stands for other machines: it runs above either server's priority (nice and autogroup
-15, pxetui.lab.storm.stand_for_other_machines), as bench/engine's perfdhcp does. Each round
prints when the last client got its address: the anchor's time is mostly dnsmasq's DHCP.

usage: sudo python bench/storm/run.py [--clients 100] [--rounds 3]
(past 200 clients the lab subnet is a /21: a /24 holds 241 addresses)
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from pxetui.lab import content  # noqa: E402
from pxetui.lab.network import LabNetwork, Namespace  # noqa: E402
from pxetui.lab.run import Lab, LabOptions  # noqa: E402

NGINX_CONF = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {ip}:80;
        root {root};
    }}
}}
"""


def wait_port(ns: Namespace, proto: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    flag = "-ltn" if proto == "tcp" else "-lun"
    while time.monotonic() < deadline:
        out = ns.run("ss", "-H", flag, f"sport = :{port}", check=False).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {proto} {port} in {ns.name}")


def prefix_for(clients: int) -> int:
    return 24 if clients <= 200 else 21


def storm_timeout(clients: int) -> float:
    return 120.0 + 0.3 * clients


def run_storm(peer: Namespace, clients: int) -> dict:
    p = peer.popen([sys.executable, "-m", "pxetui.lab.storm", "--clients", str(clients),
                    "--timeout", str(storm_timeout(clients)), "--prefix", str(prefix_for(clients))],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=storm_timeout(clients) + 60)
    if not out:
        raise RuntimeError(f"storm printed nothing: {err.decode(errors='replace')[-1500:]}")
    r = json.loads(out)
    failed = [c for c in r["clients"] if c["error"] or not c["t_initrd"]]
    r["failed"] = len(failed)
    if failed:
        print(f"  {len(failed)} clients failed, e.g. {failed[0]['error']}", file=sys.stderr)
    return r


def anchor_round(root: Path, work: Path, clients: int) -> dict:
    """dnsmasq (DHCP + TFTP, blksize as the client asks) and nginx (HTTP)."""
    net = LabNetwork(prefix=prefix_for(clients))
    try:
        net.create()
        start, end = net.dhcp_range()
        work.mkdir(parents=True, exist_ok=True)
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (work / d).mkdir(exist_ok=True)
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=work, ip=net.server_ip, root=root))
        net.ns.popen(["nginx", "-c", str(conf), "-p", str(work)])
        net.ns.popen(["/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                      f"--interface={net.bridge}", "--bind-interfaces", f"--dhcp-range={start},{end},1h",
                      "--dhcp-boot=pxelinux.0", "--enable-tftp", f"--tftp-root={root}",
                      f"--dhcp-leasefile={work / 'leases'}", f"--dhcp-lease-max={max(1000, 2 * clients)}",
                      f"--tftp-max={max(1000, 2 * clients)}", "--quiet-dhcp", "--quiet-tftp",
                      # no ICMP probe of each address before offering it: pxetui does none
                      # either, and dnsmasq's probes serialise 100 new clients (34 s measured)
                      "--no-ping"])
        wait_port(net.ns, "tcp", 80)
        wait_port(net.ns, "udp", 67)
        peer = net.add_peer()
        return run_storm(peer, clients)
    finally:
        net.destroy()


def pxetui_round(work: Path, clients: int) -> dict:
    """The lab's engine (`pxetui serve`, capture and tracker on) with a UI-protocol reader
    attached (watch.py) from before the storm until the tracker has reported it."""
    lab = Lab(LabOptions(state_dir=work, capture=True, prefix=prefix_for(clients)))
    watcher: subprocess.Popen[str] | None = None
    try:
        lab.start()
        peer = lab.net.add_peer()
        watcher = subprocess.Popen([sys.executable, str(HERE / "watch.py"), str(lab.engine_state / "control.sock"),
                                    "--clients", str(clients), "--max-seconds", str(storm_timeout(clients) + 120)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert watcher.stdout is not None
        if watcher.stdout.readline().strip() != "attached":
            raise RuntimeError("the UI-protocol reader did not attach")
        r = run_storm(peer, clients)
        out, _ = watcher.communicate("storm over\n", timeout=180)
        r["watch"] = json.loads(out)
        return r
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
            watcher.wait(5)
        lab.close()


def print_watch(w: dict, clients: int) -> None:
    t = w["tracker"]
    stages = ", ".join(f"{k} {v}" for k, v in t["stages"].items()) or "none"
    print(f"      tracker: {t['clients']}/{clients} storm clients, furthest stage: {stages}; "
          f"stuck {t['stuck']}, failed {t['failed']}, diagnosed {t['diagnosed']}, "
          f"missing {t['missing']}, without initrd {t['without_initrd']}, "
          f"files not all reported finished {t['unfinished']}; "
          f"{'all booted' if t['all_booted'] else 'NOT all booted'} in the UI's fold {w['settle_s']:.1f} s "
          f"after the storm's end"
          + (f" (e.g. {t['diagnosis_examples'][0]!r})" if t["diagnosis_examples"] else ""))
    print(f"      UI reader: {w['cpu_pct']:.1f} % of a core over {w['window_s']:.1f} s ({w['cpu_s']:.2f} s CPU, "
          f"{w['events']} events folded, up to {w['max_lag_s']:.1f} s late, attached {w['attaches']}x); "
          f"EventsDropped {w['dropped'] or 'none'}"
          + (f" {w['dropped_types']}" if w["dropped"] else "")
          + (f"; limits hit {w['limits']}" if w["limits"] else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/storm: needs root for network namespaces", file=sys.stderr)
        return 2
    for tool in ("nginx", "/usr/sbin/dnsmasq", "ss"):
        if shutil.which(tool) is None and not Path(tool).exists():
            print(f"bench/storm: {tool} is missing (Debian: nginx-light, dnsmasq-base, iproute2)", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="pxetui-storm-"))
    tmp.chmod(0o755)  # nginx's worker runs as www-data and must read the files
    try:
        # The anchor serves real files: the same kernel and initrd as the lab, and PXELINUX.
        root = tmp / "anchor-root"
        bb = content.install_busybox(root, tmp / "cache")
        shutil.copyfile("/usr/lib/PXELINUX/pxelinux.0", root / "pxelinux.0")
        sizes = sum((root / p).stat().st_size for p in ("pxelinux.0", bb.kernel, bb.initrd))
        print(f"storm: {a.clients} clients, each DHCP + pxelinux.0 over TFTP + kernel and initrd "
              f"over HTTP ({sizes / 1e6:.1f} MB per client); {a.rounds} interleaved rounds; "
              f"load average {os.getloadavg()[0]:.2f}")
        times: dict[str, list[float]] = {"dnsmasq+nginx": [], "pxetui": []}
        for i in range(a.rounds):
            for name in times:
                work = tmp / f"{name}-{i}"
                r = anchor_round(root, work, a.clients) if name != "pxetui" else pxetui_round(work, a.clients)
                ok = a.clients - r["failed"]
                dhcp = max(c["t_dhcp"] for c in r["clients"])
                cs = r["clients"]
                print(f"  round {i + 1} {name:14s} all booted in {r['seconds']:6.2f} s "
                      f"({ok}/{a.clients} ok, last DHCP at {dhcp:.2f} s; retransmitted: "
                      f"DHCP {sum(max(0, c['dhcp_tries'] - 2) for c in cs)}, "
                      f"TFTP {sum(c['tftp_retries'] for c in cs)}, "
                      f"HTTP 503 retried {sum(c.get('http_retries', 0) for c in cs)})")
                if "watch" in r:
                    print_watch(r["watch"], a.clients)
                if r["failed"] == 0:
                    times[name].append(r["seconds"])
        med = {k: statistics.median(v) for k, v in times.items() if v}
        for k, v in med.items():
            print(f"{k:14s} time-to-all-booted median {v:.2f} s over {len(times[k])} rounds")
        if len(med) == 2:
            print(f"ratio pxetui / dnsmasq+nginx: {med['pxetui'] / med['dnsmasq+nginx']:.2f}")
        return 0 if all(times.values()) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
