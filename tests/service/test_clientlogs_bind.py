"""The `logs` service takes lines from the configured interface only (docs/SECURITY.md, "Bound
to one interface"), survives garbage, and closes syslog TCP connections past its cap.

Server: eth0 10.99.0.1 (configured) and eth1 10.98.0.1. A client behind eth1 with a route to
10.99.0.1 reaches that address (Linux accepts a packet for any local address on any interface);
the service's sockets, bound to eth0 with SO_BINDTODEVICE, never see its lines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from netns import NetnsFactory, wait_for
from services import ServiceProc, base_config

pytestmark = pytest.mark.root

SERVER = "10.99.0.1"

# In a client namespace: each argv[2:] word is sent as one UDP datagram to argv[1]:514, then
# "nc:<text>" words to the netconsole port; a TCP syslog line last (prints "tcp refused" or "tcp sent").
SEND = r"""
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for word in sys.argv[2:]:
    port = 6666 if word.startswith("nc:") else 514
    u.sendto(word.removeprefix("nc:").replace("_", " ").encode(), (sys.argv[1], port))
try:
    with socket.create_connection((sys.argv[1], 514), timeout=3) as c:
        c.sendall(b"<13>Dec  7 09:00:00 tcptag: over tcp from %s\n" % sys.argv[2][:12].encode())
    print("tcp sent")
except OSError:
    print("tcp refused")
"""

# In a client namespace: open argv[2] TCP connections and hold them for argv[3] seconds, then
# send one line on each (prints how many were still open to send).
HOLD = r"""
import socket, sys, time
conns = [socket.create_connection((sys.argv[1], 514), timeout=3) for _ in range(int(sys.argv[2]))]
time.sleep(float(sys.argv[3]))
sent = 0
for i, c in enumerate(conns):
    try:
        c.sendall(b"<13>Dec  7 09:00:00 held: connection %d\n" % i)
        c.settimeout(1)
        if c.recv(1) == b"":  # closed by the server
            continue
    except socket.timeout:
        sent += 1  # still open: the server keeps reading
    except OSError:
        continue
print(sent)
"""


def test_logs_bound_to_the_interface_survive_garbage_and_cap_tcp(netns: NetnsFactory, tmp_path: Path):
    server, near = netns.pair(server_addr=f"{SERVER}/24", client_addr="10.99.0.2/24")
    far = netns.new("pxf")
    netns.link(server, far, "10.98.0.1/24", "10.98.0.2/24", a_if="eth1")
    far.run("ip", "route", "add", "10.99.0.0/24", "via", "10.98.0.1")
    cfg = base_config(tmp_path, interface="eth0", logs={"enabled": True, "max_connections": 2})
    logs = ServiceProc(server, "logs", cfg, tmp_path)
    try:
        logs.wait_running()
        r = far.run(sys.executable, "-c", SEND, SERVER, "<13>from_far", "nc:far_console", timeout=20)
        assert r.stdout.split() == ["tcp", "refused"]
        r = near.run(sys.executable, "-c", SEND, SERVER, "<999>garbage", "<13>from_near", "nc:near_console",
                     timeout=20)
        assert r.stdout.split() == ["tcp", "sent"]
        logs.wait_event("ClientLog", message="over tcp from <999>garbage")
        logs.wait_event("ClientLog", message="near console", source="netconsole")
        assert logs.wait_event("ClientLog", message="from near")["ip"] == "10.99.0.2"
        warn = logs.wait_event("Log", level_name="warning", ip="10.99.0.2")
        assert "bad syslog" in warn["message"] and "PRI" in warn["message"]
        # Nothing from the far side reached the service.
        assert all(e["ip"] == "10.99.0.2" for e in logs.of("ClientLog"))

        # Three connections held at once with logs.max_connections = 2: one is closed at once.
        r = near.run(sys.executable, "-c", HOLD, SERVER, "3", "1.0", timeout=20)
        assert r.stdout.strip() == "2"
        hit = logs.wait_event("LimitHit", limit="logs.max_connections")
        assert hit["ip"] == "10.99.0.2"
    finally:
        assert logs.stop() is not None


# In the server namespace: a TCP listener on 514 that is not ours (a host's own rsyslog).
HOLD_TCP = r"""
import socket, time
t = socket.socket()
t.bind(("10.99.0.1", 514))
t.listen()
time.sleep(60)
"""


def test_tcp_514_taken_costs_only_tcp(netns: NetnsFactory, tmp_path: Path):
    server, near = netns.pair(server_addr=f"{SERVER}/24", client_addr="10.99.0.2/24")
    holder = server.popen(sys.executable, "-c", HOLD_TCP)
    cfg = base_config(tmp_path, interface="eth0", logs={"enabled": True})
    logs = None
    try:
        wait_for(lambda: server.run("ss", "-H", "-ltn", "sport = :514", check=False).stdout.strip(),
                 what="the other TCP listener")
        logs = ServiceProc(server, "logs", cfg, tmp_path)
        logs.wait_running()
        err = logs.wait_event("Log", level_name="error")
        assert "syslog over TCP 10.99.0.1:514 is off" in err["message"]
        near.run(sys.executable, "-c", SEND, SERVER, "<13>udp_still_works", timeout=20)
        assert logs.wait_event("ClientLog", message="udp still works")["ip"] == "10.99.0.2"
    finally:
        if logs is not None:
            logs.stop()
        server.stop(holder)
