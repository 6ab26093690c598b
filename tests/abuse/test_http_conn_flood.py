"""HTTP connection flood against the real service (docs/SECURITY.md, "TFTP and HTTP limits").

One host holds 16 keep-alive connections and opens 284 more (bounded), then runs slowloris
connections (one header byte a second) and slow readers of a large file. Each is bounded:
http.max_per_client answers 503 with Retry-After past 16 connections, a request head must be
complete within http.header_timeout (408, closed), a response that moves under http.min_rate
over http.min_rate_window is cut, and the connections freed serve the same host again. Each
limit is a LimitHit, once per interval rather than per connection. A legitimate curl from
another address of the same namespace gets its file, byte-exact, during the attack.

Server 10.99.0.1; the attacker 10.99.0.2; the legitimate client 10.99.0.3.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from netns import Netns, require_tool, wait_for
from services import ServiceProc, base_config

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

SERVER = "10.99.0.1"
ATTACKER, LEGIT = "10.99.0.2", "10.99.0.3"
HELD, FLOOD, LORIS, SLOW = 16, 284, 10, 4
BIG = 8 << 20

# In the client namespace, phase by phase; one JSON line after each, and it waits for a line on
# stdin before the next. Every socket has a timeout and every phase a deadline.
ATTACK = r"""
import json, socket, sys, threading, time
server, src, held_n, flood_n, loris_n, slow_n = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])

def conn(rcvbuf=0):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect((server, 80))
    return s

def answer(s):
    # The response head and body up to Content-Length (or EOF); "" if closed at once.
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data.decode("latin-1")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    while length and len(body) < length[0]:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode("latin-1")

def status(text):
    return text.split(" ", 2)[1] if text.startswith("HTTP/1.1 ") else "closed"

def say(obj):
    print(json.dumps(obj), flush=True)
    sys.stdin.readline()

# 1. hold: keep-alive connections that each finished a request and now sit idle.
held = []
for _ in range(held_n):
    s = conn()
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    held.append((s, status(answer(s))))
# 2. flood: more connections from the same address, each asking once.
flood = {}
retry_after = 0
for _ in range(flood_n):
    try:
        s = conn()
        s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        text = answer(s)
        s.close()
    except OSError as exc:
        text = type(exc).__name__
    flood[status(text)] = flood.get(status(text), 0) + 1
    retry_after += "\r\nRetry-After: " in text
say({"held": [st for _, st in held], "flood": flood, "retry_after": retry_after})
for s, _ in held:
    s.close()

# 3. slowloris and slow readers at once.
results = {"loris": [], "slow": []}
lock = threading.Lock()

def loris():
    s = conn()
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    sent, got = 0, b""
    try:
        for _ in range(30):  # one byte a second, 30 s at most: the server must cut it first
            time.sleep(1)
            s.sendall(b"a")
            sent += 1
    except OSError:
        pass
    try:
        got = s.recv(4096)
    except OSError:
        pass
    s.close()
    with lock:
        results["loris"].append({"bytes_sent": sent, "status": status(got.decode("latin-1"))})

def slow():
    s = conn(rcvbuf=4096)
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    got, closed = 0, False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # 256 bytes a second
            chunk = s.recv(256)
            if not chunk:
                closed = True
                break
            got += len(chunk)
            time.sleep(1)
    except OSError:
        closed = True
    s.close()
    with lock:
        results["slow"].append({"read": got, "closed_by_server": closed})

threads = [threading.Thread(target=loris) for _ in range(loris_n)]
threads += [threading.Thread(target=slow) for _ in range(slow_n)]
for t in threads:
    t.start()
for t in threads:
    t.join(90)

# 4. the freed connections serve this host again.
s = conn()
s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
results["again"] = status(answer(s))
s.close()
say(results)
"""


def legit_get(client: Netns, tmp: Path, digest: str, name: str) -> None:
    out = tmp / f"legit-{name}"
    client.run("curl", "-sS", "--fail", "--max-time", "60", "--interface", LEGIT, "-o", str(out),
               f"http://{SERVER}/big.bin", timeout=90)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_one_host_cannot_hold_every_connection(netns, tmp_path: Path):
    require_tool("curl")
    server, client = netns.pair(server_addr=f"{SERVER}/24", client_addr=f"{ATTACKER}/24")
    client.run("ip", "addr", "add", f"{LEGIT}/24", "dev", "eth0")
    root = tmp_path / "http"
    root.mkdir()
    data = os.urandom(BIG)
    (root / "big.bin").write_bytes(data)
    (root / "small.txt").write_bytes(b"hello\n")
    digest = hashlib.sha256(data).hexdigest()
    # Shorter windows than the defaults (10 s head, 1 KiB/s over 30 s) to keep the test short.
    cfg = base_config(tmp_path, http={"root": str(root), "header_timeout": 3.0, "min_rate": 1024,
                                      "min_rate_window": 3.0})
    svc = ServiceProc(server, "http", cfg, tmp_path)
    attack = None
    try:
        svc.wait_running()
        attack = client.popen(sys.executable, "-c", ATTACK, SERVER, ATTACKER, str(HELD), str(FLOOD),
                              str(LORIS), str(SLOW), stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        assert attack.stdout is not None and attack.stdin is not None

        # Past 16 connections from one address: 503 with Retry-After, every one of them.
        flooded = json.loads(attack.stdout.readline())
        assert flooded["held"] == ["200"] * HELD, flooded
        assert flooded["flood"] == {"503": FLOOD} and flooded["retry_after"] == FLOOD, flooded
        hits = svc.wait_event("LimitHit", limit="http.max_per_client")
        assert hits["ip"] == ATTACKER
        assert len(svc.of("LimitHit", limit="http.max_per_client")) <= 2  # once per interval
        assert not svc.of("TransferFailed", status=503)  # not one event per refused connection
        legit_get(client, tmp_path, digest, "during-flood")

        # Slowloris cut at the head timeout (408), slow readers cut under the minimum rate.
        attack.stdin.write(b"go\n")
        attack.stdin.flush()
        cut = json.loads(attack.stdout.readline())  # bounded: each connection has a deadline
        assert len(cut["loris"]) == LORIS and len(cut["slow"]) == SLOW, cut
        for r in cut["loris"]:
            assert r["status"] in ("408", "closed") and r["bytes_sent"] < 30, r
        assert any(r["status"] == "408" for r in cut["loris"]), cut
        for r in cut["slow"]:
            assert r["closed_by_server"] and r["read"] < BIG, r
        assert cut["again"] == "200"
        assert svc.wait_event("LimitHit", limit="http.header_timeout")["ip"] == ATTACKER
        assert svc.wait_event("LimitHit", limit="http.min_rate")["ip"] == ATTACKER
        slow = [e for e in svc.of("TransferFailed", ip=ATTACKER, path="big.bin")]
        assert len(slow) == SLOW and all("under http.min_rate=1024" in e["reason"] for e in slow), slow
        legit_get(client, tmp_path, digest, "after")
        wait_for(lambda: svc.of("TransferFinished", ip=LEGIT, path="big.bin"), what="the legit transfers")
    finally:
        if attack is not None:
            if attack.stdin is not None:
                attack.stdin.close()
            client.stop(attack)
        svc.stop()
