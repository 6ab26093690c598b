"""Helpers for the DHCP service tests: a packet-level client that runs inside a namespace."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from netns import Netns

from pxetui.dhcp.codec import Packet, build, parse

# Runs inside the client namespace: send datagrams from one port on eth0, print every reply
# that arrives on that port within `wait` seconds as JSON lines.
CLIENT_TOOL = r'''
import json, socket, sys, time
spec = json.loads(sys.stdin.read())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, spec["iface"].encode())
s.bind((spec.get("bind", "0.0.0.0"), spec["sport"]))
for hexdata in spec["packets"]:
    s.sendto(bytes.fromhex(hexdata), tuple(spec["dst"]))
deadline = time.monotonic() + spec["wait"]
got = 0
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        data, src = s.recvfrom(4096)
    except TimeoutError:
        break
    print(json.dumps({"src": list(src), "data": data.hex()}), flush=True)
    got += 1
    if spec.get("expect") and got >= spec["expect"]:
        break
'''


def exchange(ns: Netns, packets: list[Packet | bytes], dst: tuple[str, int], sport: int = 68,
             wait: float = 3.0, iface: str = "eth0", expect: int | None = None,
             bind: str = "0.0.0.0") -> list[tuple[Packet, tuple[str, int]]]:
    """Send `packets` from `sport` (and address `bind`) inside `ns`; the parsed replies and who
    sent them.

    Listens `wait` seconds, or until `expect` replies have arrived."""
    spec = {"iface": iface, "sport": sport, "dst": list(dst), "wait": wait, "expect": expect,
            "bind": bind, "packets": [(p if isinstance(p, bytes) else build(p)).hex() for p in packets]}
    r = ns.run(sys.executable, "-c", CLIENT_TOOL, timeout=wait + 20, input=json.dumps(spec))
    out = []
    for line in r.stdout.splitlines():
        d: dict[str, Any] = json.loads(line)
        out.append((parse(bytes.fromhex(d["data"])), (d["src"][0], d["src"][1])))
    return out


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


# busybox udhcpc's script: configure the address (so a renew is a real unicast RENEWING
# request) and log "<event> <address> <server id>".
UDHCPC_SCRIPT = """
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
esac
echo "$1 $ip $serverid" >> "{log}"
"""


def udhcpc_script(workdir: Path, name: str = "udhcpc") -> tuple[Path, Path]:
    """(script, log) for `busybox udhcpc -s script`."""
    log = workdir / f"{name}.log"
    return write_script(workdir / f"{name}.sh", UDHCPC_SCRIPT.format(log=log)), log


def bound_address(log: Path) -> str | None:
    """The address of the last `bound` line in a udhcpc_script log, if any."""
    if not log.exists():
        return None
    lines = [ln.split() for ln in log.read_text().splitlines() if ln.startswith("bound ")]
    return lines[-1][1] if lines else None
