"""Proxmox's answer URL end to end in namespaces: a DHCP client asking for option 250 (busybox
udhcpc `-O 250`, as the installer's own DHCP client asks) gets it from the full-mode DHCP
service, and the URL serves answer.toml over HTTP, to a POST as Proxmox's installer sends
(docs/FIELD-NOTES.md, "Proxmox's answer URL")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from netns import require_tool, wait_for
from services import ServiceProc, base_config

from pxetui import privileges
from pxetui import store as dbstore
from pxetui.dhcp import answer
from pxetui.http.server import MAX_DISCARD
from pxetui.menus import model, seeds

pytestmark = pytest.mark.root

ANSWER = b'[global]\nkeyboard = "en-us"\ncountry = "ch"\n'
SCRIPT = """
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
esac
echo "$1 $ip opt250=$opt250" >> "{log}"
"""


def decode(value: str) -> str:
    """busybox exports an option it has no name for as hex; a newer one may give the text."""
    try:
        return bytes.fromhex(value).decode()
    except ValueError:
        return value


def test_udhcpc_gets_the_answer_url_and_it_serves_the_answer(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    require_tool("curl")
    server, client = netns.pair()
    mac = "52:54:00:cc:00:01"
    client.run("ip", "link", "set", "eth0", "address", mac)
    root = tmp_path / "http"
    root.mkdir()
    cfg = base_config(tmp_path, dhcp={"mode": "full", "probe_seconds": 0, "lease_time": 600},
                      http={"root": str(root)})
    conn = dbstore.connect(cfg.db_path)
    try:
        def proxmox(m: model.Menu) -> None:
            m.add(model.Entry(id="pve", label="Proxmox VE 8.2", kernel="iso/pve/boot/linux26",
                              initrds=["iso/pve/boot/initrd.img", "/proxmox.iso=iso/pve.iso"],
                              loaders=["ipxe"]))
            m.default = "pve"
        model.update_menu(conn, proxmox)
        seeds.set_seed(conn, "answer.toml", ANSWER, entry="pve")
    finally:
        conn.close()
    ident = privileges.service_identity(cfg)  # the services write tokens and leases as their user
    if ident is not None:
        os.chown(cfg.state_path, ident.uid, ident.gid)
        for f in cfg.state_path.glob("pxetui.db*"):
            os.chown(f, ident.uid, ident.gid)
    dhcp = ServiceProc(server, "dhcp", cfg, tmp_path)
    http = ServiceProc(server, "http", cfg, tmp_path)
    try:
        dhcp.wait_running()
        http.wait_running()
        log, script = tmp_path / "udhcpc.log", tmp_path / "udhcpc.sh"
        script.write_text(SCRIPT.format(log=log))
        script.chmod(0o755)
        client.popen("busybox", "udhcpc", "-i", "eth0", "-f", "-s", str(script), "-t", "5", "-T", "1",
                     "-O", "250", log=tmp_path / "udhcpc.out")
        wait_for(lambda: log.exists() and "bound 10.99.0." in log.read_text(), timeout=20, what="udhcpc lease")
        line = next(ln for ln in log.read_text().splitlines() if ln.startswith("bound "))
        ip, opt = line.split()[1], line.split("opt250=", 1)[1].strip()
        url = decode(opt)
        assert url.startswith("http://10.99.0.1/seed/") and url.endswith("/pve/answer.toml"), line
        body = tmp_path / "answer.got"
        # Proxmox's installer POSTs its system information and reads the answer from the reply.
        r = client.run("curl", "-sS", "-o", str(body), "-w", "%{http_code}", "-X", "POST",
                       "-H", "Content-Type: application/json", "--data", '{"product": {"product": "pve"}}', url)
        assert r.stdout == "200" and body.read_bytes() == ANSWER, r.stdout
        assert client.run("curl", "-sS", url).stdout.encode() == ANSWER  # GET too
        token = url.split("/seed/", 1)[1].split("/")[0]
        bad = url.replace(token, "0" * 32)
        r = client.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", bad)
        assert r.stdout == "403"  # only this boot's token
        # A POST body is read and dropped only up to MAX_DISCARD: a larger one is refused.
        big = tmp_path / "big.json"
        big.write_bytes(b"x" * (MAX_DISCARD + 1))
        r = client.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                       "--data-binary", f"@{big}", url, check=False)
        assert r.stdout == "413", r.stdout
        assert dhcp.of("LeaseGranted", ip=ip)
        # What the engine spends a boot-once Proxmox entry on (pxetui/supervisor.py): the
        # answer's transfer, named without its token, attributed to the lease's MAC.
        done = wait_for(lambda: [e for e in http.of("TransferFinished", ip=ip) if e["path"] == "seed/pve/answer.toml"],
                        what="the answer's TransferFinished")
        assert done[0]["mac"] == mac and answer.is_answer_path(done[0]["path"])
    finally:
        dhcp.stop()
        http.stop()
