"""TFTP and HTTP answer on the configured interface only (docs/SECURITY.md, "Bound to one
interface").

The server namespace has two interfaces, eth0 (10.99.0.1, the configured one) and eth1
(10.98.0.1). A client behind eth1 with a route to 10.99.0.1 through it reaches that address
(Linux accepts a packet for any local address on any interface), so a socket bound by address
alone serves it, as a control listener shows; bound to eth0 with SO_BINDTODEVICE, TFTP stays silent
and HTTP refuses the connection. A client on eth0 is served meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from netns import NetnsFactory, require_tool, wait_for
from services import ServiceProc, base_config

pytestmark = pytest.mark.root

SERVER = "10.99.0.1"

# In a client namespace: one RRQ (no options) to the server's port 69, then up to 3 s for any
# answer; prints {"answer": "DATA"|"ERROR ..."|"none"|"refused"}.
PROBE = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"\0\1f.bin\0octet\0", (sys.argv[1], 69))
try:
    pkt, _ = s.recvfrom(2048)
    ans = "DATA" if pkt[:2] == b"\0\3" else "ERROR " + pkt[4:-1].decode("ascii", "replace")
except TimeoutError:
    ans = "none"
except ConnectionRefusedError:
    ans = "refused"
print(json.dumps({"answer": ans}))
"""

# In the server namespace: UDP and TCP on 10.99.0.1:9999, bound by address only (the control).
CONTROL = r"""
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("10.99.0.1", 9999))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("10.99.0.1", 9999))
t.listen()
def tcp():
    while True:
        c, _ = t.accept()
        c.sendall(b"tcp ok")
        c.close()
threading.Thread(target=tcp, daemon=True).start()
u.settimeout(30)
while True:
    data, addr = u.recvfrom(100)
    u.sendto(b"udp ok", addr)
"""

# In a client namespace: both control sockets answer.
REACH = r"""
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(b"hi", (sys.argv[1], 9999))
udp = u.recvfrom(100)[0]
with socket.create_connection((sys.argv[1], 9999), timeout=3) as c:
    print(udp.decode(), c.recv(100).decode())
"""


def test_tftp_and_http_serve_only_the_configured_interface(netns: NetnsFactory, tmp_path: Path):
    require_tool("curl")
    server, near = netns.pair(server_addr=f"{SERVER}/24", client_addr="10.99.0.2/24")
    far = netns.new("pxf")
    netns.link(server, far, "10.98.0.1/24", "10.98.0.2/24", a_if="eth1")
    far.run("ip", "route", "add", "10.99.0.0/24", "via", "10.98.0.1")
    # The control: the far side reaches sockets on the configured address bound by address only.
    control = server.popen(sys.executable, "-c", CONTROL)
    try:
        for proto in ("-lun", "-ltn"):
            wait_for(lambda p=proto: server.run("ss", "-H", p, "sport = :9999", check=False).stdout.strip(),
                     what="the control listener")
        assert far.run(sys.executable, "-c", REACH, SERVER, timeout=20).stdout.split() == [
            "udp", "ok", "tcp", "ok"]
    finally:
        server.stop(control)

    tftp_root, http_root = tmp_path / "tftp", tmp_path / "http"
    tftp_root.mkdir()
    http_root.mkdir()
    data = os.urandom(200_000)
    for root in (tftp_root, http_root):
        (root / "f.bin").write_bytes(data)
    cfg = base_config(tmp_path, interface="eth0", tftp={"root": str(tftp_root)},
                      http={"root": str(http_root)})
    tftp = ServiceProc(server, "tftp", cfg, tmp_path)
    http = ServiceProc(server, "http", cfg, tmp_path)
    try:
        tftp.wait_running()
        http.wait_running()

        def probe(ns: object) -> str:
            r = ns.run(sys.executable, "-c", PROBE, SERVER, timeout=20)  # type: ignore[attr-defined]
            return str(json.loads(r.stdout)["answer"])

        # eth0: served, over TFTP (from the per-transfer socket) and HTTP.
        assert probe(near) == "DATA"
        near.run("curl", "-sS", "--max-time", "30", "-o", str(tmp_path / "t.bin"), f"tftp://{SERVER}/f.bin")
        near.run("curl", "-sS", "--max-time", "30", "-o", str(tmp_path / "h.bin"), f"http://{SERVER}/f.bin")
        for out in ("t.bin", "h.bin"):
            assert hashlib.sha256((tmp_path / out).read_bytes()).digest() == hashlib.sha256(data).digest()

        # eth1: no TFTP answer (the kernel finds no socket for it: silence or port unreachable)
        # and no HTTP connection (refused), bounded by the probe's and curl's own timeouts.
        assert probe(far) in ("none", "refused")
        r = far.run("curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                    f"http://{SERVER}/f.bin", check=False)
        assert r.returncode in (7, 28) and r.stdout == "000", (r.returncode, r.stdout, r.stderr)
        # Nothing was served to it: every transfer the services report is the near client's.
        for svc in (tftp, http):
            svc.wait_event("TransferFinished", ip="10.99.0.2", path="f.bin")
            for ev in svc.of("TransferStarted") + svc.of("TransferFailed"):
                assert ev.get("ip") == "10.99.0.2", ev
    finally:
        tftp.stop()
        http.stop()
