"""Protocol behaviour the boot firmware depends on, seen from a raw client in a namespace:
the UEFI size probe (OACK, ERROR 8, new request), pxelinux's burst of missing names,
confinement of hostile paths and symlinks, transfer modes, and the read-only default."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest
from netns import wait_for
from services import ServiceProc, base_config

pytestmark = pytest.mark.root

# A bounded raw TFTP client, run inside the client namespace. Actions in, results out (JSON).
CLIENT = r'''
import hashlib, json, socket, struct, sys
SERVER = ("10.99.0.1", 69)

def rrq(name, opts, mode="octet", op=1):
    body = name.encode("utf-8", "surrogateescape") + b"\0" + mode.encode() + b"\0"
    body += b"".join(k.encode() + b"\0" + str(v).encode() + b"\0" for k, v in opts.items())
    return struct.pack("!H", op) + body

def oack_opts(pkt):
    f = pkt[2:-1].split(b"\0")
    return {f[i].decode(): f[i + 1].decode() for i in range(0, len(f) - 1, 2)}

def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    return s

def probe(a):
    """One request; report the first reply, then end the transfer like EDK2 does (ERROR 8)."""
    s = sock()
    s.sendto(rrq(a["name"], a.get("options", {}), a.get("mode", "octet"), a.get("op", 1)), SERVER)
    pkt, addr = s.recvfrom(70000)
    op = pkt[1]
    out = {"op": op, "port": addr[1]}
    if op == 5:
        out.update(code=struct.unpack("!H", pkt[2:4])[0], msg=pkt[4:-1].decode())
    elif op == 6:
        out["options"] = list(oack_opts(pkt).items())
        s.sendto(struct.pack("!HH", 5, 8) + b"size probe\0", addr)
    elif op == 3:
        out["block"] = struct.unpack("!H", pkt[2:4])[0]
        out["payload"] = pkt[4:].hex()
        s.sendto(struct.pack("!HH", 5, 0) + b"enough\0", addr)
    return out

def fetch(a):
    """RFC 7440 client: ACK at the end of each window, or the last in-order block on a gap."""
    s = sock()
    opts = a.get("options", {})
    s.sendto(rrq(a["name"], opts), SERVER)
    blksize, window, expect, got, acked, addr = 512, 1, 1, [], 0, None
    for _ in range(200000):
        pkt, addr = s.recvfrom(70000)
        op = pkt[1]
        if op == 6:
            o = oack_opts(pkt)
            blksize, window = int(o.get("blksize", 512)), int(o.get("windowsize", 1))
            s.sendto(struct.pack("!HH", 4, 0), addr)
            continue
        if op == 5:
            return {"error": struct.unpack("!H", pkt[2:4])[0]}
        block = struct.unpack("!H", pkt[2:4])[0]
        if block != expect & 0xFFFF:
            s.sendto(struct.pack("!HH", 4, (expect - 1) & 0xFFFF), addr)
            continue
        got.append(pkt[4:])
        expect += 1
        last = len(pkt) - 4 < blksize
        if last or (expect - 1) % window == 0:
            s.sendto(struct.pack("!HH", 4, (expect - 1) & 0xFFFF), addr)
        if last:
            data = b"".join(got)
            return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "window": window}
    return {"error": "too many packets"}

print(json.dumps([{"probe": probe, "fetch": fetch}[a["do"]](a) for a in json.loads(sys.argv[1])]))
'''


@pytest.fixture
def rig(netns, tmp_path):
    server, client = netns.pair(client_addr="10.99.0.2/24")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ok.txt").write_bytes(b"line one\nline two\n")
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    os.symlink("sub/inner.txt", root / "link_in")
    (tmp_path / "secret.txt").write_bytes(b"secret\n")
    os.symlink(tmp_path / "secret.txt", root / "link_out")
    os.symlink(tmp_path, root / "dir_out")
    (tmp_path / "client.py").write_text(CLIENT)
    svc = ServiceProc(server, "tftp", base_config(tmp_path, tftp={"root": str(root)}), tmp_path)
    svc.wait_running()

    def run(*actions: dict) -> list[dict]:
        r = client.run(sys.executable, str(tmp_path / "client.py"), json.dumps(list(actions)), timeout=60)
        return json.loads(r.stdout)

    yield svc, root, run
    svc.stop()


def test_uefi_size_probe_then_windowed_transfer(rig):
    svc, root, run = rig
    data = os.urandom(1_000_000)
    (root / "bootx64.efi").write_bytes(data)
    opts = {"tsize": 0, "blksize": 1468, "windowsize": 4}
    probe, got = run({"do": "probe", "name": "bootx64.efi", "options": opts},
                     {"do": "fetch", "name": "bootx64.efi", "options": opts})
    # The OACK answers exactly what was asked, in order, with the real size.
    assert probe["op"] == 6 and probe["port"] != 69
    assert probe["options"] == [["tsize", "1000000"], ["blksize", "1468"], ["windowsize", "4"]]
    assert got == {"sha256": hashlib.sha256(data).hexdigest(), "size": 1_000_000, "window": 4}
    (done,) = wait_for(lambda: svc.of("TransferFinished", path="bootx64.efi"), what="finished")
    assert done["bytes_done"] == 1_000_000
    (started,) = svc.of("TransferStarted", path="bootx64.efi")  # the probe is not a transfer
    assert started["options"]["windowsize"] == 4 and started["options"]["tsize"] == 1_000_000
    assert svc.of("TransferFailed", path="bootx64.efi") == []


def test_only_requested_options_in_oack(rig):
    svc, root, run = rig
    (root / "pxelinux.0").write_bytes(b"\x90" * 4000)
    (r,) = run({"do": "probe", "name": "pxelinux.0", "options": {"blksize": 65464}})
    assert r["op"] == 6 and r["options"] == [["blksize", "1468"]]  # MTU 1500 - 32
    (r,) = run({"do": "probe", "name": "pxelinux.0", "options": {"blksize": 4}})
    assert r["op"] == 5 and r["code"] == 8
    (r,) = run({"do": "probe", "name": "pxelinux.0"})
    assert r["op"] == 3 and r["block"] == 1  # no options: plain RFC 1350, DATA at once


def test_pxelinux_missing_names_answered_at_once(rig):
    svc, root, run = rig
    (root / "pxelinux.cfg").mkdir()
    (root / "pxelinux.cfg" / "default").write_bytes(b"DEFAULT linux\n")
    names = ["pxelinux.cfg/" + n for n in (
        "44454c4c-3800-1050-8052-b8c04f4a4d32", "01-52-54-00-12-34-56", "0A63000A", "0A63000",
        "0A6300", "0A630", "0A63", "0A6", "0A", "0", "default.missing", "ldlinux.c32x",
        "boot/ldlinux.c32", "syslinux.cfg")]
    replies = run(*[{"do": "probe", "name": n, "options": {"tsize": 0, "blksize": 1408}} for n in names],
                  {"do": "fetch", "name": "pxelinux.cfg/default", "options": {"tsize": 0, "blksize": 1408}})
    assert [(r["op"], r["code"]) for r in replies[:-1]] == [(5, 1)] * len(names)
    assert replies[-1]["size"] == len(b"DEFAULT linux\n")
    fails = wait_for(lambda: len(svc.of("TransferFailed", status=1)) == len(names)
                     and svc.of("TransferFailed", status=1), what="14 not-found events")
    assert sorted(e["path"] for e in fails) == sorted(names)


@pytest.mark.parametrize("name, code", [
    ("../secret.txt", 2),
    ("sub/../../secret.txt", 2),
    ("link_out", 2),
    ("dir_out/secret.txt", 2),
    ("ok.txt\x01", 2),
    ("/etc/passwd", 1),  # absolute paths are relative to the root
    ("OK.TXT", 1),  # case-sensitive unless configured
    ("sub", 1),  # a directory is not a file
])
def test_hostile_paths_refused(rig, name, code):
    svc, root, run = rig
    (r,) = run({"do": "probe", "name": name})
    assert (r["op"], r["code"]) == (5, code), r
    assert "secret" not in r["msg"]
    ev = wait_for(lambda: svc.of("TransferFailed", status=code), what="TransferFailed")
    assert ev[0]["reason"] and ev[0]["ip"] == "10.99.0.2"


@pytest.mark.parametrize("name, content", [
    ("/ok.txt", b"line one\nline two\n"),
    ("sub\\inner.txt", b"inner\n"),  # Windows boot files use backslashes
    ("link_in", b"inner\n"),  # a symlink that stays inside is fine
])
def test_normalised_paths_served(rig, name, content):
    svc, root, run = rig
    (r,) = run({"do": "probe", "name": name})
    assert r["op"] == 3 and bytes.fromhex(r["payload"]) == content


def test_modes_and_read_only(rig):
    svc, root, run = rig
    netascii, mail, write, junk = run(
        {"do": "probe", "name": "ok.txt", "mode": "netascii"},
        {"do": "probe", "name": "ok.txt", "mode": "mail"},
        {"do": "probe", "name": "new.txt", "op": 2},
        {"do": "probe", "name": "ok.txt", "op": 4})
    assert netascii["op"] == 3 and bytes.fromhex(netascii["payload"]) == b"line one\nline two\n"  # as octet
    assert (mail["op"], mail["code"]) == (5, 4)
    assert (write["op"], write["code"]) == (5, 2) and "read-only" in write["msg"]
    assert (junk["op"], junk["code"]) == (5, 4)
    assert not (root / "new.txt").exists()


def test_case_insensitive_lookup(netns, tmp_path):
    server, client = netns.pair(client_addr="10.99.0.2/24")
    root = tmp_path / "root"
    (root / "Boot").mkdir(parents=True)
    (root / "Boot" / "BCD").write_bytes(b"bcd")
    (tmp_path / "client.py").write_text(CLIENT)
    svc = ServiceProc(server, "tftp", base_config(tmp_path, tftp={"root": str(root), "case_insensitive": True}),
                      tmp_path)
    try:
        svc.wait_running()
        r = client.run(sys.executable, str(tmp_path / "client.py"),
                       json.dumps([{"do": "probe", "name": "boot\\bcd"}]), timeout=30)
        (got,) = json.loads(r.stdout)
        assert got["op"] == 3 and bytes.fromhex(got["payload"]) == b"bcd"
    finally:
        svc.stop()

