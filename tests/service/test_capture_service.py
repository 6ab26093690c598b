"""The capture service and `pxetui watch` in a namespace lab: dnsmasq serves a DHCP client
(busybox udhcpc with a PXE vendor class) and a TFTP client (atftp), pxetui serves nothing and
fills the lease, transfer and client tables from the wire, attributed to dnsmasq."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import Netns, require_tool, wait_for
from services import ServiceProc, base_config

from pxetui.capture.packets import parse_frame
from pxetui.capture.pcap import read_pcap

pytestmark = pytest.mark.root

LOADER = os.urandom(150_000)  # > 64 blocks of 1428: sampled ACKs show progress


def lab(netns, tmp_path: Path) -> tuple[Netns, Netns, str]:
    require_tool("dnsmasq", package="dnsmasq-base")
    require_tool("udhcpc", package="udhcpc")
    require_tool("atftp", package="atftp")
    server, client = netns.pair()
    root = tmp_path / "tftp"
    root.mkdir()
    (root / "boot.0").write_bytes(LOADER)
    server.popen("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
                 "--bind-interfaces", "--dhcp-range=10.99.0.100,10.99.0.150",
                 f"--dhcp-leasefile={tmp_path}/leases", "--dhcp-boot=boot.0", "--enable-tftp",
                 f"--tftp-root={root}", "--no-ping", log=tmp_path / "dnsmasq.log")
    mac = client.run("cat", "/sys/class/net/eth0/address").stdout.strip()
    return server, client, mac


def boot_like_a_pxe_client(client: Netns, tmp_path: Path) -> str:
    """DHCP with a PXE vendor class, then fetch the boot file over TFTP with tsize/blksize."""
    client.run("udhcpc", "-i", "eth0", "-n", "-q", "-f", "-B", "-t", "5", "-T", "1",
               "-V", "PXEClient:Arch:00000:UNDI:002001", "-s", "/bin/true", timeout=20)
    leases = wait_for(lambda: (tmp_path / "leases").exists() and (tmp_path / "leases").read_text().split(),
                      what="dnsmasq lease")
    ip = leases[2]
    client.run("ip", "addr", "add", f"{ip}/24", "dev", "eth0")
    client.run("atftp", "--option", "tsize 0", "--option", "blksize 1428", "-g", "-r", "boot.0",
               "-l", str(tmp_path / "got.0"), "10.99.0.1", timeout=30)
    assert (tmp_path / "got.0").read_bytes() == LOADER
    client.run("atftp", "-g", "-r", "nothere.cfg", "-l", str(tmp_path / "x"), "10.99.0.1", check=False, timeout=30)
    return ip


def test_capture_service_sees_dnsmasq(netns, tmp_path):
    server, client, mac = lab(netns, tmp_path)
    pcap = tmp_path / "dhcp.pcap"
    # Watch-only: every service off, so nothing on the wire is ours.
    cfg = base_config(tmp_path, dhcp={"mode": "off"}, tftp={"enabled": False}, http={"enabled": False},
                      capture={"pcap": str(pcap)})
    cap = ServiceProc(server, "capture", cfg, tmp_path)
    try:
        cap.wait_running()
        ip = boot_like_a_pxe_client(client, tmp_path)
        lease = cap.wait_event("LeaseGranted", mac=mac)
        fin = cap.wait_event("TransferFinished", path="boot.0", timeout=15)
        failed = cap.wait_event("TransferFailed", path="nothere.cfg", timeout=15)
    finally:
        cap.stop()
    assert lease["ip"] == ip and lease["server_ip"] == "10.99.0.1" and lease["ours"] is False
    server_mac = server.run("cat", "/sys/class/net/eth0/address").stdout.strip()
    (foreign,) = cap.of("ForeignDhcpServer")
    assert foreign["server_ip"] == "10.99.0.1" and foreign["server_mac"] == server_mac
    assert foreign["boot_file"] == "boot.0"
    offers = cap.of("DhcpPacket", msg_type="OFFER")
    assert offers and all(o["direction"] == "wire" and o["ours"] is False for o in offers)
    (started,) = cap.of("TransferStarted", path="boot.0")
    assert started["mac"] == mac and started["ours"] is False and started["options"]["server"] == "10.99.0.1"
    assert fin["bytes_done"] == len(LOADER) and fin["mac"] == mac
    assert failed["status"] == 1
    assert cap.of("TransferProgress", transfer_id=started["transfer_id"])
    # The pcap holds the DHCP exchange and nothing else.
    _, frames = read_pcap(pcap)
    segs = [parse_frame(d) for _, d in frames]
    assert len(segs) >= 4 and all(s is not None and {s.sport, s.dport} <= {67, 68} for s in segs)


def test_watch_command_fills_tables_from_the_wire(netns, tmp_path):
    server, client, mac = lab(netns, tmp_path)
    out = tmp_path / "watch.out"
    proc = server.python("-m", "pxetui", "watch", "--interface", "eth0", "--duration", "25",
                         "--refresh", "0", "--stuck-seconds", "3", log=out)
    try:
        wait_for(lambda: out.exists() and "watching eth0" in out.read_text(), timeout=15, what="watch start")
        ip = boot_like_a_pxe_client(client, tmp_path)
        # The client goes quiet after its download: stuck after 3 s, diagnosed.
        wait_for(lambda: "diagnosis:" in out.read_text(), timeout=15, what="a diagnosis line")
    finally:
        server.stop(proc)  # SIGTERM: watch prints its final tables and exits
    text = out.read_text()
    assert re.search(rf"lease +{mac} {re.escape(ip)} from 10\.99\.0\.1", text), text
    assert "DHCP servers seen" in text and re.search(r"10\.99\.0\.1 +[0-9a-f:]{17} +10\.99\.0\.1\d\d +boot\.0", text), text
    assert re.search(rf"{re.escape(ip)} +tftp +boot\.0 +146\.5 KiB +done", text), text
    assert f"Client {mac}  ip {ip}" in text
    for stage in ("discover", "offer", "ack", "bootloader"):
        assert re.search(rf"\+ *[\d.]+s  {stage}", text), (stage, text)
    assert "tftp bootloader done" in text


def _without_capabilities(ns: Netns, *args: str) -> subprocess.CompletedProcess[str]:
    """Root without any capability: an empty bounding set leaves an exec'd program none, so
    AF_PACKET is refused exactly as for an ordinary user (files stay readable: same owner)."""
    require_tool("setpriv", package="util-linux")
    return ns.run("setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, *args,
                  check=False, timeout=30)


def test_missing_privilege_is_a_clear_error(netns, tmp_path):
    ns = netns.new()
    cfg = base_config(tmp_path, interface="lo", dhcp={"mode": "off"})
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    r = _without_capabilities(ns, "-m", "pxetui.service", "capture", str(tmp_path / "cfg.json"))
    assert r.returncode == 1, r
    assert "permission denied; run as root" in r.stderr and "CAP_NET_RAW" in r.stderr
    assert '"type":"Alert"' in r.stdout and '"severity":"error"' in r.stdout
    # scapy's AsyncSniffer.start() would fail silently here (docs/FIELD-NOTES.md): ours says so.
    code = ("from pxetui.capture.sniffer import ScapySniffer, CaptureError\n"
            "try:\n    ScapySniffer('lo', 'udp port 67').start(lambda d, t: None)\n"
            "except CaptureError as e:\n    print('ERR', e)\n")
    r = _without_capabilities(ns, "-c", code)
    assert "ERR capture on lo: permission denied" in r.stdout, r


def test_no_such_interface(netns, tmp_path):
    ns = netns.new()
    r = ns.run(sys.executable, "-m", "pxetui", "watch", "-i", "nosuch0", "--duration", "1", check=False)
    assert r.returncode == 1 and "capture on nosuch0: no such interface" in r.stderr


def test_own_tftp_service_and_capture_count_once(netns, tmp_path):
    """pxetui's TFTP service serves while the capture watches the same wire: the tracker, fed
    both streams, keeps one row per download, ours (exact bytes), not the wire's estimate."""
    require_tool("atftp", package="atftp")
    server, client = netns.pair(client_addr="10.99.0.2/24")
    cfg = base_config(tmp_path, dhcp={"mode": "off"}, http={"enabled": False})
    cfg.tftp.root = str(tmp_path / "tftp")
    Path(cfg.tftp.root).mkdir()
    (Path(cfg.tftp.root) / "boot.0").write_bytes(LOADER)
    tftp = ServiceProc(server, "tftp", cfg, tmp_path)
    cap = ServiceProc(server, "capture", cfg, tmp_path)
    try:
        tftp.wait_running()
        cap.wait_running()
        for leading in ("", "/"):  # GRUB asks with a leading / (docs/FIELD-NOTES.md)
            client.run("atftp", "--option", "tsize 0", "--option", "blksize 1428", "-g", "-r",
                       f"{leading}boot.0", "-l", str(tmp_path / "got.0"), "10.99.0.1", timeout=30)
        wait_for(lambda: len(tftp.of("TransferFinished")) == 2, what="our two transfers")
        wait_for(lambda: len(cap.of("TransferStarted")) == 2, what="the wire's two transfers")
        time.sleep(0.5)
    finally:
        cap.stop()
        tftp.stop()
    assert all(e["ours"] for e in cap.of("TransferStarted"))
    from pxetui.tracker import Tracker

    tr = Tracker()
    tr.feed({"type": "LeaseGranted", "ts": 0.0, "service": "dhcp", "mac": "52:54:00:00:00:77", "ip": "10.99.0.2"})
    merged = sorted(tftp.events + cap.events, key=lambda e: e.get("ts", 0.0))
    for ev in merged:
        tr.feed(ev)
    files = list(tr.clients["52:54:00:00:00:77"].files.values())
    assert len(files) == 2, files
    assert all(f["source"] == "own" and f["status"] == "done" and f["bytes"] == len(LOADER) for f in files), files


def test_interface_removed_under_watch_is_reported(netns, tmp_path):
    server, _client = netns.pair()
    out = tmp_path / "watch.out"
    proc = server.python("-m", "pxetui", "watch", "-i", "eth0", "--duration", "30", log=out)
    wait_for(lambda: out.exists() and "watching eth0" in out.read_text(), timeout=15, what="watch start")
    server.run("ip", "link", "del", "eth0")
    assert proc.wait(15) == 1
    assert "capture on eth0: the interface disappeared" in out.read_text()
