"""TFTP slot flood against the real service (docs/SECURITY.md, "TFTP and HTTP limits").

One host opens hundreds of transfers and never acknowledges an OACK, asks for timeout=255 and
goes silent, and (from many addresses) opens 1,500 lock-step transfers at once. Each is bounded:
tftp.max_per_client refuses past the cap with an ERROR, an unacknowledged OACK frees its slot
after tftp.oack_timeout and a silent client's after tftp.idle_timeout whatever it asked for,
and the C pump runs on at most tftp.pump_threads threads (the rest stay in the event loop).
Each limit is reported as LimitHit, once per interval rather than per request. A legitimate
client at another address of the same namespace downloads its file, byte-exact, meanwhile.

Server 10.99.0.1; the attacker 10.99.0.2 (and 10.99.0.10-59); the legitimate client 10.99.0.3.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from netns import Netns, NetnsFactory, require_tool, sh, wait_for
from services import ServiceProc, base_config

from pxetui.tftp.server import UNCONFIRMED_AGE, UNCONFIRMED_FLOOR
from pxetui.tftp.workers import worker_count

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

Hold = Callable[..., dict[str, Any]]

SERVER = "10.99.0.1"
ATTACKER, LEGIT = "10.99.0.2", "10.99.0.3"

# In the client namespace: one RRQ per socket (sources x per_source sockets), resent to the
# ones still unanswered every 2 s (as a client would) until `wait` seconds; then one JSON line
# with the first answer of each ({"oack", "data", "error": {message: n}, "none"}) and the
# sockets held open, never acknowledging, until stdin closes or `hold` seconds pass.
FLOOD = r"""
import json, resource, select, socket, sys, time
a = json.loads(sys.argv[1])
want = len(a["sources"]) * a["per_source"] + 64
resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, 1024), max(want, 1024)))
opts = b"".join(k.encode() + b"\0" + str(v).encode() + b"\0" for k, v in a["options"].items())
rrq = b"\0\1" + a["file"].encode() + b"\0octet\0" + opts
socks = []
for src in a["sources"]:
    for _ in range(a["per_source"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.setblocking(False)
        socks.append(s)
first = {}
poller = select.poll()
for s in socks:
    poller.register(s, select.POLLIN)
by_fd = {s.fileno(): s for s in socks}
deadline, resend_at = time.monotonic() + a["wait"], 0.0
while len(first) < len(socks) and time.monotonic() < deadline:
    if time.monotonic() >= resend_at:
        for i, s in enumerate(socks):
            if s.fileno() not in first:
                try:
                    s.sendto(rrq, (a["server"], 69))
                except BlockingIOError:
                    pass
                if i % 100 == 99:
                    time.sleep(0.01)  # a burst the listener's buffer can take
        resend_at = time.monotonic() + 2.0
    for fd, _ in poller.poll(100):
        s = by_fd[fd]
        try:
            pkt = s.recv(2048)
        except OSError:
            continue
        if fd not in first:
            first[fd] = pkt
out = {"oack": 0, "data": 0, "error": {}, "none": len(socks) - len(first)}
for pkt in first.values():
    op = pkt[1]
    if op == 6:
        out["oack"] += 1
    elif op == 3:
        out["data"] += 1
    else:
        msg = pkt[4:].split(b"\0")[0].decode("ascii", "replace")
        out["error"][msg] = out["error"].get(msg, 0) + 1
print(json.dumps(out), flush=True)
select.select([sys.stdin], [], [], a["hold"])
"""

# In the client namespace: RRQ with timeout=255, ACK the OACK, take block 1, then silence with
# the port open (the client that used to hold a slot ~21 minutes); exits after `hold` seconds.
SILENT = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.settimeout(5)
s.sendto(b"\0\1big.bin\0octet\0blksize\0" + b"1428\0timeout\0" + b"255\0", (sys.argv[2], 69))
pkt, addr = s.recvfrom(2048)
assert pkt[:2] == b"\0\6" and b"timeout\0" + b"255\0" in pkt, pkt
s.connect(addr)
s.send(b"\0\4\0\0")
pkt = s.recv(2048)
assert pkt[:4] == b"\0\3\0\1", pkt[:4]
print("silent", flush=True)
time.sleep(float(sys.argv[3]))
"""

# In the client namespace: an RRQ with no options (the data phase starts at once), never
# acknowledged, as from a forged source address; prints how many DATA packets came within
# `listen` seconds and whether an ERROR ended it.
FORGED = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.sendto(b"\0\1big.bin\0octet\0", (sys.argv[2], 69))
data = errors = 0
end = time.monotonic() + float(sys.argv[3])
while (left := end - time.monotonic()) > 0:
    s.settimeout(left)
    try:
        pkt = s.recv(2048)
    except TimeoutError:
        break
    data += pkt[:2] == b"\0\3"
    errors += pkt[:2] == b"\0\5"
print(json.dumps({"data": data, "errors": errors}), flush=True)
"""


def flood(client: Netns, sources: list[str], per_source: int, options: dict[str, object], wait: float,
          hold: float) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    args = {"server": SERVER, "sources": sources, "per_source": per_source, "file": "big.bin",
            "options": options, "wait": wait, "hold": hold}
    p = client.popen(sys.executable, "-c", FLOOD, json.dumps(args), stdout=subprocess.PIPE,
                     stdin=subprocess.PIPE)
    assert p.stdout is not None
    line = p.stdout.readline()  # bounded: the script answers within `wait` seconds
    assert line, f"the flood script ended without a result ({p.wait(5)})"
    return p, json.loads(line)


def end(client: Netns, p: subprocess.Popen[bytes]) -> None:
    if p.stdin is not None:
        p.stdin.close()  # the script closes its sockets and exits
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        client.stop(p)


def legit_fetch(client: Netns, tmp: Path, digest: str, name: str) -> None:
    out = tmp / f"legit-{name}"
    client.run("curl", "-sS", "--max-time", "60", "--interface", LEGIT, "--tftp-blksize", "1428",
               "-o", str(out), f"tftp://{SERVER}/big.bin", timeout=90)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def start(netns: NetnsFactory, tmp: Path, **tftp: object) -> tuple[Netns, Netns, ServiceProc, str]:
    require_tool("curl")
    server, client = netns.pair(server_addr=f"{SERVER}/24", client_addr=f"{ATTACKER}/24")
    client.run("ip", "addr", "add", f"{LEGIT}/24", "dev", "eth0")
    root = tmp / "root"
    root.mkdir()
    data = os.urandom(1_000_000)
    (root / "big.bin").write_bytes(data)
    svc = ServiceProc(server, "tftp", base_config(tmp, tftp={"root": str(root), **tftp}), tmp)
    svc.wait_running()
    return server, client, svc, hashlib.sha256(data).hexdigest()


def test_one_host_cannot_hold_every_slot(netns: NetnsFactory, tmp_path: Path):
    server, client, svc, digest = start(netns, tmp_path, idle_timeout=6.0)
    procs = worker_count()  # the service and its workers share one count per client address
    cap = 8  # tftp.max_per_client's default
    held: list[subprocess.Popen[bytes]] = []
    try:
        # 200 requests with options from one host, never acknowledging an OACK.
        p, res = flood(client, [ATTACKER], 200, {"blksize": 1428, "timeout": 255}, wait=15, hold=60)
        held.append(p)
        refused = res["error"].get("too many transfers from your address", 0)
        assert res["none"] == 0 and res["data"] == 0, res
        assert 1 <= res["oack"] <= cap + procs - 1, res  # over by at most one per other process
        assert refused == 200 - res["oack"], res
        hits = wait_for(lambda: svc.of("LimitHit", limit="tftp.max_per_client"), what="LimitHit")
        assert all(h["ip"] == ATTACKER and h["service"] == "tftp" for h in hits)
        # Reported once per interval (and process), not once per refused request.
        assert len(svc.of("LimitHit", limit="tftp.max_per_client")) <= 2 * procs
        assert not [e for e in svc.of("TransferFailed") if "too many" in e.get("reason", "")]

        # A legitimate client at another address is served during the attack.
        legit_fetch(client, tmp_path, digest, "during")

        # The unacknowledged OACKs free their slots after tftp.oack_timeout (5 s), and the
        # attacker gets a slot again (bounded wait).
        wait_for(lambda: len(svc.of("TransferFailed", ip=ATTACKER)) >= res["oack"], timeout=30,
                 what="the unacknowledged OACKs dropped")
        for ev in svc.of("TransferFailed", ip=ATTACKER):
            assert ev["reason"].startswith("timed out waiting for ACK of the OACK"), ev
        assert svc.of("LimitHit", limit="tftp.oack_timeout", ip=ATTACKER)
        p2, again = flood(client, [ATTACKER], 1, {"blksize": 1428}, wait=10, hold=60)
        held.append(p2)
        assert again["oack"] == 1, again

        # timeout=255, OACK acknowledged, block 1 taken, then silence: freed within
        # tftp.idle_timeout (6 s here), not after 5 x 255 s.
        silent = client.popen(sys.executable, "-c", SILENT, ATTACKER, SERVER, "120", stdout=subprocess.PIPE)
        held.append(silent)
        assert silent.stdout is not None and silent.stdout.readline() == b"silent\n"
        fail = wait_for(lambda: [e for e in svc.of("TransferFailed", ip=ATTACKER)
                                 if e["reason"].startswith("timed out waiting for ACK of block")],
                        timeout=40, what="the silent timeout=255 transfer dropped")[0]
        assert fail["bytes_done"] < 1_000_000
        hit = svc.wait_event("LimitHit", limit="tftp.idle_timeout", ip=ATTACKER)
        assert "timeout=255" in hit["message"]
        legit_fetch(client, tmp_path, digest, "after")
    finally:
        for p in held:
            end(client, p)
        svc.stop()


def threads_of(server: Netns) -> dict[int, int]:
    """Threads of every TFTP process in the server namespace (the service and its workers)."""
    out = {}
    for pid in sh("ip", "netns", "pids", server.name).stdout.split():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if b"pxetui.service\0tftp" in cmd or b"pxetui.tftp.workers" in cmd:
            out[int(pid)] = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("Threads:")))
    return out


def test_lock_step_flood_runs_on_a_bounded_pool(netns: NetnsFactory, tmp_path: Path):
    pool = 4
    server, client, svc, digest = start(netns, tmp_path, pump_threads=pool, max_per_client=64,
                                        max_transfers=4000, idle_timeout=30.0)
    sources = [f"10.99.0.{i}" for i in range(10, 60)]
    for ip in sources:
        client.run("ip", "addr", "add", f"{ip}/24", "dev", "eth0")
    idle = threads_of(server)
    assert idle and len(idle) == worker_count()
    held: list[subprocess.Popen[bytes]] = []
    try:
        # 1,500 lock-step transfers (no options: the data phase starts at once) of a file for
        # the C pump, none ever acknowledged: each would hold a pump thread for its whole life.
        p, res = flood(client, sources, 30, {}, wait=40, hold=90)
        held.append(p)
        assert res == {"oack": 0, "data": 1500, "error": {}, "none": 0}, res
        samples = [threads_of(server) for _ in range(5)]
        most = max(n for s in samples for n in s.values())
        assert most <= pool + max(idle.values()) + 2, (idle, samples)
        # The pool was full, so the rest stayed in Python; said once per interval.
        hits = svc.of("LimitHit", limit="tftp.pump_threads")
        assert 1 <= len(hits) <= 2 * worker_count()
        # A legitimate client is served meanwhile (in the event loop: every thread is busy).
        legit_fetch(client, tmp_path, digest, "pool")
        assert max(threads_of(server).values()) <= pool + max(idle.values()) + 2
    finally:
        for p in held:
            end(client, p)
        svc.stop()


def test_a_request_never_acknowledged_ends_after_oack_timeout(netns: NetnsFactory, tmp_path: Path):
    # No options, so no OACK: before block 1 is acknowledged the client is unknown (a forged
    # source cannot answer), and tftp.oack_timeout (5 s), not the 20 s give-up of a client that
    # once answered, ends it: block 1 goes out at 0, 1 and 3 s, not 8 times over 20 s to
    # whoever the source address names, and the slot is free again within seconds.
    server, client, svc, digest = start(netns, tmp_path)
    try:
        r = client.run(sys.executable, "-c", FORGED, ATTACKER, SERVER, "12", timeout=60)
        seen = json.loads(r.stdout)
        assert 1 <= seen["data"] <= 3 and seen["errors"] == 1, seen
        fail = svc.wait_event("TransferFailed", ip=ATTACKER)
        assert fail["reason"].startswith("timed out waiting for ACK of block 1"), fail
        hit = svc.wait_event("LimitHit", limit="tftp.oack_timeout", ip=ATTACKER)
        assert "never acknowledged block 1 of big.bin" in hit["message"], hit
        # A client that answers is held to the idle limit as before: served byte-exact.
        legit_fetch(client, tmp_path, digest, "after")
    finally:
        svc.stop()


@contextlib.contextmanager
def full_table(netns: NetnsFactory, tmp: Path, total: int) -> Iterator[tuple[Netns, ServiceProc, str, Hold]]:
    """A TFTP service with `total` slots, all of which one host may take (oack_timeout 20 s),
    and `hold(sources, per_source, options, wait)`, a flood of requests never acknowledged
    (flood's result); every flood ended and the service stopped afterwards."""
    _server, client, svc, digest = start(netns, tmp, max_transfers=total, max_per_client=total,
                                         oack_timeout=20.0)
    held: list[subprocess.Popen[bytes]] = []

    def hold(sources: list[str], per_source: int, options: dict[str, object], wait: float = 15) -> dict[str, Any]:
        p, res = flood(client, sources, per_source, options, wait=wait, hold=60)
        held.append(p)
        return res
    try:
        yield client, svc, digest, hold
    finally:
        for p in held:
            end(client, p)
        svc.stop()


def no_real_transfer_dropped(svc: ServiceProc) -> None:
    assert not [e for e in svc.of("TransferFailed", ip=LEGIT)], "a real client's transfer was dropped"


def test_a_full_table_of_unacknowledged_transfers_makes_room_for_a_real_client(netns: NetnsFactory,
                                                                               tmp_path: Path):
    # Every slot held by requests nobody acknowledges (as from forged sources), for longer than
    # a real client's round trip: a new request ends the oldest of them, with no ERROR sent to
    # its source, instead of going unanswered until tftp.oack_timeout (here 20 s) frees one.
    total = 24  # enough that every TFTP process holds some (the kernel spreads them by hash)
    with full_table(netns, tmp_path, total) as (client, svc, digest, hold):
        # Half lock-step with no options (block 1 at once, the C pump), half never ACKing an OACK.
        plain = hold([ATTACKER], total // 2, {})
        oack = hold([ATTACKER], total // 2, {"blksize": 1428})
        assert plain["data"] + oack["oack"] >= total - worker_count() + 1, (plain, oack)
        time.sleep(2 * UNCONFIRMED_AGE)  # older than a real client's first acknowledgement
        legit_fetch(client, tmp_path, digest, "first")
        legit_fetch(client, tmp_path, digest, "second")
        dropped = [e for e in svc.of("TransferFailed", ip=ATTACKER)
                   if "while the server was full (tftp.max_transfers)" in e["reason"]]
        assert dropped, svc.of("TransferFailed")
        hit = svc.wait_event("LimitHit", limit="tftp.max_transfers")
        assert "never acknowledged after" in hit["message"] and ATTACKER in hit["message"], hit
        no_real_transfer_dropped(svc)


def test_a_full_table_waits_only_as_long_as_real_clients_take_to_answer(netns: NetnsFactory, tmp_path: Path):
    # Once real clients have acknowledged within a few ms, a transfer nobody acknowledged gives
    # way to a new request after UNCONFIRMED_MARGIN times the slowest of them (at least
    # UNCONFIRMED_FLOOR), not the fixed UNCONFIRMED_AGE: a forged flood must then come ~10x
    # faster to keep the table full. Here the held transfers are younger than UNCONFIRMED_AGE,
    # so with the fixed wait the real client's request went unanswered until they were.
    total = 24
    with full_table(netns, tmp_path, total) as (client, svc, digest, hold):
        legit_fetch(client, tmp_path, digest, "before")  # its first ACK is the sample (shared by every process)
        # its slot is free again only once the server has read curl's last ACK
        svc.wait_event("TransferFinished", ip=LEGIT)
        oack = hold([ATTACKER], total, {"blksize": 1428})
        assert oack["oack"] == total, oack  # every slot held, none refused
        time.sleep(3 * UNCONFIRMED_FLOOR)  # past the wait a few-ms first ACK sets, short of UNCONFIRMED_AGE
        legit_fetch(client, tmp_path, digest, "during")
        # the service's events come through a pipe: the hit may arrive after curl is done
        hits = wait_for(lambda: [h for h in svc.of("LimitHit", limit="tftp.max_transfers")
                                 if "never acknowledged after" in h["message"]], timeout=10,
                        what="a LimitHit for the dropped transfer")
        age = float(hits[0]["message"].split("never acknowledged after ", 1)[1].split(" s", 1)[0])
        assert UNCONFIRMED_FLOOR <= age < UNCONFIRMED_AGE, hits[0]["message"]
        no_real_transfer_dropped(svc)


def test_a_full_table_leaves_a_request_unanswered_and_its_resend_gets_in(netns: NetnsFactory, tmp_path: Path):
    # Every slot held by transfers too young to drop (no real client has answered yet, so the
    # wait is UNCONFIRMED_AGE): a new request gets no answer at all, neither an ERROR (which
    # ends a PXE ROM's boot) nor a packet to the address it names (maybe forged); the client
    # resends, as RFC 1350 clients do, and gets in once a slot may be taken.
    total = 4
    with full_table(netns, tmp_path, total) as (client, svc, digest, hold):
        oack = hold([ATTACKER], total, {"blksize": 1428})
        assert oack["oack"] == total, oack
        refused = hold([LEGIT], 1, {"blksize": 1428}, wait=0.3)  # one try, no resend
        assert refused == {"oack": 0, "data": 0, "error": {}, "none": 1}, refused
        hit = svc.wait_event("LimitHit", limit="tftp.max_transfers")
        assert "unanswered" in hit["message"] and LEGIT in hit["message"], hit
        legit_fetch(client, tmp_path, digest, "resent")  # curl resends its request until it is served
        no_real_transfer_dropped(svc)
