"""Path tricks against the real TFTP and HTTP services (docs/SECURITY.md, "Files cannot be
swapped under us"): `..` plain, percent-encoded and with backslashes, absolute paths, NUL and
control characters, symlinks in the root to /etc/shadow and /etc/passwd (the latter readable by
the unprivileged service user: refused because it is a symlink, not because of permissions),
symlinked directories out of and inside the root, the case-insensitive walk, overlong names
and paths. Each is refused with its error code and never leaks a byte of /etc; a legitimate
client in the same namespace fetches its files over HTTP and TFTP during the attack, and the
services hold no more descriptors afterwards than before."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from netns import Netns, require_tool, wait_for
from services import ServiceProc, base_config

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]

SERVER = "10.99.0.1"
ROUNDS = 12  # the attack list is sent this many times
ATTACK_SECONDS = 90  # and stops after this long in any case
LEGIT_FETCHES = 6  # per protocol, while the attack runs

LONG_PATH = "d/" * 2100 + "x"  # past PATH_MAX

HTTP_TRICKS: list[tuple[str, bytes, int]] = [
    ("dotdot", b"/../../etc/passwd", 403),
    ("encoded-dotdot", b"/%2e%2e/%2e%2e/etc/passwd", 403),
    ("encoded-slash", b"/sub/..%2f..%2f..%2fetc%2fpasswd", 403),
    ("backslashes", b"/..\\..\\etc\\passwd", 403),
    ("encoded-backslashes", b"/sub%5c..%5c..%5cetc%5cpasswd", 403),
    ("iso-dotdot", b"/iso/../../etc/passwd", 403),
    ("absolute", b"//etc/passwd", 404),
    ("encoded-absolute", b"/%2Fetc%2Fpasswd", 404),
    ("nul", b"/ok.txt%00/../../etc/passwd", 403),
    ("control", b"/ok%01.txt", 403),
    ("link-to-shadow", b"/link_shadow", 403),
    ("link-to-passwd", b"/link_passwd", 403),
    ("link-inside", b"/link_in", 403),
    ("dir-link-out", b"/dir_out/passwd", 403),
    ("dir-link-inside", b"/dir_in/inner.txt", 403),
    ("long-name", b"/" + b"a" * 300, 404),
    ("long-path", b"/" + LONG_PATH.encode(), 404),
    ("uri-too-long", b"/" + b"a" * 9000, 414),
    ("bad-escape", b"/%zz/passwd", 400),
]

TFTP_TRICKS: list[tuple[str, bytes, int]] = [
    ("dotdot", b"../../etc/passwd", 2),
    ("dotdot-inside", b"sub/../../etc/passwd", 2),
    ("backslashes", b"..\\..\\etc\\passwd", 2),
    ("absolute", b"/etc/passwd", 1),  # relative to the root: not there
    ("percent-is-literal", b"%2e%2e/etc/passwd", 1),
    ("control", b"ok.txt\x01", 2),
    ("nul-smuggled-mode", b"ok.txt\0../../etc/passwd", 4),  # the rest becomes the mode
    ("link-to-shadow", b"link_shadow", 2),
    ("link-to-passwd", b"link_passwd", 2),
    ("link-casefold", b"LINK_PASSWD", 2),  # the Windows-client walk follows no symlink either
    ("link-inside", b"link_in", 2),
    ("dir-link-out", b"dir_out/passwd", 2),
    ("dir-link-casefold", b"DIR_OUT/passwd", 2),
    ("dir-link-inside", b"Dir_In/Inner.TXT", 2),
    ("long-name", b"a" * 300, 1),
    ("long-path", LONG_PATH[:1400].encode(), 1),
]

# Runs in the client namespace: every trick ROUNDS times (bounded in time too); one JSON line
# out: {"http": {name: [statuses]}, "tftp": {name: [codes]}, "leaked": [names]}.
ATTACK = r"""
import json, socket, struct, sys, time
tricks = json.loads(open(sys.argv[1]).read())
rounds, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
out = {"http": {}, "tftp": {}, "leaked": []}

def http(target):
    s = socket.create_connection(("10.99.0.1", 80), timeout=5)
    try:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    finally:
        s.close()

def tftp(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    try:
        s.sendto(b"\0\1" + name + b"\0octet\0", ("10.99.0.1", 69))
        pkt, addr = s.recvfrom(70000)
        if pkt[1] == 3:  # data: stop the transfer, and report what leaked
            s.sendto(struct.pack("!HH", 5, 0) + b"enough\0", addr)
        return pkt
    finally:
        s.close()

for _ in range(rounds):
    if time.monotonic() > deadline:
        break
    for name, target, _want in tricks["http"]:
        answer = http(target.encode("latin-1"))
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
        out["http"].setdefault(name, []).append(status)
        if b"root:" in answer:
            out["leaked"].append("http " + name)
    for name, target, _want in tricks["tftp"]:
        pkt = tftp(target.encode("latin-1"))
        code = struct.unpack("!H", pkt[2:4])[0] if pkt[1] == 5 else -pkt[1]
        out["tftp"].setdefault(name, []).append(code)
        if b"root:" in pkt:
            out["leaked"].append("tftp " + name)
print(json.dumps(out))
"""


def tree(tmp_path: Path) -> tuple[Path, Path, bytes]:
    big = os.urandom(300_000)
    roots = []
    for name in ("tftp", "http"):
        root = tmp_path / name
        (root / "sub").mkdir(parents=True)
        (root / "ok.txt").write_bytes(b"ok\n")
        (root / "sub" / "inner.txt").write_bytes(b"inner\n")
        (root / "boot").mkdir()
        (root / "boot" / "big.bin").write_bytes(big)
        (root / "link_shadow").symlink_to("/etc/shadow")
        (root / "link_passwd").symlink_to("/etc/passwd")
        (root / "link_in").symlink_to("sub/inner.txt")
        (root / "dir_out").symlink_to("/etc")
        (root / "dir_in").symlink_to("sub")
        roots.append(root)
    return roots[0], roots[1], big


def descriptors(svc: ServiceProc) -> int:
    """Open fds of a service process and of the worker processes it started."""
    pids = [svc.proc.pid]
    for task in Path(f"/proc/{svc.proc.pid}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


def fetch(client: Netns, url: str, dest: Path) -> str:
    r = client.run("curl", "-sS", "--max-time", "30", "--tftp-blksize", "1428", "-o", str(dest),
                   "-w", "%{http_code}", url, check=False, timeout=45)
    assert r.returncode == 0, (url, r.returncode, r.stderr)
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def test_path_tricks_are_refused_while_a_client_is_served(netns, tmp_path: Path) -> None:
    require_tool("curl")
    tftp_root, http_root, big = tree(tmp_path)
    want = hashlib.sha256(big).hexdigest()
    cfg = base_config(tmp_path, tftp={"root": str(tftp_root), "case_insensitive": True},
                      http={"root": str(http_root)})
    server, client = netns.pair(client_addr="10.99.0.2/24")
    tftp = ServiceProc(server, "tftp", cfg, tmp_path)
    http = ServiceProc(server, "http", cfg, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    try:
        tftp.wait_running()
        http.wait_running()
        # Warm up both (the menu library's database connection, lazily opened), then count.
        assert fetch(client, f"http://{SERVER}/boot/big.bin", out / "w1") == want
        assert fetch(client, f"tftp://{SERVER}/BOOT/Big.Bin", out / "w2") == want  # case-insensitive
        fds_before = descriptors(tftp), descriptors(http)

        tricks = tmp_path / "tricks.json"
        tricks.write_text(json.dumps({
            "http": [(n, t.decode("latin-1"), s) for n, t, s in HTTP_TRICKS],
            "tftp": [(n, t.decode("latin-1"), c) for n, t, c in TFTP_TRICKS],
        }))
        (tmp_path / "attack.py").write_text(ATTACK)
        attacker = client.popen(sys.executable, str(tmp_path / "attack.py"), str(tricks), str(ROUNDS),
                                str(ATTACK_SECONDS), stdout=-1)
        for i in range(LEGIT_FETCHES):  # the legitimate client, same namespace, meanwhile
            assert fetch(client, f"http://{SERVER}/boot/big.bin", out / f"h{i}") == want
            assert fetch(client, f"tftp://{SERVER}/boot/big.bin", out / f"t{i}") == want
        stdout, _ = attacker.communicate(timeout=ATTACK_SECONDS + 30)
        result = json.loads(stdout)

        assert result["leaked"] == []
        for name, _target, status in HTTP_TRICKS:
            assert set(result["http"][name]) == {status}, (name, result["http"][name])
        for name, _target, code in TFTP_TRICKS:
            assert set(result["tftp"][name]) == {code}, (name, result["tftp"][name])
        assert len(result["http"]["dotdot"]) == ROUNDS  # every round ran

        # Each refusal is an event with its reason; the symlinks are named as such.
        for svc, status in ((http, 403), (tftp, 2)):
            for path in ("link_passwd", "dir_out/passwd", "link_in"):
                failed = wait_for(lambda s=svc, p=path, st=status: s.of("TransferFailed", path=p, status=st),
                                  what=f"TransferFailed for {path}")
                assert "symlink" in failed[-1]["reason"], failed[-1]

        # No descriptor left behind by hundreds of refused lookups and served transfers (a
        # transfer's socket and file close when it ends, a moment after the client has it all).
        wait_for(lambda: len(tftp.of("TransferFinished")) >= 1 + LEGIT_FETCHES, what="TFTP transfers ended")
        bounded = wait_for(lambda: (descriptors(tftp) <= fds_before[0] + 2 and descriptors(http) <= fds_before[1] + 2),
                           what="descriptor counts back where they were")
        assert bounded, (fds_before, descriptors(tftp), descriptors(http))
    finally:
        tftp.stop()
        http.stop()
