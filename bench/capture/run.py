"""Capture CPU at a boot-storm packet rate: raw AF_PACKET socket + BPF vs scapy's AsyncSniffer.

    sudo /tmp/venv/bin/python bench/capture/run.py [--seconds 10] [--dhcp-rate 300] [--tftp 20]

In a namespace pair made here (removed afterwards): dnsmasq serves DHCP and TFTP; the client
side runs 20 TFTP downloads in a loop (atftp, blksize 1428, tsize) and sends DHCP DISCOVERs
with unique xids at a fixed rate (dnsmasq offers an address to each). Each backend runs the
capture pipeline (filter -> frames -> Decoder) for the same time; the table shows its CPU as
a share of one core, the packets on the wire, and how many of the bench's DISCOVERs it missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from netns import NetnsFactory  # noqa: E402

XID_BASE = 0x50000000

# A BIOS PXE client's broadcast DISCOVER from its own MAC, as the boot-storm lab builds it.
SENDER = r"""
import socket, sys, time
from pxetui.dhcp.options import DISCOVER
from pxetui.lab.storm import dhcp_frame
n, rate, base = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
start = time.monotonic()
for i in range(n):
    mac = bytes([0x52, 0x54, 0x01]) + (i + 1).to_bytes(3, "big")
    s.send(dhcp_frame(mac, base + i, DISCOVER))
    delay = start + (i + 1) / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(n)
"""


def wire_packets(ns) -> int:  # noqa: ANN001
    r = ns.run("cat", "/sys/class/net/eth0/statistics/rx_packets", "/sys/class/net/eth0/statistics/tx_packets")
    return sum(int(x) for x in r.stdout.split())


def one(kind: str, args: argparse.Namespace, server, client) -> dict:  # noqa: ANN001
    worker = server.python(str(HERE / "worker.py"), kind, "eth0", str(args.seconds + 2), str(XID_BASE),
                           stdout=subprocess.PIPE)
    assert worker.stdout is not None
    json.loads(worker.stdout.readline())  # ready
    time.sleep(1.0)
    loops = []
    for _ in range(args.tftp):
        loops.append(client.popen("timeout", str(args.seconds), "sh", "-c",
                                  "while :; do atftp -g -r big.bin -l /dev/null --option 'blksize 1428' "
                                  "--option 'tsize 0' 10.99.0.1 >/dev/null 2>&1; done"))
    p0 = wire_packets(server)
    n = int(args.dhcp_rate * (args.seconds - 2))
    sent = client.run(sys.executable, "-c", SENDER, str(n), str(args.dhcp_rate), str(XID_BASE),
                      timeout=args.seconds + 30)
    for p in loops:
        p.wait(args.seconds + 10)
    p1 = wire_packets(server)
    res = json.loads(worker.stdout.readline())
    worker.wait(30)
    res["sent"] = int(sent.stdout.strip())
    res["lost"] = res["sent"] - len(res.pop("xids"))
    res["wire_pps"] = (p1 - p0) / args.seconds
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--dhcp-rate", type=float, default=300.0, help="bench DISCOVERs per second")
    ap.add_argument("--tftp", type=int, default=20, help="concurrent TFTP downloads")
    ap.add_argument("--kinds", default="raw,scapy")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 2
    f = NetnsFactory()
    work = Path(f"/tmp/pxetui-bench-capture-{os.getpid()}")
    work.mkdir()
    rows = []
    try:
        server, client = f.pair(server_addr="10.99.0.1/16", client_addr="10.99.0.2/16")
        root = work / "tftp"
        root.mkdir()
        (root / "big.bin").write_bytes(os.urandom(8 << 20))
        server.popen("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
                     "--bind-interfaces", "--dhcp-range=10.99.1.0,10.99.250.250,255.255.0.0",
                     "--dhcp-lease-max=100000", "--no-ping", f"--dhcp-leasefile={work}/leases",
                     "--dhcp-boot=pxelinux.0", "--enable-tftp", f"--tftp-root={root}",
                     "--tftp-max=200", log=work / "dnsmasq.log")
        time.sleep(1.0)
        for kind in args.kinds.split(","):
            rows.append(one(kind, args, server, client))
            time.sleep(1.0)
    finally:
        f.cleanup()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"\n{args.tftp} TFTP downloads + {args.dhcp_rate:.0f} DHCP DISCOVERs/s for {args.seconds:.0f} s\n")
    print(f"{'backend':<8} {'wire pkt/s':>10} {'captured':>9} {'DHCP seen':>9} {'sent':>6} {'lost':>5} "
          f"{'drops':>6} {'CPU % of a core':>16}")
    for r in rows:
        pct = 100.0 * r["cpu_s"] / r["wall_s"]
        print(f"{r['kind']:<8} {r['wire_pps']:>10.0f} {r['frames']:>9} {r['dhcp']:>9} {r['sent']:>6} "
              f"{r['lost']:>5} {r['kernel_drops']:>6} {pct:>15.1f}%")
    by = {r["kind"]: r for r in rows}
    if "raw" in by and "scapy" in by:
        ratio = (by["scapy"]["cpu_s"] / by["scapy"]["wall_s"]) / max(by["raw"]["cpu_s"] / by["raw"]["wall_s"], 1e-9)
        print(f"\nscapy / raw CPU: {ratio:.1f}x")
    ok = all(r["lost"] == 0 for r in rows if r["kind"] == "raw") and \
        all(100.0 * r["cpu_s"] / r["wall_s"] < 25.0 for r in rows if r["kind"] == "raw")
    print("raw socket: " + ("no DHCP lost and under a quarter of a core" if ok else "TARGET MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
