"""`pxetui watch` shows the syslog and netconsole lines a machine sends on the wire (its BPF
filter keeps UDP 514 and 6666, docs/CLIENT-LOGS.md), each under that machine's MAC, in a
namespace pair: nothing listens on either port, watch serves nothing."""

from __future__ import annotations

import pytest
from netns import wait_for

pytestmark = pytest.mark.root

SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"<13>Dec  7 09:40:02 preseed: successfully loaded preseed file from http://x/p.cfg",
         ("10.99.0.1", 514))
s.sendto(b"e1000: eth0 NIC Link is Up\\n", ("10.99.0.1", 6666))
s.sendto(b"<13>Dec  7 09:40:03 anna: to port 515, not a log port", ("10.99.0.1", 515))
"""


def test_watch_prints_log_lines_under_the_senders_mac(netns, tmp_path):
    server, client = netns.pair(client_addr="10.99.0.50/24")
    mac = client.run("cat", "/sys/class/net/eth0/address").stdout.strip()
    out = tmp_path / "watch.out"
    proc = server.python("-m", "pxetui", "watch", "--interface", "eth0", "--duration", "20",
                         "--refresh", "0", log=out)
    try:
        wait_for(lambda: out.exists() and "watching eth0" in out.read_text(), timeout=15,
                 what="watch start")
        client.run("python3", "-c", SEND, timeout=10)
        wait_for(lambda: "NIC Link is Up" in out.read_text(), timeout=10, what="the netconsole line")
    finally:
        server.stop(proc)  # SIGTERM: watch prints its final tables and exits
    text = out.read_text()
    assert f"log      {mac} syslog preseed: successfully loaded preseed file" in text, text
    assert f"log      {mac} netconsole kernel: e1000: eth0 NIC Link is Up" in text, text
    assert "port 515" not in text  # not shown as a log line (the filter itself: test_capture_clientlogs.py)
    # the preseed line is an installer's: the tracker made the machine a client (stage seed),
    # and its lines are listed under it in the final tables
    client = text.partition(f"Client {mac}")[2]
    assert " seed " in client and "log lines (2):" in client, text
