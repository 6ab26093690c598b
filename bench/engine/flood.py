"""Flood check (issue 14): 4,000 `GET /boot.ipxe?mac=X` from one host against `pxetui serve` as
deployed, and a client booting beside it.

    python bench/engine/flood.py [--requests 4000] [--mac 52:54:00:12:34:56]

The lab network (pxetui.lab: namespaces only) runs the engine as `pxetui lab` does: capture and
tracker on, busybox content, a reader attached to the control socket taking every event. One
host (its own namespace, a fixed address) sends the requests one after another, each on a new
connection, all naming the same MAC (the request the issue measured growing one client's file
list). Printed for each successive thousand: the engine's CPU (everything in its namespace) per
1,000 requests, requests/s, and the number that failed. Should be flat.

Beside it, a simulated PXE client (pxetui.lab.storm, one client: DHCP, pxelinux.0 over TFTP,
kernel and initrd over HTTP) boots from a namespace of its own: with no flood before and after,
and back to back while the flood runs; the time each boot took is printed, so the ratio
flood/no flood comes from one run. (The engine's CPU per thousand includes these boots; they
are the same few per thousand while the flood's cost per request is flat.)
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
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.engine.common import ns_cpu_seconds  # noqa: E402
from pxetui.lab.network import Namespace  # noqa: E402
from pxetui.lab.run import Lab, LabOptions  # noqa: E402

FLOOD_IP = "10.77.0.5"
BUDGET = 20 * 60.0  # seconds for the flood, whatever happens

FLOOD_SCRIPT = """
import http.client, json, sys, time
server, mac, count, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + budget
for i in range(count):
    if time.monotonic() > deadline:
        break
    ok = 0
    try:
        c = http.client.HTTPConnection(server, 80, timeout=30, source_address=(sys.argv[5], 0))
        c.request("GET", f"/boot.ipxe?mac={mac}&arch=x86_64&platform=pcbios")
        r = c.getresponse()
        r.read()
        ok = int(r.status == 200)
        c.close()
    except OSError:
        pass
    print(json.dumps([i, ok, time.monotonic()]), flush=True)
"""


def boot_once(peer: Namespace, label: str) -> dict[str, object]:
    """One simulated client boots (pxetui.lab.storm, bounded by its own --timeout)."""
    p = peer.popen([sys.executable, "-P", "-m", "pxetui.lab.storm", "--clients", "1", "--timeout", "120"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=150)
    try:
        c = json.loads(out)["clients"][0]
    except (ValueError, KeyError, IndexError):
        return {"label": label, "error": err.decode(errors="replace")[-300:] or "no output"}
    return {"label": label, "seconds": c["t_initrd"] if not c["error"] else 0.0, "dhcp": c["t_dhcp"],
            "loader": c["t_loader"], "error": c["error"]}


def show(b: dict[str, object]) -> str:
    if b.get("error"):
        return f"  boot {b['label']:<24} FAILED: {b['error']}"
    return (f"  boot {b['label']:<24} {b['seconds']:6.2f} s  (DHCP {b['dhcp']:.2f} s, "
            f"loader over TFTP at {b['loader']:.2f} s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--mac", default="52:54:00:12:34:56")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/engine/flood: needs root for network namespaces", file=sys.stderr)
        return 2
    count = max(1000, min(a.requests, 20000))
    tmp = Path(tempfile.mkdtemp(prefix="pxetui-flood-"))
    os.chdir(tmp)  # a neutral working directory: `python -m` puts it first on sys.path
    lab = Lab(LabOptions(state_dir=tmp, capture=True))
    boots: list[dict[str, object]] = []
    rows: list[tuple[int, float, float, int]] = []
    try:
        lab.start()
        flood_ns = lab.net.add_peer(f"{FLOOD_IP}/{lab.net.prefix}")
        boot_ns = lab.net.add_peer()
        server = lab.net.server_ip
        print(f"flood check: {count} GET /boot.ipxe?mac={a.mac} from {FLOOD_IP}, one after another, "
              f"against pxetui serve (capture and tracker on, a reader on control.sock); "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        for _ in range(3):
            boots.append(boot_once(boot_ns, "no flood (before)"))
            print(show(boots[-1]), flush=True)
        flood = flood_ns.popen([sys.executable, "-P", "-c", FLOOD_SCRIPT, server, a.mac, str(count),
                                str(BUDGET), FLOOD_IP], stdout=subprocess.PIPE)
        assert flood.stdout is not None
        t0, cpu0, ok = time.monotonic(), ns_cpu_seconds(lab.net.ns), 0
        done = threading.Event()
        sent = [0]  # requests answered so far: which thousand a boot started in

        def boot_beside() -> None:  # back to back, as long as the flood lasts
            while not done.is_set():
                n = sent[0]
                b = boot_once(boot_ns, f"during flood, {n // 1000 * 1000 + 1}-{n // 1000 * 1000 + 1000}")
                if not done.is_set() or b.get("error"):
                    boots.append(b)

        booter = threading.Thread(target=boot_beside, daemon=True)
        booter.start()
        for line in flood.stdout:
            i, good, _ = json.loads(line)
            ok += good
            sent[0] = i + 1
            if (i + 1) % 1000 == 0:
                t1, cpu1 = time.monotonic(), ns_cpu_seconds(lab.net.ns)
                rows.append((i + 1, cpu1 - cpu0, t1 - t0, ok))
                print(f"  requests {i - 998:5d}-{i + 1:5d}: engine CPU {cpu1 - cpu0:6.2f} s per 1,000  "
                      f"{1000 / (t1 - t0):7.1f} requests/s  {1000 - ok} failed", flush=True)
                t0, cpu0, ok = t1, cpu1, 0
        done.set()
        flood.wait(30)
        booter.join(150)
        during = [b for b in boots if "during" in str(b["label"])]
        for label in dict.fromkeys(str(b["label"]) for b in during):
            ts = [float(b["seconds"]) for b in during if b["label"] == label and not b.get("error")]
            bad = [b for b in during if b["label"] == label and b.get("error")]
            why = f", {len(bad)} FAILED: {bad[0]['error']}" if bad else ""
            print(f"  boot {label:<24} {len(ts)} boots, median {statistics.median(ts) if ts else 0:.2f} s, "
                  f"max {max(ts, default=0):.2f} s{why}")
        for _ in range(3):
            boots.append(boot_once(boot_ns, "no flood (after)"))
            print(show(boots[-1]), flush=True)
    finally:
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if rows:
        per = [cpu for _, cpu, _, _ in rows]
        print(f"\nengine CPU per 1,000 requests: first {per[0]:.2f} s, last {per[-1]:.2f} s "
              f"(last/first {per[-1] / per[0] if per[0] else 0:.2f}x; flat is ~1x); "
              f"{rows[-1][0] / sum(r[2] for r in rows):.0f} requests/s overall")
    quiet = [float(b["seconds"]) for b in boots if "no flood" in str(b["label"]) and not b.get("error")]
    loud = [float(b["seconds"]) for b in boots if "during" in str(b["label"]) and not b.get("error")]
    failed = [b for b in boots if b.get("error")]
    if quiet and loud:
        print(f"client boot: median {statistics.median(quiet):.2f} s without the flood, "
              f"{statistics.median(loud):.2f} s beside it "
              f"({statistics.median(loud) / statistics.median(quiet):.2f}x); {len(failed)} boots failed")
    elif failed:
        print(f"{len(failed)} boots failed")
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
