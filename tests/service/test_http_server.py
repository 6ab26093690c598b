"""The HTTP server on loopback with real clients: curl, busybox wget, http.client and raw
sockets. Files on disk, files inside an .iso (imported into a real ISO library: its provider's
byte extents), boot endpoints, hostile requests while another client keeps being served, limits
and events.

The server runs in a thread with its own (uvloop) event loop so tests can inject the menu
library (a fake with the real signatures) and short timeouts.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pycdlib
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from netns import require_tool, wait_for  # noqa: E402

from pxetui.config import Config  # noqa: E402
from pxetui.events import Event  # noqa: E402
from pxetui.files import Client, Source, virtual  # noqa: E402
from pxetui.http.routes import Router  # noqa: E402
from pxetui.http.server import HttpServer, Limits  # noqa: E402
from pxetui.iso.library import import_iso  # noqa: E402
from pxetui.library.provider import IsoProvider, state_for  # noqa: E402
from pxetui.tokens import Grant  # noqa: E402

GiB = 1 << 30
# The router attributes a request to a machine by its source address, never by `?mac=`
# (docs/SECURITY.md, "Callbacks and seeds"). Here 127.0.0.N (N = 10..99) is 52:54:00:00:00:N,
# and 127.0.0.1 is no machine we know; a test that follows one client connects from its own.
CB_TOKEN, SEED_TOKEN = "c" * 32, "5" * 32


def loopback_mac(ip: str | None) -> str | None:
    n = int(ip.rsplit(".", 1)[1]) if ip and ip.startswith("127.0.0.") else 0
    return f"52:54:00:00:00:{n:02d}" if 10 <= n <= 99 else None


class FakeTokens:
    """The token table: one callback and one seed token, both 127.0.0.56's machine's."""

    def verify(self, token: str, purpose: str) -> Grant | None:
        if (token, purpose) in ((CB_TOKEN, "callback"), (SEED_TOKEN, "seed")):
            return Grant("52:54:00:00:00:56", purpose, "127.0.0.56", 0.0, 1e12)
        return None
SPARSE_SIZE = 5 * GiB + 123
MARKS = {4 * GiB - 5: b"<before-4G>", 4 * GiB + 7: b"<after-4G>", SPARSE_SIZE - 6: b"<END!>"}


# -- the content ---------------------------------------------------------------------------

class FakeBoot:
    """The menu library's functions with their real signatures."""

    def __init__(self, providers: list[Any]) -> None:
        self.providers = providers

    def ipxe_script(self, cfg: Config, mac: str | None, arch: int | None, client_ip: str | None) -> str:
        return f"#!ipxe\necho mac={mac} arch={arch} ip={client_ip}\n"

    def seed_file(self, cfg: Config, mac: str | None, name: str) -> bytes | None:
        return f"#cloud-config\n# {mac} {name}\n".encode() if name.endswith("user-data") else None

    def virtual_providers(self, cfg: Config) -> list[Any]:
        return self.providers


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_tool("xorriso")
    base = tmp_path_factory.mktemp("http")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "small.txt").write_bytes(b"hello\n")
    (root / "data.bin").write_bytes(os.urandom(3_000_001))
    (root / "big.bin").write_bytes(os.urandom(16 << 20))
    (root / "sub" / "name with space.cfg").write_bytes(b"label x\n")
    (root / "link-out").symlink_to("/etc/passwd")
    with open(root / "sparse.img", "wb") as fh:
        fh.truncate(SPARSE_SIZE)
        for off, mark in MARKS.items():
            fh.seek(off)
            fh.write(mark)
    content = base / "isocontent"
    (content / "casper").mkdir(parents=True)
    (content / "live").mkdir()
    (content / "casper" / "vmlinuz").write_bytes(os.urandom(300_001))
    (content / "live" / "filesystem.squashfs").write_bytes(os.urandom(2_500_003))
    iso = base / "isos" / "test.iso"
    iso.parent.mkdir()
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-J", "-R", "-V", "TEST",
                    "-o", str(iso), str(content)], check=True, capture_output=True, timeout=60)
    # The ISO library's own import and provider, as the service serves iso/<name>/<file>.
    cfg = Config.from_dict({"interface": "lo", "state_dir": str(base / "state")})
    import_iso(cfg, iso, name="test")
    return {"root": root, "content": content, "iso": iso, "provider": IsoProvider(state_for(cfg))}


# -- the server ----------------------------------------------------------------------------

class Served:
    """An HttpServer on 127.0.0.1 in a thread with its own event loop; events collected."""

    def __init__(self, root: Path, boot: FakeBoot, limits: Limits) -> None:
        self.events: list[Event] = []
        self.cfg = Config.from_dict({"interface": "lo", "http": {"root": str(root)}})
        self.cfg.server_ip = "127.0.0.1"
        self.limits, self.boot = limits, boot
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._started.wait(10), "server did not start"

    def _run(self) -> None:
        import uvloop

        loop = uvloop.new_event_loop()
        self.loop = loop
        router = Router(self.cfg, self.events.append, boot=self.boot, attribute=loopback_mac,
                        check=FakeTokens())
        self.server = HttpServer(router, self.events.append, self.limits)
        lsock = HttpServer.bind("127.0.0.1", 0)
        self.port = lsock.getsockname()[1]
        self.task = loop.create_task(self.server.serve(lsock))
        loop.call_soon(self._started.set)
        try:
            loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        finally:
            lsock.close()
            loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self._thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def of(self, type_: str, **match: Any) -> list[Event]:
        return [e for e in list(self.events) if e.type == type_
                and all(getattr(e, k) == v for k, v in match.items())]

    def wait(self, type_: str, timeout: float = 10, **match: Any) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(type_, **match)
            if found:
                return found[-1]
            time.sleep(0.02)
        raise AssertionError(f"no {type_} {match}; last: {[e.type for e in self.events[-10:]]}")


@pytest.fixture(scope="module")
def srv(tree: dict[str, Any]):
    s = Served(tree["root"], FakeBoot([tree["provider"]]),
               Limits(max_connections=64, header_timeout=1.0, idle_timeout=2.0, send_timeout=10,
                      max_per_client=64))  # every client here is 127.0.0.1
    yield s
    s.stop()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(srv: Served, path: str, headers: dict[str, str] | None = None,
        method: str = "GET", source: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw(srv: Served, data: bytes, timeout: float = 5, first_only: bool = True) -> bytes:
    """Send bytes as they are; return the first response (head and Content-Length body), or
    everything until the server closes."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            end = out.find(b"\r\n\r\n")
            if end >= 0 and first_only:
                head = out[:end].lower()
                i = head.find(b"content-length: ")
                if i >= 0 and len(out) >= end + 4 + int(head[i + 16:].split(b"\r")[0]):
                    return out
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
    return out


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer.split(b" ", 2)[1])


# -- clients -------------------------------------------------------------------------------

def test_curl_get_head_and_whole_iso(srv: Served, tree: dict[str, Any], tmp_path: Path):
    require_tool("curl")
    out = tmp_path / "out"
    for path, want in (("/data.bin", (tree["root"] / "data.bin").read_bytes()),
                       ("/iso/test/live/filesystem.squashfs",
                        (tree["content"] / "live" / "filesystem.squashfs").read_bytes()),
                       ("/iso/test.iso", tree["iso"].read_bytes())):
        r = subprocess.run(["curl", "-sS", "-o", str(out), "-w", "%{http_code}", srv.url(path)],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout == "200", r.stderr
        assert sha(out.read_bytes()) == sha(want), path
    r = subprocess.run(["curl", "-sS", "-I", srv.url("/data.bin")], capture_output=True, text=True, timeout=10)
    head = r.stdout.lower()
    assert "content-length: 3000001" in head and "accept-ranges: bytes" in head
    assert "etag: " in head and "last-modified: " in head and "content-type: application/octet-stream" in head
    fin = srv.wait("TransferFinished", path="iso/test.iso")
    assert fin.status == 200 and fin.bytes_done == tree["iso"].stat().st_size and fin.ip == "127.0.0.1"


def test_busybox_wget(srv: Served, tree: dict[str, Any], tmp_path: Path):
    require_tool("busybox", package="busybox-static")
    for path, want in (("/data.bin", tree["root"] / "data.bin"),
                       ("/iso/test/casper/vmlinuz", tree["content"] / "casper" / "vmlinuz"),
                       ("/sub/name%20with%20space.cfg", tree["root"] / "sub" / "name with space.cfg")):
        out = tmp_path / "w"
        r = subprocess.run(["busybox", "wget", "-q", "-O", str(out), srv.url(path)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == want.read_bytes(), path
    r = subprocess.run(["busybox", "wget", "-q", "-O", str(tmp_path / "x"), srv.url("/missing")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "404" in r.stderr


def test_python_client_keep_alive(srv: Served, tree: dict[str, Any]):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        seen = []
        for method, path, hdrs, status in (
            ("GET", "/small.txt", {}, 200), ("HEAD", "/data.bin", {}, 200),
            ("GET", "/nope", {}, 404), ("GET", "/data.bin", {"Range": "bytes=0-3"}, 206),
            ("GET", "/iso/test/casper/vmlinuz", {}, 200), ("HEAD", "/nope", {}, 404),
        ):
            conn.request(method, path, headers=hdrs)
            r = conn.getresponse()
            body = r.read()
            assert r.status == status, (method, path)
            assert r.getheader("Connection") == "keep-alive"
            if method == "HEAD":
                assert body == b""
            seen.append(conn.sock.getsockname())
        assert len(set(seen)) == 1, "every request went over one connection"
    finally:
        conn.close()
    head = srv.wait("TransferFinished", path="data.bin", bytes_done=0, status=200)
    (started,) = srv.of("TransferStarted", transfer_id=head.transfer_id)
    assert started.options["method"] == "HEAD" and started.size == 3_000_001


def responses(data: bytes, methods: list[str]) -> list[tuple[int, bytes]]:
    """(status, body) of each answer to pipelined `methods` (Content-Length framed; an answer
    to HEAD has no body); nothing may be left over."""
    out = []
    for method in methods:
        end = data.index(b"\r\n\r\n") + 4
        head = data[:end].lower()
        i = head.index(b"content-length: ") + 16
        length = 0 if method == "HEAD" else int(head[i:head.index(b"\r", i)])
        out.append((status_of(data), data[end:end + length]))
        data = data[end + length:]
    assert data == b"", data[:80]
    return out


def test_pipelined_requests_answered_in_order(srv: Served):
    req = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    out = raw(srv, req + req + b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
              first_only=False)
    assert out.count(b"HTTP/1.1 200 OK") == 3 and out.count(b"hello\n") == 3
    # Different answers, so the order shows: each in the order asked, framed exactly.
    out = raw(srv, req + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
              + b"HEAD /data.bin HTTP/1.1\r\nHost: x\r\n\r\n"
              + b"GET /sub/name%20with%20space.cfg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
              first_only=False)
    got = responses(out, ["GET", "GET", "HEAD", "GET"])
    assert [status for status, _ in got] == [200, 404, 200, 200]
    assert got[0][1] == b"hello\n" and got[1][1].startswith(b"404 Not Found")
    assert got[2][1] == b"" and got[3][1] == b"label x\n"


# -- byte ranges ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["disk", "iso"])
@pytest.mark.parametrize("spec", ["start", "middle", "end", "suffix", "open", "one-byte-end"])
def test_byte_exact_ranges(srv: Served, tree: dict[str, Any], where: str, spec: str):
    if where == "disk":
        path, data = "/data.bin", (tree["root"] / "data.bin").read_bytes()
    else:
        path, data = "/iso/test/casper/vmlinuz", (tree["content"] / "casper" / "vmlinuz").read_bytes()
    n = len(data)
    first, last, header = {
        "start": (0, 4095, "bytes=0-4095"),
        "middle": (n // 2 - 777, n // 2 + 1000, f"bytes={n // 2 - 777}-{n // 2 + 1000}"),
        "end": (n - 5000, n - 1, f"bytes={n - 5000}-{n - 1}"),
        "suffix": (n - 100, n - 1, "bytes=-100"),
        "open": (n - 2049, n - 1, f"bytes={n - 2049}-"),
        "one-byte-end": (n - 1, n - 1, f"bytes={n - 1}-{n + 50}"),
    }[spec]
    status, hdrs, body = get(srv, path, {"Range": header})
    assert status == 206
    assert hdrs["content-range"] == f"bytes {first}-{last}/{n}"
    assert int(hdrs["content-length"]) == last - first + 1
    assert body == data[first:last + 1]


def test_iso_extent_matches_pycdlib(tree: dict[str, Any]):
    """The provider's Source is the byte extent pycdlib reports: reading it from the .iso gives
    the original file (so sendfile from there is byte-exact)."""
    src = tree["provider"].lookup("iso/test/casper/vmlinuz", Client())
    assert src is not None and src.path == str(tree["iso"])
    p = pycdlib.PyCdlib()
    p.open(str(tree["iso"]))
    try:
        assert p.get_file_byte_extents(rr_path="/casper/vmlinuz") == [(src.offset, src.size)]
    finally:
        p.close()
    offset, length = src.offset, src.size
    with open(tree["iso"], "rb") as fh:
        fh.seek(offset)
        assert fh.read(length) == (tree["content"] / "casper" / "vmlinuz").read_bytes()


def test_curl_range_inside_iso(srv: Served, tree: dict[str, Any]):
    data = (tree["content"] / "live" / "filesystem.squashfs").read_bytes()
    r = subprocess.run(["curl", "-sS", "-r", "1000000-1000099", srv.url("/iso/test/live/filesystem.squashfs")],
                       capture_output=True, timeout=10)
    assert r.stdout == data[1000000:1000100]


def test_unsatisfiable_multi_and_invalid_ranges(srv: Served, tree: dict[str, Any]):
    data = (tree["root"] / "data.bin").read_bytes()
    status, hdrs, body = get(srv, "/data.bin", {"Range": f"bytes={len(data)}-"})
    assert status == 416 and hdrs["content-range"] == f"bytes */{len(data)}"
    assert srv.wait("TransferFailed", status=416).path == "data.bin"
    for header in ("bytes=0-1,5-9", "bytes=9-1", "lines=1-2"):
        status, _, body = get(srv, "/data.bin", {"Range": header})
        assert status == 200 and body == data, header


def test_conditional_requests(srv: Served, tree: dict[str, Any]):
    status, hdrs, _ = get(srv, "/small.txt")
    tag, lm = hdrs["etag"], hdrs["last-modified"]
    assert get(srv, "/small.txt", {"If-None-Match": tag})[0] == 304
    status, hdrs304, body = get(srv, "/small.txt", {"If-Modified-Since": lm})
    assert status == 304 and body == b"" and hdrs304["etag"] == tag
    assert get(srv, "/small.txt", {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})[0] == 200
    assert get(srv, "/small.txt", {"If-None-Match": '"stale"'})[0] == 200
    # If-Range: the range only while the validator still matches, else the whole file.
    status, _, body = get(srv, "/small.txt", {"Range": "bytes=0-1", "If-Range": tag})
    assert (status, body) == (206, b"he")
    status, _, body = get(srv, "/small.txt", {"Range": "bytes=0-1", "If-Range": '"old"'})
    assert (status, body) == (200, b"hello\n")
    status, _, body = get(srv, "/small.txt", {"Range": "bytes=0-1", "If-Range": lm})
    assert (status, body) == (206, b"he")
    # If-Match / If-Unmodified-Since (RFC 9110 13.1.1, 13.1.4): 412 when the file changed.
    assert get(srv, "/small.txt", {"If-Match": tag})[0] == 200
    status, hdrs412, _ = get(srv, "/small.txt", {"If-Match": '"old"'})
    assert status == 412 and hdrs412["etag"] == tag
    assert get(srv, "/small.txt", {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})[0] == 412
    # Files inside the .iso have their own validators.
    status, hdrs, _ = get(srv, "/iso/test/casper/vmlinuz", method="HEAD")
    assert get(srv, "/iso/test/casper/vmlinuz", {"If-None-Match": hdrs["etag"]})[0] == 304
    assert srv.wait("TransferFinished", status=304)


def test_file_over_4_gib(srv: Served):
    status, hdrs, body = get(srv, "/sparse.img", method="HEAD")
    assert status == 200 and int(hdrs["content-length"]) == SPARSE_SIZE and body == b""
    for off, mark in MARKS.items():
        status, hdrs, body = get(srv, "/sparse.img", {"Range": f"bytes={off}-{off + len(mark) - 1}"})
        assert status == 206 and body == mark
        assert hdrs["content-range"] == f"bytes {off}-{off + len(mark) - 1}/{SPARSE_SIZE}"
    # 32 MiB straddling the 4 GiB boundary, through sendfile with a 64-bit offset
    first = 4 * GiB - (16 << 20)
    status, _, body = get(srv, "/sparse.img", {"Range": f"bytes={first}-{first + (32 << 20) - 1}"})
    assert status == 206 and len(body) == 32 << 20
    i = 4 * GiB - 5 - first
    assert body[i:i + 11] == b"<before-4G>" and body[:1000] == bytes(1000)
    assert get(srv, "/sparse.img", {"Range": "bytes=-6"})[2] == b"<END!>"


# -- boot endpoints ------------------------------------------------------------------------

def test_boot_script_callback_and_seed(srv: Served):
    me, mac = "127.0.0.56", "52:54:00:00:00:56"
    status, hdrs, body = get(srv, "/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi", source=me)
    assert status == 200 and hdrs["cache-control"] == "no-store"
    # The library gets the claim with the address (it mints tokens for the attributed MAC only);
    # the transfer is the attributed machine's, not the claimed one's.
    assert body == f"#!ipxe\necho mac=52:54:00:12:34:56 arch=7 ip={me}\n".encode()
    assert srv.wait("TransferFinished", path="boot.ipxe", mac=mac).status == 200
    assert not srv.of("TransferStarted", mac="52:54:00:12:34:56")
    # No query: only the client IP goes to the library (its script then asks iPXE again).
    assert get(srv, "/boot.ipxe", source=me)[2] == f"#!ipxe\necho mac=None arch=None ip={me}\n".encode()
    status, _, body = get(srv, f"/callback/{CB_TOKEN}/booting?entry=ubuntu", source=me)
    assert (status, body) == (200, b"ok\n")
    cb = srv.wait("BootCallback")
    assert (cb.stage, cb.mac, cb.ip, cb.entry) == ("booting", mac, me, "ubuntu")
    assert not srv.of("TransferStarted", path="callback")
    # Without the token, or with it from another address: 403, and nothing reported.
    assert get(srv, f"/callback/booting?mac={mac}&entry=ubuntu", source=me)[0] == 403
    assert get(srv, f"/callback/{CB_TOKEN}/booted")[0] == 403
    assert len(srv.of("BootCallback")) == 1
    status, _, body = get(srv, f"/seed/{SEED_TOKEN}/52-54-00-00-00-56/user-data")
    assert status == 200 and body == f"#cloud-config\n# {mac} user-data\n".encode()
    assert get(srv, f"/seed/{SEED_TOKEN}/ubuntu/user-data")[2] == b"#cloud-config\n# None ubuntu/user-data\n"
    assert get(srv, f"/seed/{SEED_TOKEN}/ubuntu/nothing")[0] == 404
    assert get(srv, "/seed/ubuntu/user-data")[0] == 403
    status, _, body = get(srv, "/boot.ipxe?mac=not-a-mac")
    assert status == 400 and b"not a MAC" in body
    assert get(srv, "/callback/no%20spaces")[0] == 400


# -- hostile requests ----------------------------------------------------------------------

HOSTILE = [
    ("dotdot", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    ("encoded-dotdot", b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    ("encoded-slash", b"GET /sub/..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    ("double-encoded", b"GET /%252e%252e/%252e%252e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("backslashes", b"GET /..\\..\\etc\\passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    ("absolute", b"GET //etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("encoded-absolute", b"GET /%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("absolute-form", b"GET http://x/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    ("nul", b"GET /small.txt%00.png HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    ("control", b"GET /small%0a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    ("bad-escape", b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("symlink-out", b"GET /link-out HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    ("long-line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("long-headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * 7000 + b"\r\n" * 1
     + (b"X-More: " + b"m" * 7000 + b"\r\n") * 5 + b"\r\n", 431),
    ("many-headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 150 + b"\r\n", 431),
    ("http2", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("post", b"POST /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    ("no-host", b"GET /small.txt HTTP/1.1\r\n\r\n", 400),
    ("chunked", b"GET /small.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
]


@pytest.mark.parametrize("name, request_bytes, status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_request(srv: Served, name: str, request_bytes: bytes, status: int):
    before = len(srv.of("TransferFailed", status=status))
    answer = raw(srv, request_bytes)
    assert status_of(answer) == status, answer[:200]
    assert b"root:" not in answer  # /etc/passwd never leaks
    wait_for(lambda: len(srv.of("TransferFailed", status=status)) > before, timeout=5,
             interval=0.02, what=f"a TransferFailed with status {status}")
    failed = srv.of("TransferFailed", status=status)[-1]
    assert failed.reason and failed.ip == "127.0.0.1"


def test_a_405_names_the_methods_its_path_answers(srv: Served):
    # Which path takes which method is routing policy (Router.methods): a seed URL also takes
    # Proxmox's POST, every other path only GET and HEAD; the HTTP server just asks.
    answer = raw(srv, b"POST /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status_of(answer) == 405 and b"\r\nAllow: GET, HEAD\r\n" in answer, answer[:300]
    answer = raw(srv, b"PUT /seed/t/m/answer.toml HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status_of(answer) == 405 and b"\r\nAllow: GET, HEAD, POST\r\n" in answer, answer[:300]


def test_refused_request_event_names_its_target(srv: Served):
    """A request refused before routing is reported with its target as sent (cut to 120
    characters): from a head over a limit, and from a head that parsed but cannot be framed."""
    assert status_of(raw(srv, b"GET /" + b"t" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 414
    assert srv.wait("TransferFailed", status=414, path="/" + "t" * 119).reason.startswith("request line")
    answer = raw(srv, b"GET /refused.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status_of(answer) == 501
    assert srv.wait("TransferFailed", status=501, path="/refused.bin").reason.startswith("Transfer-Encoding")


def slowloris(srv: Served, results: dict[str, Any]) -> None:
    """Headers a byte at a time, forever: must be cut off with 408 at the head deadline."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        answer = b""
        for b in b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 200:
            try:
                s.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(0.1)
            try:
                answer += s.recv(4096)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if answer:
                break
        s.settimeout(3)
        try:
            while chunk := s.recv(4096):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    results["slowloris"] = (answer, time.monotonic() - t0)


def test_hostile_clients_while_another_is_served(srv: Served, tree: dict[str, Any], tmp_path: Path):
    """A rate-limited download of 16 MiB runs through every hostile request and a slowloris,
    and still completes byte-exact."""
    out = tmp_path / "big"
    dl = subprocess.Popen(["curl", "-sS", "--limit-rate", "6M", "-o", str(out), "-w", "%{http_code}",
                           srv.url("/big.bin")], stdout=subprocess.PIPE, text=True)
    results: dict[str, Any] = {}
    loris = threading.Thread(target=slowloris, args=(srv, results))
    loris.start()
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)  # connects, says nothing
    try:
        for _, request_bytes, status in HOSTILE:
            assert status_of(raw(srv, request_bytes)) == status
        assert get(srv, "/small.txt")[2] == b"hello\n"
        loris.join(10)
        answer, took = results["slowloris"]
        assert status_of(answer) == 408, answer[:100]
        assert took < 5
        idle.settimeout(5)
        assert idle.recv(100) == b"", "a silent connection is closed at the head deadline"
        assert dl.wait(30) == 0
        assert dl.stdout is not None and dl.stdout.read() == "200"
        assert sha(out.read_bytes()) == sha((tree["root"] / "big.bin").read_bytes())
    finally:
        idle.close()
        if dl.poll() is None:
            dl.kill()
            dl.wait()
    assert srv.wait("TransferFailed", status=408).reason.startswith("request head not complete")


# -- limits and events ---------------------------------------------------------------------

def test_bounded_connections(tree: dict[str, Any]):
    s = Served(tree["root"], FakeBoot([]), Limits(max_connections=3, header_timeout=10.0,
                                                  idle_timeout=10.0))
    held = []
    try:
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
            c.request("GET", "/small.txt")
            assert c.getresponse().read() == b"hello\n"
            held.append(c)  # keep-alive: each holds a slot
        answer = raw(s, b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(answer) == 503 and b"max_connections=3" in answer
        hit = s.wait("LimitHit", limit="http.max_connections")
        assert hit.count == 1 and "latest from 127.0.0.1" in hit.message
        held.pop().close()
        wait_for(lambda: s.server.active < 3, timeout=5, interval=0.02, what="a connection slot freed")
        assert status_of(raw(s, b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 200
    finally:
        for c in held:
            c.close()
        s.stop()


def test_connections_per_client_address(tree: dict[str, Any]):
    """http.max_per_client: a third connection from one address gets 503 with Retry-After and
    one LimitHit; another address is still served meanwhile."""
    s = Served(tree["root"], FakeBoot([]), Limits(max_connections=8, max_per_client=2,
                                                  header_timeout=10.0, idle_timeout=10.0))
    held = []
    try:
        for _ in range(2):
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
            c.request("GET", "/small.txt")
            assert c.getresponse().read() == b"hello\n"
            held.append(c)
        for _ in range(3):
            answer = raw(s, b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(answer) == 503 and b"Retry-After: 1\r\n" in answer
            assert b"too many connections from your address (http.max_per_client=2)" in answer
        hit = s.wait("LimitHit", limit="http.max_per_client")
        assert hit.ip == "127.0.0.1" and len(s.of("LimitHit")) == 1  # once per interval, not per refusal
        other = socket.create_connection(("127.0.0.1", s.port), timeout=5, source_address=("127.0.0.2", 0))
        with other:
            other.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while chunk := other.recv(4096):
                got += chunk
        assert status_of(got) == 200 and got.endswith(b"hello\n")
        held.pop().close()
        wait_for(lambda: s.server.per_client.get("127.0.0.1") == 1, timeout=5, interval=0.02,
                 what="the closed connection's slot given back")
        assert status_of(raw(s, b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 200
    finally:
        for c in held:
            c.close()
        s.stop()


def slow_download(srv: Served, path: str, rate: float, source: str = "127.0.0.1") -> int:
    """A client that reads at most `rate` bytes/s through a small receive buffer."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10, source_address=(source, 0)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        got = 0
        while chunk := s.recv(32768):
            got += len(chunk)
            time.sleep(len(chunk) / rate)
    return got


def test_progress_at_most_four_per_second_and_final_numbers(srv: Served, tree: dict[str, Any]):
    # 16 MiB read at <= 8 MB/s: at least (16 MiB - 4 MiB socket buffers) / 8 MB/s = 1.5 s
    # pass on the server's side, so progress must be reported, and at most 4 times a second.
    got = slow_download(srv, "/big.bin", 8e6, source="127.0.0.99")
    assert got > 16 << 20
    fin = srv.wait("TransferFinished", path="big.bin", mac="52:54:00:00:00:99")
    started = srv.of("TransferStarted", transfer_id=fin.transfer_id)
    assert started and started[0].size == 16 << 20 and started[0].options["method"] == "GET"
    prog = srv.of("TransferProgress", transfer_id=fin.transfer_id)
    assert fin.seconds > 1.0
    assert len(prog) >= 2, "a transfer of more than a second reports progress"
    assert len(prog) <= 4 * fin.seconds + 1
    gaps = [b.ts - a.ts for a, b in zip(prog, prog[1:], strict=False)]
    assert all(g >= 0.24 for g in gaps), gaps
    assert all(p.mac == "52:54:00:00:00:99" and p.ip == "127.0.0.99" for p in prog)
    assert prog[-1].bytes_done <= fin.bytes_done == 16 << 20
    assert fin.rate == pytest.approx(fin.bytes_done / fin.seconds, rel=0.01)


def test_client_closing_mid_transfer_is_a_failed_transfer(srv: Served):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5, source_address=("127.0.0.77", 0)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    failed = srv.wait("TransferFailed", mac="52:54:00:00:00:77")
    assert failed.status == 200 and "client closed" in failed.reason
    assert 0 < failed.bytes_done < 16 << 20


def test_idle_keep_alive_connection_is_closed(srv: Served):
    # idle_timeout is 2 s here: closed by the server, not by our 15 s socket timeout
    with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
        s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert data.endswith(b"hello\n") and 1.5 < time.monotonic() - t0 < 12



def test_client_that_stops_reading_is_dropped(tree: dict[str, Any]):
    s = Served(tree["root"], FakeBoot([]), Limits(max_connections=8, send_timeout=1.0))
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5, source_address=("127.0.0.55", 0)) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(64).startswith(b"HTTP/1.1 200")
            failed = s.wait("TransferFailed", timeout=10, mac="52:54:00:00:00:55")
        assert "read nothing for 1 s" in failed.reason and failed.status == 200
        assert 0 < failed.bytes_done < 16 << 20
        assert s.server.active == 0
        assert get(s, "/small.txt")[2] == b"hello\n"
    finally:
        s.stop()


def test_fifty_concurrent_keep_alive_clients(srv: Served, tree: dict[str, Any]):
    """50 clients at once, each 4 requests on one connection (whole file, ranges, one inside
    the .iso): every byte right, all within the connection limit."""
    data = (tree["root"] / "data.bin").read_bytes()
    vmlinuz = (tree["content"] / "casper" / "vmlinuz").read_bytes()
    errors: list[str] = []

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        try:
            for path, hdrs, want in (
                ("/data.bin", {}, data),
                ("/data.bin", {"Range": f"bytes={i * 1000}-{i * 1000 + 4095}"}, data[i * 1000:i * 1000 + 4096]),
                ("/iso/test/casper/vmlinuz", {"Range": f"bytes=-{i + 1}"}, vmlinuz[-(i + 1):]),
                ("/iso/test/casper/vmlinuz", {}, vmlinuz),
            ):
                conn.request("GET", path, headers=hdrs)
                r = conn.getresponse()
                if r.read() != want:
                    errors.append(f"client {i}: {path} {hdrs} wrong bytes (status {r.status})")
        except OSError as exc:
            errors.append(f"client {i}: {exc!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert not any(t.is_alive() for t in threads)


class Blob:
    """A 64 KiB in-memory file: answers that go through sock_sendall, not sendfile."""

    def lookup(self, path: str, client: Client) -> Source | None:
        return virtual(path, b"b" * 65536) if path == "blob" else None


def test_pipelining_client_that_never_reads_is_dropped(tree: dict[str, Any]):
    """Pipelined requests whose answers are never read fill the socket buffers; the server
    gives up after send_timeout instead of holding the connection slot forever."""
    s = Served(tree["root"], FakeBoot([Blob()]), Limits(max_connections=8, send_timeout=1.0))
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5, source_address=("127.0.0.44", 0)) as c:
            c.setblocking(False)
            req = b"GET /blob HTTP/1.1\r\nHost: x\r\n\r\n" * 50
            deadline = time.monotonic() + 20
            pending = b""
            while not s.of("TransferFailed", mac="52:54:00:00:00:44") and time.monotonic() < deadline:
                try:
                    pending = pending or req
                    pending = pending[c.send(pending):]  # whole requests only, never garbage
                except BlockingIOError:  # the server stopped reading too: it is stuck sending
                    time.sleep(0.05)
                except ConnectionError:
                    break
            failed = s.wait("TransferFailed", timeout=10, mac="52:54:00:00:00:44")
            assert failed.reason == "client read nothing for 1 s" and failed.path == "blob"
            wait_for(lambda: s.server.active == 0, timeout=5, interval=0.02, what="every connection closed")
        assert get(s, "/small.txt")[2] == b"hello\n"
    finally:
        s.stop()
