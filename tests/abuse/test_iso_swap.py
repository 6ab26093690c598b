"""ISO swap by a local unprivileged user (docs/SECURITY.md, "Files cannot be swapped under us").

Images are imported from a directory the user `nobody` owns. Once the real TFTP and HTTP
services have served them, `nobody` (setpriv, no groups) replaces each one: with a symlink to
/etc/shadow; with a symlink to a root-owned file the service user can read (so only the pin,
not file permissions, stops it); with another file of the same size and mtime full of
`root:` lines; by truncating it; by rewriting bytes in place. Every request for those images
right after the swap (no grace period) is refused, HTTP 403 and TFTP ERROR 2, never with a
byte of the substitute; each service raises the Alert `iso-changed:NAME` (once) and a Log
naming the image and what changed. Another client in the same namespace keeps fetching an
untouched image and an ordinary file during the attack."""

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

from pxetui.iso import testiso
from pxetui.iso.library import import_iso

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

SERVER = "10.99.0.1"
KERNEL = "live/vmlinuz-6.1.0-18-amd64"
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
ROUNDS = 5  # attack rounds over every swapped image, interleaved with the legitimate client

# name -> (what `nobody` runs in the drop directory, what the refusal must say)
SWAPS = {
    "to-shadow": ("ln -s /etc/shadow .new && mv -Tf .new to-shadow.iso", "replaced by a symlink"),
    "to-secret": ("ln -s {secret} .new && mv -Tf .new to-secret.iso", "replaced by a symlink"),
    "same-size": ("yes 'root:x:0:0:root:/root:/bin/bash' | head -c {size} > .new && "
                  "touch -r same-size.iso .new && mv -Tf .new same-size.iso", "replaced by another file"),
    "truncated": ("truncate -s 65536 truncated.iso", "changed size"),
    "rewritten": ("printf 'root:x:0:0:root' | dd of=rewritten.iso bs=1 seek=40000 conv=notrunc status=none",
                  "modified after import"),
}

# Runs in the client namespace: for each image, HTTP GET of the whole image and of a file in it,
# and a TFTP read of that file. One JSON object out: {name: [[http, http, tftp], ...]}, with
# "leak" for any answer that carried `root:`.
ATTACK = r"""
import json, socket, struct, sys
names, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
kernel = sys.argv[3]

def http(path):
    s = socket.create_connection(("10.99.0.1", 80), timeout=10)
    try:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
    finally:
        s.close()
    return "leak" if b"root:" in data else int(data.split(b" ", 2)[1])

def tftp(path):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    try:
        s.sendto(b"\0\1" + path.encode() + b"\0octet\0", ("10.99.0.1", 69))
        pkt, addr = s.recvfrom(70000)
        if pkt[1] == 3:  # data: end that transfer (it must not hold a slot), report it
            s.sendto(struct.pack("!HH", 5, 0) + b"enough\0", addr)
    finally:
        s.close()
    if b"root:" in pkt:
        return "leak"
    return struct.unpack("!H", pkt[2:4])[0] if pkt[1] == 5 else -pkt[1]

out = {n: [] for n in names}
for _ in range(rounds):
    for n in names:
        out[n].append([http(f"/iso/{n}.iso"), http(f"/iso/{n}/{kernel}"), tftp(f"iso/{n}/{kernel}")])
print(json.dumps(out))
"""


def as_nobody(script: str, cwd: Path) -> None:
    r = subprocess.run([*NOBODY, "sh", "-ec", script], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (script, r.stderr)


def curl(client: Netns, url: str, dest: Path) -> bytes:
    r = client.run("curl", "-sS", "-f", "--max-time", "30", "--tftp-blksize", "1428", "-o", str(dest), url,
                   check=False, timeout=45)
    assert r.returncode == 0, (url, r.returncode, r.stderr)
    return dest.read_bytes()


def test_a_swapped_iso_is_refused_and_named(netns, tmp_path: Path) -> None:
    require_tool("xorriso")
    require_tool("curl")
    require_tool("setpriv", package="util-linux")
    files = testiso.layout("debian-live")
    drop = tmp_path / "drop"  # where `nobody` keeps its images: its own directory
    drop.mkdir()
    os.chown(drop, 65534, 65534)
    secret = tmp_path / "secret.txt"  # root's, but world-readable: the service user could read it
    secret.write_bytes(b"root: notes the LAN must not see\n")
    good = testiso.build(tmp_path / "good.iso", files)
    tftp_root, http_root = tmp_path / "tftp", tmp_path / "http"
    tftp_root.mkdir()
    http_root.mkdir()
    (tftp_root / "ok.bin").write_bytes(os.urandom(200_000))
    (http_root / "ok.bin").write_bytes((tftp_root / "ok.bin").read_bytes())
    cfg = base_config(tmp_path, tftp={"root": str(tftp_root)}, http={"root": str(http_root)})
    for name in SWAPS:
        iso = testiso.build(drop / f"{name}.iso", files)
        os.chown(iso, 65534, 65534)
        import_iso(cfg, iso, name=name)
    import_iso(cfg, good, name="good")
    size = (drop / "same-size.iso").stat().st_size

    server, client = netns.pair(client_addr="10.99.0.2/24")
    tftp = ServiceProc(server, "tftp", cfg, tmp_path)
    http = ServiceProc(server, "http", cfg, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    try:
        tftp.wait_running()
        http.wait_running()
        for name in SWAPS:  # served as imported, before the swap
            assert curl(client, f"http://{SERVER}/iso/{name}/{KERNEL}", out / "before") == files[KERNEL]
            assert curl(client, f"tftp://{SERVER}/iso/{name}/{KERNEL}", out / "before") == files[KERNEL]

        for script, _ in SWAPS.values():
            as_nobody(script.format(secret=secret, size=size), drop)
        assert (drop / "to-shadow.iso").is_symlink() and (drop / "same-size.iso").stat().st_size == size

        (tmp_path / "attack.py").write_text(ATTACK)
        attacker = client.popen(sys.executable, str(tmp_path / "attack.py"), json.dumps(list(SWAPS)),
                                str(ROUNDS), KERNEL, stdout=subprocess.PIPE)
        good_bytes, ok_bytes = good.read_bytes(), (http_root / "ok.bin").read_bytes()
        for i in range(ROUNDS):  # the legitimate client, meanwhile, in the same namespace
            assert hashlib.sha256(curl(client, f"http://{SERVER}/iso/good.iso", out / f"g{i}")).digest() \
                == hashlib.sha256(good_bytes).digest()
            assert curl(client, f"tftp://{SERVER}/iso/good/{KERNEL}", out / f"k{i}") == files[KERNEL]
            assert curl(client, f"tftp://{SERVER}/ok.bin", out / f"t{i}") == ok_bytes
            assert curl(client, f"http://{SERVER}/ok.bin", out / f"h{i}") == ok_bytes
        stdout, _ = attacker.communicate(timeout=120)
        result = json.loads(stdout)

        for name, (_, why) in SWAPS.items():
            assert result[name] == [[403, 403, 2]] * ROUNDS, (name, result[name])
            for svc in (http, tftp):
                alerts = wait_for(lambda s=svc, n=name: s.of("Alert", key=f"iso-changed:{n}"),
                                  what=f"{svc.name}: Alert iso-changed:{name}")
                assert f"ISO {name}:" in alerts[0]["message"] and why in alerts[0]["message"], alerts[0]
                assert alerts[0]["severity"] == "error"
                logs = [e for e in svc.of("Log") if f"ISO {name}:" in e.get("message", "")]
                assert logs and logs[0]["level_name"] == "error"
            # Once per process, not once per refused request (3 x ROUNDS of them).
            assert len(http.of("Alert", key=f"iso-changed:{name}")) == 1
            refused = [e for e in http.of("TransferFailed", status=403) if e["path"].startswith(f"iso/{name}")]
            assert len(refused) == 2 * ROUNDS and all(why in e["reason"] for e in refused)
        assert not http.of("Alert", key="iso-changed:good") and not tftp.of("Alert", key="iso-changed:good")
    finally:
        tftp.stop()
        http.stop()
