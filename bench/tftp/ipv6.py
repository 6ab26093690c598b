"""TFTP over IPv6 against IPv4 on the same pxetui service, side by side (issue 17.2).

A server and a client namespace joined by a veth (made for the run, removed afterwards, also on
failure), 10.99.0.1 and fd99::1 on the server's eth0; curl fetches one file by TFTP
(lock-step, blksize 1428: the C pump's path, as PXE firmware uses it) over each family in turn,
rounds interleaved so machine noise hits both alike.

    sudo .venv/bin/python bench/tftp/ipv6.py [--rounds 3] [--mib 50]

Prints MB/s (10^6 bytes/s) per round and the medians, and the IPv6/IPv4 ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from netns import NetnsFactory  # noqa: E402
from services import ServiceProc, base_config  # noqa: E402

URLS = {"ipv4": "tftp://10.99.0.1/big.bin", "ipv6": "tftp://[fd99::1]/big.bin"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=50)
    args = ap.parse_args()
    factory = NetnsFactory()
    with tempfile.TemporaryDirectory(prefix="pxetui-bench6-") as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o755)  # the service drops to its own user and reads the root
        root = tmp / "root"
        root.mkdir()
        data = os.urandom(args.mib << 20)
        (root / "big.bin").write_bytes(data)
        want = hashlib.sha256(data).hexdigest()
        svc = None
        try:
            server, client = factory.pair(client_addr="10.99.0.2/24")
            server.run("ip", "-6", "addr", "add", "fd99::1/64", "dev", "eth0", "nodad")
            client.run("ip", "-6", "addr", "add", "fd99::1001/64", "dev", "eth0", "nodad")
            cfg = base_config(tmp, tftp={"root": str(root)}, ipv6={"enabled": True})
            cfg.server_ip6, cfg.prefix6 = "fd99::1", "fd99::/64"
            svc = ServiceProc(server, "tftp", cfg, tmp)
            svc.wait_running()
            rates: dict[str, list[float]] = {k: [] for k in URLS}
            out = tmp / "out.bin"
            for n in range(args.rounds):
                for family, url in URLS.items():
                    t0 = time.monotonic()
                    client.run("curl", "-sS", "-g", "--max-time", "300", "--tftp-blksize", "1428",
                               "-o", str(out), url, timeout=330)
                    secs = time.monotonic() - t0
                    if hashlib.sha256(out.read_bytes()).hexdigest() != want:
                        raise SystemExit(f"round {n + 1} {family}: the file arrived corrupted")
                    rates[family].append(len(data) / secs / 1e6)
                    print(f"round {n + 1} {family}: {rates[family][-1]:.1f} MB/s", flush=True)
            med = {k: statistics.median(v) for k, v in rates.items()}
            print(f"median of {args.rounds}, {args.mib} MiB lock-step blksize 1428: "
                  f"IPv4 {med['ipv4']:.1f} MB/s, IPv6 {med['ipv6']:.1f} MB/s, "
                  f"IPv6/IPv4 {med['ipv6'] / med['ipv4']:.2f}")
        finally:
            if svc is not None:
                svc.stop()
            factory.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
