"""Watch-only mode against a real firmware boot: dnsmasq serves SeaBIOS + iPXE in QEMU (TCG)
through pxelinux to kernel and initrd, while `pxetui watch` serves nothing and shows the
lease, the TFTP transfers and the client's timeline, attributed to dnsmasq."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from netns import require_tool, wait_for

pytestmark = [pytest.mark.root, pytest.mark.qemu]

PXELINUX = "/usr/lib/PXELINUX/pxelinux.0"
LDLINUX = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
KERNEL = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux"
MAC = "52:54:00:c4:97:01"


def test_watch_follows_a_qemu_bios_boot_served_by_dnsmasq(netns, tmp_path):
    require_tool("qemu-system-x86_64", package="qemu-system-x86")
    require_tool("dnsmasq", package="dnsmasq-base")
    require_tool(PXELINUX, package="pxelinux")
    require_tool(LDLINUX, package="syslinux-common")
    require_tool(KERNEL, package="debian-installer-12-netboot-amd64")
    root = tmp_path / "tftp"
    (root / "pxelinux.cfg").mkdir(parents=True)
    shutil.copy(PXELINUX, root)
    shutil.copy(LDLINUX, root)
    shutil.copy(KERNEL, root / "linux")
    (root / "initrd.gz").write_bytes(os.urandom(300_000))
    (root / "pxelinux.cfg" / "default").write_text(
        "DEFAULT x\nLABEL x\n  KERNEL linux\n  INITRD initrd.gz\n  APPEND console=ttyS0\n")

    server, client = netns.pair()
    client.run("ip", "link", "add", "br0", "type", "bridge")
    client.run("ip", "link", "set", "eth0", "master", "br0")
    client.run("ip", "tuntap", "add", "tap0", "mode", "tap")
    client.run("ip", "link", "set", "tap0", "master", "br0")
    for dev in ("br0", "tap0"):
        client.run("ip", "link", "set", dev, "up")
    server.popen("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
                 "--bind-interfaces", "--dhcp-range=10.99.0.100,10.99.0.150", "--no-ping",
                 f"--dhcp-leasefile={tmp_path}/leases", "--dhcp-boot=pxelinux.0", "--enable-tftp",
                 f"--tftp-root={root}", log=tmp_path / "dnsmasq.log")
    out = tmp_path / "watch.out"
    watch = server.python("-m", "pxetui", "watch", "--interface", "eth0", "--duration", "150",
                          "--refresh", "0", "--stuck-seconds", "3", log=out)
    wait_for(lambda: out.exists() and "watching eth0" in out.read_text(), timeout=15, what="watch start")
    # QEMU's default ROM for virtio-net is iPXE (Debian ipxe-qemu): SeaBIOS + iPXE.
    qemu = client.popen("timeout", "140", "qemu-system-x86_64", "-accel", "tcg", "-m", "512",
                        "-display", "none", "-serial", f"file:{tmp_path}/serial.log", "-monitor", "none",
                        "-boot", "n",
                        "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
                        "-device", f"virtio-net-pci,netdev=n0,mac={MAC}",
                        log=tmp_path / "qemu.log")
    try:
        wait_for(lambda: re.search(r"transfer initrd\.gz done", out.read_text()), timeout=130, interval=0.5,
                 what="the initrd download seen by watch")
    finally:
        client.stop(qemu)
        server.stop(watch)
    text = out.read_text()
    lease = re.search(rf"lease +{MAC} (10\.99\.0\.\d+) from 10\.99\.0\.1", text)
    assert lease, text
    ip = lease.group(1)
    dnsmasq_mac = server.run("cat", "/sys/class/net/eth0/address").stdout.strip()
    assert re.search(rf"10\.99\.0\.1 +{dnsmasq_mac} +{re.escape(ip)} +pxelinux\.0", text), text
    for path in ("pxelinux.0", "ldlinux.c32", "pxelinux.cfg/default", "linux", "initrd.gz"):
        assert re.search(rf"{re.escape(ip)} +tftp +{re.escape(path)} .* done", text), (path, text)
    assert f"Client {MAC}  ip {ip}  firmware bios/ipxe" in text
    timeline = text[text.index(f"Client {MAC}"):]
    found = re.findall(r"\+ *[\d.]+s  (\w+)", timeline)
    assert found == ["discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd"], timeline
