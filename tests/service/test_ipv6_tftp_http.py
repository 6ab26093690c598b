"""TFTP and HTTP over IPv6 beside IPv4 on one interface (issue 17.2, docs/IPV6.md "TFTP and
HTTP"): the real services in a server namespace with 10.99.0.1 and fd99::1 on eth0, real
clients (curl, a raw RFC 7440 client) in another with 10.99.0.2 and fd99::1001. Events name the
IPv6 client; per-client scripts carry only URLs of the family they were fetched over."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import Netns, require_tool, wait_for
from services import ServiceProc, base_config, collect, served_roots
from test_tftp_protocol import CLIENT

from pxetui import privileges, store
from pxetui.config import Config
from pxetui.control import is_live, socket_path
from pxetui.menus import model

pytestmark = pytest.mark.root

V6, V6_CLIENT = "fd99::1", "fd99::1001"
MAC = "52:54:00:aa:bb:61"
KERNEL = os.urandom(300_000)  # > the C pump's MIN_SIZE: lock-step transfers go through it
URL = re.compile(r"https?://(\[[^\]]*\]|[^/\s:'\"]+)")


class Rig:
    def __init__(self, server: Netns, client: Netns, tmp: Path, tftp: ServiceProc, http: ServiceProc) -> None:
        self.server, self.client, self.tmp, self.tftp, self.http = server, client, tmp, tftp, http

    def raw(self, server_ip: str, *actions: dict) -> list[dict]:
        """The raw TFTP client of test_tftp_protocol, run in the client namespace."""
        r = self.client.run(sys.executable, str(self.tmp / "client.py"), json.dumps(list(actions)), server_ip,
                            timeout=60)
        return json.loads(r.stdout)

    def curl(self, *args: str) -> bytes:
        out = self.tmp / "curl.out"
        self.client.run("curl", "-sS", "-g", "--max-time", "30", "-o", str(out), *args)
        return out.read_bytes()


def menu_database(cfg: Config) -> None:
    """A stored menu with one entry whose arguments use both templates, owned by the service
    user (it writes boot tokens there), as the engine leaves it."""
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    conn = store.connect(cfg.db_path)
    try:
        with store.write_transaction(conn):
            model.save_menu(conn, model.Menu(entries=[
                model.Entry(id="lab", label="Lab", kernel="vmlinuz", initrds=["initrd.img"],
                            args="srv={server} fetch={http}/squashfs"),
                model.local_entry()], default="lab"))
    finally:
        conn.close()
    ident = privileges.service_identity(cfg)
    if ident is not None:
        for f in [cfg.state_path, *cfg.state_path.glob("pxetui.db*")]:
            os.chown(f, ident.uid, ident.gid)


@pytest.fixture
def rig(netns, tmp_path: Path) -> Iterator[Rig]:
    require_tool("curl")
    server, client = netns.pair(client_addr="10.99.0.2/24")
    server.run("ip", "-6", "addr", "add", f"{V6}/64", "dev", "eth0", "nodad")
    client.run("ip", "-6", "addr", "add", f"{V6_CLIENT}/64", "dev", "eth0", "nodad")
    client.run("ip", "link", "set", "eth0", "address", MAC)
    tftp_root, http_root = tmp_path / "tftp", tmp_path / "http"
    tftp_root.mkdir()
    http_root.mkdir()
    for root in (tftp_root, http_root):
        (root / "vmlinuz").write_bytes(KERNEL)
    (tmp_path / "secret.txt").write_bytes(b"secret\n")
    (tmp_path / "client.py").write_text(CLIENT)
    cfg = base_config(tmp_path, tftp={"root": str(tftp_root)}, http={"root": str(http_root)},
                      ipv6={"enabled": True})
    cfg.server_ip6, cfg.prefix6 = V6, "fd99::/64"  # as resolve() finds them on eth0
    menu_database(cfg)
    tftp = ServiceProc(server, "tftp", cfg, tmp_path)
    http = ServiceProc(server, "http", cfg, tmp_path)
    try:
        tftp.wait_running()
        http.wait_running()
        yield Rig(server, client, tmp_path, tftp, http)
    finally:
        tftp.stop()
        http.stop()


def test_tftp_over_ipv6_and_ipv4(rig: Rig) -> None:
    """curl (lock-step: the C pump on an IPv6 socket) and an RFC 7440 client (windowsize 8, the
    Python windowed path) over IPv6, then curl over IPv4 unchanged; each finish names its client."""
    want = hashlib.sha256(KERNEL).hexdigest()
    assert hashlib.sha256(rig.curl(f"tftp://[{V6}]/vmlinuz")).hexdigest() == want
    got = rig.raw(V6, {"do": "fetch", "name": "vmlinuz", "options": {"blksize": 1428, "windowsize": 8}})
    assert got == [{"sha256": want, "size": len(KERNEL), "window": 8}]
    assert hashlib.sha256(rig.curl("tftp://10.99.0.1/vmlinuz")).hexdigest() == want
    done = wait_for(lambda: len(rig.tftp.of("TransferFinished")) >= 3 and rig.tftp.of("TransferFinished"),
                    what="three finished transfers")
    assert sorted(e["ip"] for e in done) == ["10.99.0.2", V6_CLIENT, V6_CLIENT]
    assert all(e["bytes_done"] == len(KERNEL) for e in done)
    started = rig.tftp.of("TransferStarted", ip=V6_CLIENT)
    assert {s["options"].get("windowsize") for s in started} == {1, 8}


def test_tftp_hostile_path_over_ipv6_refused_as_over_ipv4(rig: Rig) -> None:
    for ip in (V6, "10.99.0.1"):
        [r] = rig.raw(ip, {"do": "probe", "name": "../secret.txt"})
        assert (r["op"], r.get("code")) == (5, 2) and "secret" not in r["msg"], r
    fails = wait_for(lambda: len(rig.tftp.of("TransferFailed")) >= 2 and rig.tftp.of("TransferFailed"),
                     what="both refusals reported")
    assert sorted(e["ip"] for e in fails) == ["10.99.0.2", V6_CLIENT]
    assert {e["status"] for e in fails} == {2}


def test_http_over_ipv6_and_per_family_ipxe_scripts(rig: Rig) -> None:
    """A kernel over both families; boot.ipxe fetched over IPv6 names only http://[fd99::1]
    (with this machine's callback token: attributed by the IPv6 neighbour table), over IPv4
    only http://10.99.0.1; the IPv6 callback counts and names the IPv6 client."""
    assert rig.curl(f"http://[{V6}]/vmlinuz") == KERNEL
    assert rig.curl("http://10.99.0.1/vmlinuz") == KERNEL
    done = wait_for(lambda: len(rig.http.of("TransferFinished")) >= 2 and rig.http.of("TransferFinished"),
                    what="both downloads finished")
    assert sorted(e["ip"] for e in done) == ["10.99.0.2", V6_CLIENT]

    query = f"boot.ipxe?mac={MAC}&arch=x86_64&platform=efi"

    def script(base: str) -> str | None:  # the library re-reads its database at most once a second
        text = rig.curl(f"{base}/{query}").decode()
        return text if "/callback/" in text else None

    v6 = wait_for(lambda: script(f"http://[{V6}]"), timeout=10, interval=0.3, what="the IPv6 script")
    assert {m.group(1) for m in URL.finditer(v6)} == {f"[{V6}]"}, v6
    assert f"kernel http://[{V6}]/vmlinuz " in v6 and f"srv={V6} " in v6
    v4 = wait_for(lambda: script("http://10.99.0.1"), timeout=10, interval=0.3, what="the IPv4 script")
    assert {m.group(1) for m in URL.finditer(v4)} == {"10.99.0.1"}, v4
    # The first script (no arch yet) chains back over the family it came on.
    first = rig.curl(f"http://[{V6}]/boot.ipxe").decode()
    assert f"http://[{V6}]/boot.ipxe?mac=" in first and "10.99.0.1" not in first

    # The IPv6 script's own callback (its token was minted for this address) is accepted.
    v6 = script(f"http://[{V6}]") or ""
    callback = re.search(r"imgfetch --name pxetui-callback (\S+)", v6)
    assert callback is not None, v6
    assert rig.curl(callback.group(1)) == b"ok\n"
    ev = rig.http.wait_event("BootCallback", ip=V6_CLIENT)
    assert ev["mac"] == MAC and ev["stage"] == "booting"


RAW_HTTP = """
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=10)
s.sendall(sys.argv[2].encode().replace(b"|", b"\\r\\n"))
data = b""
while (chunk := s.recv(65536)):
    data += chunk
print(data.split(b"\\r\\n", 1)[0].decode())
"""


def test_http_bracketed_host_and_absolute_form_over_ipv6(rig: Rig) -> None:
    """A bracketed Host with a port and an absolute-form target with a bracketed authority are
    served; a request without Host is refused over IPv6 as over IPv4 (RFC 9112 3.2)."""
    code = rig.client.run("curl", "-sS", "-g", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                          f"Host: [{V6}]:80", f"http://[{V6}]/vmlinuz").stdout
    assert code == "200"

    def status(request: str) -> str:
        return rig.client.run(sys.executable, "-c", RAW_HTTP, V6, request).stdout.strip()

    assert status(f"GET http://[{V6}]:80/vmlinuz HTTP/1.1|Host: [{V6}]:80|Connection: close||") == "HTTP/1.1 200 OK"
    assert status("GET /vmlinuz HTTP/1.1|Connection: close||") == "HTTP/1.1 400 Bad Request"


# In the server namespace: a UDP echo on [fd99::1]:9999 bound by address only (the control).
CONTROL6 = r"""
import socket
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.bind(("fd99::1", 9999))
u.settimeout(30)
while True:
    data, addr = u.recvfrom(100)
    u.sendto(b"udp ok", addr)
"""

# In a client namespace: one exchange with `port` on argv[1]; prints the answer or none/refused.
ASK6 = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"\0\1f.bin\0octet\0" if sys.argv[3] == "rrq" else sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
try:
    print("DATA" if s.recv(2048)[:2] in (b"\0\3", b"ud") else "other")
except TimeoutError:
    print("none")
except ConnectionRefusedError:
    print("refused")
"""


def test_ipv6_listeners_serve_only_the_configured_interface(netns, tmp_path: Path) -> None:
    """As docs/SECURITY.md "Bound to one interface" for IPv4: a host behind eth1 with a route to
    fd99::1 reaches a socket bound by address alone (the control), but not TFTP or HTTP."""
    require_tool("curl")
    server, near = netns.pair(client_addr="10.99.0.2/24")
    far = netns.new("pxf")
    netns.link(server, far, None, None, a_if="eth1")
    for ns, addr, dev in ((server, f"{V6}/64", "eth0"), (near, f"{V6_CLIENT}/64", "eth0"),
                          (server, "fd98::1/64", "eth1"), (far, "fd98::2/64", "eth0")):
        ns.run("ip", "-6", "addr", "add", addr, "dev", dev, "nodad")
    far.run("ip", "-6", "route", "add", "fd99::/64", "via", "fd98::1")
    control = server.popen(sys.executable, "-c", CONTROL6)
    try:
        wait_for(lambda: server.run("ss", "-H", "-lun", "sport = :9999", check=False).stdout.strip(),
                 what="the control listener")
        assert far.run(sys.executable, "-c", ASK6, V6, "9999", "hi", timeout=20).stdout.strip() == "DATA"
    finally:
        server.stop(control)
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin").write_bytes(KERNEL)
    cfg = base_config(tmp_path, tftp={"root": str(root)}, http={"root": str(root)}, ipv6={"enabled": True})
    cfg.server_ip6, cfg.prefix6 = V6, "fd99::/64"
    tftp = ServiceProc(server, "tftp", cfg, tmp_path)
    http = ServiceProc(server, "http", cfg, tmp_path)
    try:
        tftp.wait_running()
        http.wait_running()
        rrq = "rrq"  # ASK6 sends a TFTP read request for f.bin
        assert near.run(sys.executable, "-c", ASK6, V6, "69", rrq, timeout=20).stdout.strip() == "DATA"
        assert far.run(sys.executable, "-c", ASK6, V6, "69", rrq, timeout=20).stdout.strip() in ("none", "refused")
        r = far.run("curl", "-sS", "-g", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                    f"http://[{V6}]/f.bin", check=False)
        assert r.returncode in (7, 28) and r.stdout == "000", (r.returncode, r.stdout, r.stderr)
        near.run("curl", "-sS", "-g", "--max-time", "30", "-o", "/dev/null", f"http://[{V6}]/f.bin")
        http.wait_event("TransferFinished", ip=V6_CLIENT, path="f.bin")
        for svc in (tftp, http):
            for ev in svc.of("TransferStarted") + svc.of("TransferFailed"):
                assert ev.get("ip") == V6_CLIENT, ev
    finally:
        tftp.stop()
        http.stop()


def test_engine_serves_ipv6_clients_and_names_them_in_its_events(netns, tmp_path: Path) -> None:
    """`pxetui serve --ipv6 --dhcp off` as a user runs it: resolve() finds fd99::1 on eth0, the
    TFTP and HTTP services listen on it, and a UI attached to the control socket sees the IPv6
    client's transfers (DHCPv6 stays off with --dhcp off: another server hands out addresses)."""
    require_tool("curl")
    server, client = netns.pair(client_addr="10.99.0.2/24")
    server.run("ip", "-6", "addr", "add", f"{V6}/64", "dev", "eth0", "nodad")
    client.run("ip", "-6", "addr", "add", f"{V6_CLIENT}/64", "dev", "eth0", "nodad")
    tftp_root, http_root, state = served_roots(tmp_path, KERNEL, KERNEL[::-1])
    eng = server.popen(sys.executable, "-m", "pxetui", "serve", "--interface", "eth0", "--dhcp", "off", "--ipv6",
                       "--state-dir", str(state), "--tftp-root", str(tftp_root), "--http-root", str(http_root),
                       log=tmp_path / "serve.log")
    try:
        sock = socket_path(state)
        wait_for(lambda: is_live(sock), timeout=20, what="the control socket")

        def running(evs: list[dict]) -> bool:
            states = {e["service"]: e["state"] for e in evs if e.get("type") == "ServiceState"}
            return states.get("tftp") == "running" and states.get("http") == "running"
        asyncio.run(collect(sock, running, timeout=30))

        attached = threading.Event()

        def ours(evs: list[dict]) -> list[dict]:
            # Our TFTP and HTTP services' reports; capture's copies of the same transfers from
            # the wire are in the stream too (the fold skips them), named as the client sent them.
            return [e for e in evs if e.get("type") == "TransferFinished" and e.get("ip") == V6_CLIENT
                    and e.get("service") in ("tftp", "http")]

        def finished(evs: list[dict]) -> bool:
            attached.set()  # the engine greets a new UI with its state: we are attached
            return {e.get("protocol") for e in ours(evs)} >= {"tftp", "http"}
        # Attached before the downloads: the control socket passes on events as they happen.
        seen: list[list[dict]] = []
        ui = threading.Thread(target=lambda: seen.append(asyncio.run(collect(sock, finished, timeout=30))))
        ui.start()
        assert attached.wait(20), "the UI did not attach"
        out = tmp_path / "got.bin"
        client.run("curl", "-sS", "-g", "--max-time", "30", "-o", str(out), f"tftp://[{V6}]/pxelinux.0")
        assert out.read_bytes() == KERNEL
        client.run("curl", "-sS", "-g", "--max-time", "30", "-o", str(out), f"http://[{V6}]/vmlinuz")
        assert out.read_bytes() == KERNEL[::-1]
        ui.join(40)
        assert seen, "the attached UI saw no TransferFinished of the IPv6 client in both protocols"
        evs = seen[0]
        assert {e["path"] for e in ours(evs)} == {"pxelinux.0", "vmlinuz"}
    finally:
        server.stop(eng)


def test_missing_ipv6_address_is_a_clear_failure(netns, tmp_path: Path) -> None:
    """An IPv6 address that is not on the interface (removed since the config was resolved):
    each service stops with an error naming the address and port, not a bare errno."""
    server, _ = netns.pair()
    cfg = base_config(tmp_path, tftp={"root": str(tmp_path)}, http={"root": str(tmp_path)}, ipv6={"enabled": True})
    cfg.server_ip6, cfg.prefix6 = "fd99::7", "fd99::/64"
    cfg_file = tmp_path / "svc.json"
    cfg_file.write_text(cfg.to_json())
    for name, port in (("tftp", 69), ("http", 80)):
        r = server.run(sys.executable, "-m", "pxetui.service", name, str(cfg_file), check=False, timeout=30)
        assert r.returncode == 1, (name, r.stderr[-2000:])
        assert f"{name}: cannot listen on [fd99::7]:{port}: Cannot assign requested address" in r.stderr, r.stderr
