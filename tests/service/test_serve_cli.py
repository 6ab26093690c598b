"""`pxetui serve` as a user runs it, inside a namespace: refusals are clear and non-zero."""

from __future__ import annotations

import sys

import pytest
from netns import wait_for

pytestmark = pytest.mark.root


def serve(ns, tmp_path, *args: str, timeout: float = 20):
    return ns.run(sys.executable, "-m", "pxetui", "serve", "--state-dir", str(tmp_path / "st"), *args,
                  check=False, timeout=timeout)


def test_unknown_interface_lists_usable_ones(netns, tmp_path):
    s, _ = netns.pair()
    r = serve(s, tmp_path, "--interface", "wlan9")
    assert r.returncode == 2
    assert "interface wlan9: does not exist; usable interfaces: eth0 (10.99.0.1/24, up)" in r.stderr


def test_interface_without_address_and_down(netns, tmp_path):
    s, _ = netns.pair()
    s.run("ip", "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy1")
    r = serve(s, tmp_path, "--interface", "dummy0")
    assert r.returncode == 2 and "interface dummy0: is down" in r.stderr
    s.run("ip", "link", "set", "dummy0", "up")
    s.run("ip", "link", "set", "dummy1", "up")
    r = serve(s, tmp_path, "--interface", "dummy0")
    assert r.returncode == 2 and "interface dummy0: has no IPv4 address" in r.stderr


def test_range_outside_subnet_is_refused(netns, tmp_path):
    s, _ = netns.pair()
    r = serve(s, tmp_path, "--interface", "eth0", "--range", "10.1.0.5-10.1.0.9")
    assert r.returncode == 2
    assert "dhcp.range: 10.1.0.5 is outside eth0's subnet 10.99.0.0/24" in r.stderr


def test_port_in_use_names_the_holder(netns, tmp_path):
    s, _ = netns.pair()
    holder = s.popen(sys.executable, "-c",
                     "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
                     "s.bind(('0.0.0.0', 8099)); s.listen(); time.sleep(60)")
    wait_for(lambda: "8099" in s.run("ss", "-ltn").stdout, what="the holder to listen")
    r = serve(s, tmp_path, "--interface", "eth0", "--dhcp", "off", "--no-capture", "--http-port", "8099")
    assert r.returncode == 1
    assert "TCP port 8099 is held by python" in r.stderr and f"(PID {holder.pid})" in r.stderr
