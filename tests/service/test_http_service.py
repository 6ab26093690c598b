"""The HTTP service as the supervisor runs it: its own process (`python -m pxetui.service http`)
in a server namespace, clients in another namespace, events as JSON lines on stdout."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import require_tool, wait_for
from services import ServiceProc, base_config

pytestmark = pytest.mark.root

URL = "http://10.99.0.1"


def test_service_serves_clients_in_another_namespace(netns, tmp_path: Path):
    require_tool("curl")
    require_tool("busybox", package="busybox-static")
    root = tmp_path / "http"
    root.mkdir()
    payload = os.urandom(2_000_003)
    (root / "initrd.img").write_bytes(payload)
    server, client = netns.pair(client_addr="10.99.0.2/24")
    cfg = base_config(tmp_path, http={"root": str(root), "header_timeout": 2.0})
    # The client's own MAC: requests are attributed by address (the server's neighbour table),
    # and a `?mac=` that agrees with it is the usual iPXE case.
    client.run("ip", "link", "set", "eth0", "address", "52:54:00:00:00:01")
    svc = ServiceProc(server, "http", cfg, tmp_path)
    try:
        state = svc.wait_running()
        assert state["ports"] == [80]
        r = client.run("curl", "-sS", "-o", str(tmp_path / "c"), "-w", "%{http_code}",
                       f"{URL}/initrd.img?mac=52:54:00:00:00:01")
        assert r.stdout == "200"
        assert hashlib.sha256((tmp_path / "c").read_bytes()).digest() == hashlib.sha256(payload).digest()
        fin = svc.wait_event("TransferFinished", path="initrd.img")
        assert (fin["ip"], fin["mac"], fin["status"], fin["bytes_done"]) == (
            "10.99.0.2", "52:54:00:00:00:01", 200, len(payload))
        assert fin["service"] == "http" and fin["protocol"] == "http"
        # Later requests from that client carry its MAC without a query string; claiming another
        # machine's MAC changes nothing (issue 14: no attributing requests to another client).
        r = client.run("busybox", "wget", "-q", "-O", str(tmp_path / "w"), f"{URL}/initrd.img?mac=52:54:00:00:00:99")
        assert r.returncode == 0 and (tmp_path / "w").read_bytes() == payload
        wait_for(lambda: len(svc.of("TransferFinished", path="initrd.img", mac="52:54:00:00:00:01")) == 2,
                 what="the second transfer attributed to the MAC")
        assert not svc.of("TransferStarted", mac="52:54:00:00:00:99")
        r = client.run("curl", "-sS", "--path-as-is", f"{URL}/../../etc/passwd")
        assert r.stdout.startswith("403 Forbidden") and "root:" not in r.stdout
        assert svc.wait_event("TransferFailed", status=403)["ip"] == "10.99.0.2"
        # Only the configured address is served, not every interface.
        r = server.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                       "http://127.0.0.1/initrd.img", check=False)
        assert r.stdout == "000"
        # SIGHUP rebuilds the routes (menus, ISO library) without dropping the service.
        os.killpg(svc.proc.pid, signal.SIGHUP)
        svc.wait_event("Log", message="http: reloaded menus and ISO library")
        assert client.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          f"{URL}/initrd.img").stdout == "200"
        t0 = time.monotonic()
        assert svc.stop() == 0
        assert time.monotonic() - t0 < 5  # the supervisor's budget is 2 s; margin for a busy CI
    finally:
        svc.stop()


def test_port_in_use_is_a_clear_failure(netns, tmp_path: Path):
    server, _ = netns.pair()
    holder = server.popen(sys.executable, "-c",
                          "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,"
                          "socket.SO_REUSEADDR,1); s.bind(('10.99.0.1',80)); s.listen(); time.sleep(30)")
    wait_for(lambda: server.run("ss", "-H", "-ltn", "sport = :80", check=False).stdout.strip(),
             what="the holder listening on port 80")
    cfg = base_config(tmp_path)
    cfg_file = tmp_path / "http.json"
    cfg_file.write_text(cfg.to_json())
    r = server.run(sys.executable, "-m", "pxetui.service", "http", str(cfg_file), check=False, timeout=20)
    server.stop(holder)
    assert r.returncode == 1
    assert "http: cannot start" in r.stderr and "Address already in use" in r.stderr


def test_unresolved_config_refuses_to_bind_everywhere(tmp_path: Path):
    cfg = base_config(tmp_path)
    cfg.server_ip = ""
    cfg_file = tmp_path / "http.json"
    cfg_file.write_text(cfg.to_json())
    r = subprocess.run([sys.executable, "-m", "pxetui.service", "http", str(cfg_file)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "no server address" in r.stderr


def build_iso(tmp: Path) -> tuple[Path, dict[str, bytes]]:
    """An Ubuntu-live shaped ISO (casper/vmlinuz, initrd, squashfs) built with xorriso."""
    content = tmp / "isocontent"
    (content / "casper").mkdir(parents=True)
    (content / ".disk").mkdir()
    files = {"casper/vmlinuz": os.urandom(300_001), "casper/initrd": os.urandom(700_003),
             "casper/filesystem.squashfs": os.urandom(1_200_007)}
    for rel, data in files.items():
        (content / rel).write_bytes(data)
    (content / ".disk" / "info").write_text("Ubuntu 24.04 LTS\n")
    iso = tmp / "ubuntu.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-J", "-R", "-V", "Ubuntu", "-o", str(iso),
                    str(content)], check=True, capture_output=True, timeout=60)
    return iso, files


def test_boot_flow_through_the_iso_library(netns, tmp_path: Path):
    """Import an ISO with the real library while the service runs, then do what iPXE does:
    fetch the per-client script, the kernel and initrd it names (straight out of the .iso),
    the whole .iso (casper's url=), the boot callback, and the entry's seed, the last two with
    the per-boot tokens the script carries (docs/SECURITY.md, "Callbacks and seeds")."""
    require_tool("curl")
    require_tool("xorriso")
    from pxetui import privileges
    from pxetui.iso import library
    from pxetui.menus import model, seeds

    iso, files = build_iso(tmp_path)
    root = tmp_path / "http"
    root.mkdir()
    server, client = netns.pair(client_addr="10.99.0.2/24")
    cfg = base_config(tmp_path, http={"root": str(root)})
    svc = ServiceProc(server, "http", cfg, tmp_path)
    try:
        svc.wait_running()
        library.import_iso(cfg, iso, "ubuntu")
        conn = library.connect(cfg)
        try:
            def seeded(menu: model.Menu) -> None:  # a live entry has no seed arguments of its own
                e = menu.get("ubuntu")
                assert e is not None
                e.seed_args = "ds=nocloud-net;s={http}/seed/ubuntu/"
            model.update_menu(conn, seeded)
            seeds.set_seed(conn, "user-data", b"#cloud-config\nautoinstall: {version: 1}\n", entry="ubuntu")
        finally:
            conn.close()
        # This test (root) created the state database after the service dropped to its user; the
        # service writes its boot tokens there, so hand the database over as the engine does.
        ident = privileges.service_identity(cfg)
        if ident is not None:
            for f in cfg.state_path.glob("pxetui.db*"):
                os.chown(f, ident.uid, ident.gid)
        os.killpg(svc.proc.pid, signal.SIGHUP)
        svc.wait_event("Log", message="http: reloaded menus and ISO library")

        mac = "52:54:00:aa:bb:01"
        client.run("ip", "link", "set", "eth0", "address", mac)
        kernel = f"{URL}/iso/ubuntu/casper/vmlinuz"
        # The library re-reads its database at most once a second: poll, bounded.
        def script_with_entry() -> str | None:
            text = client.run("curl", "-sS", f"{URL}/boot.ipxe?mac={mac}&arch=x86_64&platform=efi").stdout
            return text if kernel in text else None

        script = wait_for(script_with_entry, timeout=5, interval=0.3, what="the imported entry in boot.ipxe")
        assert script.startswith("#!ipxe")
        assert f"kernel {kernel}" in script and f"{URL}/iso/ubuntu/casper/initrd" in script
        assert f"url={URL}/iso/ubuntu.iso" in script
        # Without arch=, the script asks iPXE for its build facts and chains back.
        assert "${buildarch}" in client.run("curl", "-sS", f"{URL}/boot.ipxe").stdout

        out = tmp_path / "got"
        for rel, data in files.items():
            r = client.run("curl", "-sS", "-o", str(out), "-w", "%{http_code}", f"{URL}/iso/ubuntu/{rel}")
            assert r.stdout == "200" and out.read_bytes() == data, rel
            n = len(data)
            for first, last in ((0, 99), (n // 2 - 50, n // 2 + 50), (n - 100, n - 1)):
                r = client.run("curl", "-sS", "-o", str(out), "-w", "%{http_code}", "-r",
                               f"{first}-{last}", f"{URL}/iso/ubuntu/{rel}")
                assert r.stdout == "206" and out.read_bytes() == data[first:last + 1], (rel, first)
        r = client.run("curl", "-sS", "-o", str(out), "-w", "%{http_code}", f"{URL}/iso/ubuntu.iso")
        assert r.stdout == "200" and out.read_bytes() == iso.read_bytes()
        fin = svc.wait_event("TransferFinished", path="iso/ubuntu/casper/vmlinuz", status=200)
        assert fin["mac"] == mac and fin["ip"] == "10.99.0.2"  # attributed from the script's query

        # The callback line of the script carries this boot's callback token.
        line = next(ln for ln in script.splitlines() if "/callback/" in ln)
        url = next(w for w in line.split() if "/callback/" in w)
        assert url.startswith(f"{URL}/callback/") and "${" not in url
        assert client.run("curl", "-sS", url).stdout == "ok\n"
        cb = svc.wait_event("BootCallback")
        assert (cb["stage"], cb["mac"], cb["ip"], cb["entry"]) == ("booting", mac, "10.99.0.2", "ubuntu")

        # The seed, through the URL on the kernel line (cloud-init appends the file name).
        base = script.split("ds=nocloud-net;s=", 1)[1].split()[0]
        assert base.startswith(f"{URL}/seed/") and base.endswith("/ubuntu/")
        r = client.run("curl", "-sS", f"{base}user-data")
        assert r.stdout == "#cloud-config\nautoinstall: {version: 1}\n"
        # The old URL without a token is refused.
        r = client.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{URL}/seed/ubuntu/user-data")
        assert r.stdout == "403"
    finally:
        svc.stop()
