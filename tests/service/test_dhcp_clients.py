"""Full-mode DHCP service against real clients (busybox udhcpc, ISC dhclient) in namespaces."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest
from dhcp_rig import exchange, write_script
from netns import Netns, require_tool, wait_for
from services import ServiceProc, base_config

from pxetui.dhcp import options as o
from pxetui.dhcp.codec import Packet

pytestmark = pytest.mark.root

# udhcpc's script: configure the address so that a renew is a real unicast RENEWING request.
UDHCPC_SCRIPT = """
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
esac
echo "$1 $ip" >> "{log}"
"""
# dhclient's own script would rewrite the host's /etc/resolv.conf: use a tiny one instead.
DHCLIENT_SCRIPT = """
case "$reason" in
  BOUND|RENEW|REBOOT) ip addr flush dev "$interface"; ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac
echo "$reason $new_ip_address" >> "{log}"
"""


def full_config(tmp_path: Path, **dhcp: object):  # type: ignore[no-untyped-def]
    return base_config(tmp_path, dhcp={"mode": "full", "probe_seconds": 0, "lease_time": 600, **dhcp})


def dhclient_args(tmp_path: Path, log: Path) -> list[str]:
    """ISC dhclient, one try, with its pid and lease files and our script in tmp_path (the
    interface name goes last)."""
    script = write_script(tmp_path / "dhclient.sh", DHCLIENT_SCRIPT.format(log=log))
    return ["dhclient", "-1", "-v", "-pf", str(tmp_path / "dh.pid"), "-lf", str(tmp_path / "dh.leases"),
            "-sf", str(script)]


def read_pid(pid_file: Path) -> int | None:
    """The pid in dhclient's pid file, or None while it is missing or half written."""
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def ask(ns: Netns, msg: int, mac: bytes, xid: int, **opts: bytes) -> Packet:
    """Broadcast one client message (options as o<code>=value) from port 68 and return the one
    reply to it."""
    options = {o.MSG_TYPE: bytes((msg,)), **{int(k[1:]): v for k, v in opts.items()}}
    (reply, _src), = exchange(ns, [Packet(xid=xid, chaddr=mac, options=options)],
                              ("255.255.255.255", 67), expect=1)
    return reply


def discover(ns: Netns, mac: bytes, **opts: bytes) -> Packet:
    return ask(ns, o.DISCOVER, mac, int.from_bytes(mac[-2:]), **opts)


def test_udhcpc_gets_a_lease_and_renews(netns, tmp_path: Path) -> None:
    require_tool("busybox", package="busybox-static")
    server, client = netns.pair()
    svc = ServiceProc(server, "dhcp", full_config(tmp_path), tmp_path)
    svc.wait_running()
    log = tmp_path / "udhcpc.log"
    script = write_script(tmp_path / "udhcpc.sh", UDHCPC_SCRIPT.format(log=log))
    proc = client.popen("busybox", "udhcpc", "-i", "eth0", "-f", "-s", str(script), "-t", "5", "-T", "1",
                        log=tmp_path / "udhcpc.out")
    wait_for(lambda: log.exists() and "bound 10.99.0." in log.read_text(), timeout=20, what="udhcpc lease")
    ip = log.read_text().split("bound ", 1)[1].split()[0]
    granted = svc.wait_event("LeaseGranted", ip=ip)
    assert granted["mac"] == client.run("cat", "/sys/class/net/eth0/address").stdout.strip()
    assert granted["ours"]
    os.kill(proc.pid, signal.SIGUSR1)  # busybox udhcpc: renew now
    wait_for(lambda: "renew " + ip in log.read_text(), timeout=15, what="udhcpc renew")
    # the renew was unicast from the client's address (RENEWING, RFC 2131 4.3.2)
    svc.wait_event("DhcpPacket", direction="in", msg_type="REQUEST", ip=ip)
    assert len(svc.of("LeaseGranted", ip=ip)) >= 2
    for msg in ("DISCOVER", "REQUEST"):
        assert svc.of("DhcpPacket", direction="in", msg_type=msg)
    for msg in ("OFFER", "ACK"):
        assert svc.of("DhcpPacket", direction="out", msg_type=msg)


def test_dhclient_gets_a_lease_reboots_and_releases(netns, tmp_path: Path) -> None:
    require_tool("dhclient", package="isc-dhcp-client")
    server, client = netns.pair()
    svc = ServiceProc(server, "dhcp", full_config(tmp_path), tmp_path)
    svc.wait_running()
    log = tmp_path / "dhclient.log"
    args = dhclient_args(tmp_path, log)
    r = client.run(*args, "eth0", timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    ip = log.read_text().split("BOUND ", 1)[1].split()[0]
    svc.wait_event("LeaseGranted", ip=ip)
    # dhclient forks once bound and its child writes the pid file: the parent may exit first
    pid_file = tmp_path / "dh.pid"
    wait_for(lambda: read_pid(pid_file) is not None, timeout=5, what="dhclient's pid file")
    dh_pid = read_pid(pid_file)
    assert dh_pid is not None
    os.kill(dh_pid, signal.SIGTERM)  # -1 leaves it running; stop it by its pid file
    wait_for(lambda: not Path(f"/proc/{dh_pid}").exists(), timeout=5, what="dhclient exit")
    # a second start with the same lease file reboots into the same address (INIT-REBOOT)
    r = client.run(*args, "eth0", timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "REBOOT " + ip in log.read_text() or log.read_text().count("BOUND " + ip) == 2
    wait_for(lambda: len(svc.of("DhcpPacket", direction="in", msg_type="REQUEST")) >= 2,
             timeout=5, what="the second REQUEST event")
    assert len(svc.of("LeaseGranted", ip=ip)) >= 2
    # the release signals the running dhclient by its pid file, so wait for the new one to write it
    wait_for(lambda: read_pid(pid_file) not in (None, dh_pid), timeout=5, what="the second dhclient's pid file")
    r = client.run(*args[:-2], "-r", "eth0", timeout=30, check=False)  # release
    svc.wait_event("LeaseEnded", ip=ip, reason="released")


def test_restart_keeps_leases(netns, tmp_path: Path) -> None:
    server, client = netns.pair()
    cfg = full_config(tmp_path)
    svc = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc.wait_running()
    mac = bytes.fromhex("525400bb0001")
    offer = ask(client, o.DISCOVER, mac, 1)
    ack = ask(client, o.REQUEST, mac, 2, o54=offer.options[o.SERVER_ID], o50=offer.yiaddr)
    assert o.msg_type(ack) == o.ACK
    ip = ack.ip("yiaddr")
    svc.stop()
    svc2 = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc2.wait_running()
    svc2.wait_event("LeaseGranted", ip=ip, mac="52:54:00:bb:00:01")  # restored at start
    other = ask(client, o.DISCOVER, bytes.fromhex("525400bb0002"), 3, o50=ack.yiaddr)
    assert other.ip("yiaddr") != ip  # not given to another client after the restart
    again = ask(client, o.DISCOVER, mac, 4)
    assert again.ip("yiaddr") == ip
    with sqlite3.connect(cfg.db_path) as db:
        assert db.execute("SELECT mac FROM dhcp_leases WHERE ip=?", (ip,)).fetchone()[0] == "52:54:00:bb:00:01"


def test_malformed_packets_leave_it_serving(netns, tmp_path: Path) -> None:
    server, client = netns.pair()
    svc = ServiceProc(server, "dhcp", full_config(tmp_path), tmp_path)
    svc.wait_running()
    junk = [b"", b"\x01", os.urandom(100), b"\x01\x01\x06\x00" + os.urandom(400),
            b"\x01\x01\x06\x00" + bytes(232) + b"\x63\x82\x53\x63\x35\x09\x01", b"\x02" * 300,
            b"\x01\x01\x06\x00" + bytes(232) + b"\x63\x82\x53\x63\xff"]
    assert exchange(client, junk, ("255.255.255.255", 67), wait=0.5) == []
    svc.wait_event("DhcpIgnored", timeout=5)
    reasons = [e["reason"] for e in svc.of("DhcpIgnored")]
    assert any(r.startswith("malformed:") for r in reasons), reasons
    assert any("plain BOOTP" in r for r in reasons), reasons
    assert o.msg_type(ask(client, o.DISCOVER, bytes.fromhex("525400bb0009"), 7)) == o.OFFER
    assert svc.proc.poll() is None


def test_decline_is_quarantined_on_the_wire(netns, tmp_path: Path) -> None:
    server, client = netns.pair()
    svc = ServiceProc(server, "dhcp", full_config(tmp_path), tmp_path)
    svc.wait_running()
    mac = bytes.fromhex("525400bb0010")
    offer = ask(client, o.DISCOVER, mac, 1)
    sid = offer.options[o.SERVER_ID]
    assert o.msg_type(ask(client, o.REQUEST, mac, 2, o54=sid, o50=offer.yiaddr)) == o.ACK
    assert exchange(client, [Packet(xid=3, chaddr=mac, options={o.MSG_TYPE: b"\x04", o.SERVER_ID: sid,
                                                                o.REQUESTED_IP: offer.yiaddr})],
                    ("255.255.255.255", 67), wait=0.3) == []  # a DECLINE has no answer
    svc.wait_event("LeaseEnded", reason="declined", ip=offer.ip("yiaddr"))
    again = ask(client, o.DISCOVER, mac, 4)
    assert again.yiaddr != offer.yiaddr


def test_overrides_reload_on_sighup(netns, tmp_path: Path) -> None:
    from pxetui import store as dbstore

    server, client = netns.pair()
    cfg = full_config(tmp_path)
    cfg.tftp_root.mkdir(parents=True)
    (cfg.tftp_root / "pxelinux.0").write_bytes(b"x")
    svc = ServiceProc(server, "dhcp", cfg, tmp_path)
    svc.wait_running()
    mac = bytes.fromhex("525400bb0020")
    bios = {"o93": b"\x00\x00", "o60": b"PXEClient:Arch:00000:UNDI:002001"}
    assert discover(client, mac, **bios).file == b"pxelinux.0"
    conn = dbstore.connect(cfg.db_path)
    dbstore.set_host_override(conn, "52:54:00:bb:00:20", boot_file="special.0")
    os.kill(svc.proc.pid, signal.SIGHUP)
    wait_for(lambda: svc.of("Log", message="reloaded per-MAC overrides"), timeout=5, what="reload")
    assert discover(client, mac, **bios).file == b"special.0"
    dbstore.set_host_override(conn, "52:54:00:bb:00:20", boot_once="local")
    os.kill(svc.proc.pid, signal.SIGHUP)
    wait_for(lambda: len(svc.of("Log", message="reloaded per-MAC overrides")) == 2, timeout=5, what="reload")
    offer = discover(client, mac, **bios)
    assert offer.file == b"" and o.BOOTFILE not in offer.options  # this boot: local disk
    assert dbstore.host_overrides(conn)["52:54:00:bb:00:20"]["boot_once"] is None  # used up
    decision = svc.wait_event("BootDecision", firmware="local")
    assert decision["reason"] == "boot once: local disk"
    conn.close()


def test_never_answers_on_another_interface(netns, tmp_path: Path) -> None:
    server, client = netns.pair()
    other = netns.new("pxo")
    netns.link(server, other, "10.97.0.1/24", None, a_if="eth1")
    svc = ServiceProc(server, "dhcp", full_config(tmp_path), tmp_path)
    svc.wait_running()
    assert exchange(other, [Packet(xid=5, chaddr=bytes.fromhex("525400bb0030"),
                                   options={o.MSG_TYPE: b"\x01"})], ("255.255.255.255", 67), wait=1) == []
    assert discover(client, bytes.fromhex("525400bb0031")).ip("yiaddr").startswith("10.99.0.")
    assert not svc.of("DhcpPacket", mac="52:54:00:bb:00:30")  # never even saw it (SO_BINDTODEVICE)


def test_dhclient_renews_at_t1(netns, tmp_path: Path) -> None:
    """A 60 s lease: dhclient renews (RENEWING, unicast from its address) at T1 = 30 s, which
    ISC dhclient randomises to 3/4 T1 .. T1 (23 to 31 s; dhclient.c, "randomness to the renewal
    time")."""
    require_tool("dhclient", package="isc-dhcp-client")
    server, client = netns.pair()
    svc = ServiceProc(server, "dhcp", full_config(tmp_path, lease_time=60), tmp_path)
    svc.wait_running()
    log = tmp_path / "dhclient.log"
    r = client.run(*dhclient_args(tmp_path, log), "eth0", timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    ip = log.read_text().split("BOUND ", 1)[1].split()[0]
    ack = svc.wait_event("DhcpPacket", direction="out", msg_type="ACK", yiaddr=ip)
    assert ack["ip"] == "255.255.255.255"  # no address yet: broadcast
    wait_for(lambda: "RENEW " + ip in log.read_text(), timeout=50, interval=0.5, what="dhclient RENEW")
    renew = svc.wait_event("DhcpPacket", direction="in", msg_type="REQUEST", ip=ip)
    assert renew["mac"] == ack["mac"]
    assert renew["ts"] - ack["ts"] >= 20, "renewed before T1: not the T1 timer"
    assert svc.of("DhcpPacket", direction="out", msg_type="ACK", ip=ip)  # unicast back
    os.kill(int((tmp_path / "dh.pid").read_text()), signal.SIGTERM)
