"""`pxetui analyze` and `watch` show installers' syslog and kernels' netconsole lines seen on
the wire (docs/CLIENT-LOGS.md), decoded by pxetui.clientlogs.decode as the logs service does,
each under the MAC of the machine that sent it. The capture is built with scapy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from test_capture_filters import _matcher

from pxetui.capture.decode import Decoder
from pxetui.capture.filters import boot_filter
from pxetui.capture.pcap import PcapWriter
from pxetui.commands import analyze
from pxetui.events import ClientLog

SRV, SRV_MAC = "10.99.0.1", "52:54:00:aa:00:01"
DI, DI_IP = "52:54:00:12:00:01", "10.99.0.50"  # a Debian installer, a DHCP client
LAB = "52:54:00:12:00:02"  # a lab kernel with netconsole=, never seen in DHCP
ROUTER = "52:54:00:fe:00:01"
T0 = 1_790_000_000.0
PRESEED = "successfully loaded preseed file from http://10.99.0.1/d-i/preseed.cfg"


def dhcp(msg: str, src: str, dst: str, eth_src: str, yiaddr: str = "0.0.0.0") -> bytes:
    opts: list = [("message-type", msg)]
    if msg == "discover":
        opts.append(("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"))
    else:
        opts += [("server_id", SRV), ("lease_time", 3600)]
    op, sport, dport = (1, 68, 67) if msg == "discover" else (2, 67, 68)
    return bytes(Ether(src=eth_src, dst="ff:ff:ff:ff:ff:ff") / IP(src=src, dst=dst)
                 / UDP(sport=sport, dport=dport)
                 / BOOTP(op=op, xid=7, yiaddr=yiaddr, chaddr=bytes.fromhex(DI.replace(":", "")))
                 / DHCP(options=[*opts, "end"]))


def datagram(eth_src: str, src: str, dport: int, payload: bytes, sport: int = 40000) -> bytes:
    return bytes(Ether(src=eth_src, dst=SRV_MAC) / IP(src=src, dst=SRV)
                 / UDP(sport=sport, dport=dport) / Raw(payload))


# busybox syslogd -R, as d-i sends it: RFC 3164 without a host name (docs/CLIENT-LOGS.md)
FRAMES = [
    (0.0, dhcp("discover", "0.0.0.0", "255.255.255.255", DI)),
    (0.5, dhcp("ack", SRV, "255.255.255.255", SRV_MAC, yiaddr=DI_IP)),
    (30.0, datagram(DI, DI_IP, 514, b"<13>Dec  7 09:40:01 main-menu[201]: INFO: Menu item "
                                     b"'network-preseed' selected")),
    (31.0, datagram(DI, DI_IP, 514, b"<13>Dec  7 09:40:02 preseed: " + PRESEED.encode())),
    (32.0, datagram(DI, DI_IP, 514, b"<999> not a syslog PRI")),  # skipped, counted
    (33.0, datagram(DI, DI_IP, 514, b"\x00\x04\x00\x01")),  # a TFTP ACK to an ephemeral 514
    (34.0, datagram(LAB, "10.99.0.77", 6666, b"e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex\n")),
    # the installer's line through a router: its lease, not the frame, names the machine
    (35.0, datagram(ROUTER, DI_IP, 514, b"<13>Dec  7 09:40:05 main-menu[201]: INFO: Menu item "
                                        b"'partman-base' selected")),
]


@pytest.fixture
def pcap(tmp_path: Path) -> Path:
    p = tmp_path / "client_logs.pcap"
    with PcapWriter(p) as w:
        for t, data in FRAMES:
            w.write(data, T0 + t)
    return p


def args(pcap: Path, **more: object) -> argparse.Namespace:
    base: dict[str, object] = dict(pcap=str(pcap), stuck_seconds=90.0, http_port=[80], verbose=False,
                                   json=False, syslog_port=514, netconsole_port=6666, log_lines=20)
    return argparse.Namespace(**{**base, **more})


def test_decoder_reads_log_ports_only_when_asked():
    on = Decoder(log_ports=(514, 6666))
    off = Decoder()  # the engine's capture: its logs service reads these
    got: list[ClientLog] = []
    for t, data in FRAMES:
        got += [e for e in on.feed(data, T0 + t) if isinstance(e, ClientLog)]
        assert not [e for e in off.feed(data, T0 + t) if isinstance(e, ClientLog)]
    assert [(e.mac, e.ip, e.source, e.app, e.format) for e in got] == [
        (DI, DI_IP, "syslog", "main-menu", "rfc3164"),
        (DI, DI_IP, "syslog", "preseed", "rfc3164"),
        (LAB, "10.99.0.77", "netconsole", "kernel", "netconsole"),
        (DI, DI_IP, "syslog", "main-menu", "rfc3164"),
    ]
    assert got[1].message == PRESEED and got[1].severity == 5 and got[1].facility == 1
    assert got[2].message == "e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex"
    assert on.undecoded == 1  # the datagram that is not syslog


def test_analyze_prints_each_clients_lines_under_its_mac(pcap, capsys):
    assert analyze.main(args(pcap)) == 0
    out = capsys.readouterr().out
    client, _, rest = out.partition(f"Client {DI}")[2].partition("Log lines from")
    assert "log lines (3):" in client
    assert f"syslog     preseed: {PRESEED}" in client
    assert "main-menu: INFO: Menu item 'partman-base' selected" in client
    assert "e1000" not in client
    # the tracker read the installer's lines: its install stages are on the timeline
    assert " seed " in client and " partitioning " in client
    assert rest.startswith(f" {LAB} (not a boot client)")
    assert "netconsole kernel: e1000: eth0 NIC Link is Up" in rest


def test_analyze_log_lines_limit_and_json(pcap, capsys):
    assert analyze.main(args(pcap, log_lines=1)) == 0
    out = capsys.readouterr().out
    assert "log lines (3, the last 1 shown):" in out and PRESEED not in out
    assert analyze.main(args(pcap, json=True)) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    logs = [r for r in rows if r["type"] == "ClientLog"]
    assert [r["message"] for r in logs if r["mac"] == DI][1] == PRESEED
    assert len(logs) == 4 and {r["mac"] for r in logs} == {DI, LAB}


def test_analyze_other_ports(pcap, capsys):
    """A site whose syslog is elsewhere: port 514's datagrams are then not log lines."""
    assert analyze.main(args(pcap, syslog_port=5140)) == 0
    out = capsys.readouterr().out
    assert PRESEED not in out and "e1000" in out


def test_watch_filter_keeps_log_datagrams_only_when_asked():
    syslog, netcon = FRAMES[2][1], FRAMES[6][1]
    watching = _matcher(boot_filter(log_ports=(514, 6666)))
    serving = _matcher(boot_filter())
    assert watching(Ether(syslog)) and watching(Ether(netcon))
    assert not serving(Ether(syslog)) and not serving(Ether(netcon))
    # only the log ports themselves: a datagram to the next port is not kept
    assert not watching(Ether(datagram(DI, DI_IP, 515, b"<13>Dec  7 09:40:03 anna: to port 515")))


@pytest.mark.parametrize("command", ["analyze", "watch"])
@pytest.mark.parametrize("ports, problem", [
    (("6666", "6666"), "--netconsole-port: 6666 is also --syslog-port"),
    (("0", "6666"), "--syslog-port: 0 is not a port number (1..65535)"),
    (("514", "70000"), "--netconsole-port: 70000 is not a port number (1..65535)"),
])
def test_log_port_options_refuse_what_the_logs_service_refuses(command, ports, problem, tmp_path, capsys):
    # The same checks as [logs] syslog_port/netconsole_port (config.log_port_problems); nothing
    # is opened before they pass (the pcap does not exist, the interface is not ours).
    from pxetui import cli

    where = [str(tmp_path / "none.pcap")] if command == "analyze" else ["--interface", "nosuchif0"]
    code = cli.main([command, *where, "--syslog-port", ports[0], "--netconsole-port", ports[1]])
    assert code == 2
    assert problem in capsys.readouterr().err
