"""Each diagnosis rule, proven with a capture of real traffic (tests/data/pcap): QEMU firmware
(SeaBIOS+iPXE, OVMF) or busybox udhcpc + curl against dnsmasq and a plain HTTP server, in
namespaces. Healthy captures must produce no rule at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from pxetui import diagnosis
from pxetui.commands import analyze
from pxetui.commands.analyze import replay
from pxetui.tracker import Tracker

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"


def client(name: str, mac: str, stuck: float = 60):
    tr = Tracker(stuck_seconds=stuck)
    for _ in replay(str(DATA / name), stuck_seconds=stuck, tracker=tr):
        pass
    return tr.clients[mac]


def updates(name: str, mac: str, stuck: float = 60) -> list:
    tr = Tracker(stuck_seconds=stuck)
    return [e for e in replay(str(DATA / name), stuck_seconds=stuck, tracker=tr)
            if e.type == "ClientUpdate" and e.mac == mac]


def rules(name: str, mac: str) -> list[str]:
    return [f.rule for f in diagnosis.diagnose(client(name, mac).events)]


@pytest.mark.parametrize("pcap,mac,first,words", [
    ("foreign_win.pcap", "52:54:00:12:34:0a", "Another DHCP server's offer won", ["10.99.0.2", "pxelinux.0"]),
    ("noboot.pcap", "52:54:00:12:34:07", "No boot file in any offer", ["10.99.0.1"]),
    ("uefi_bios_loader.pcap", "52:54:00:12:34:06", "UEFI client", ["option 93 = 7", "BIOS loader pxelinux.0"]),
    ("bios_notfound.pcap", "52:54:00:12:34:05", "TFTP file not found", ["'missing.0'"]),
    # shim asks for grubx64.efi in the TFTP root; 70 s later OVMF tries HTTP boot (a new attempt).
    ("uefi_shim_notfound.pcap", "52:54:00:12:34:02", "TFTP file not found", ["'grubx64.efi'", "shim"]),
    ("bios_timeout.pcap", "52:54:00:12:34:09", "Repeated TFTP timeouts", ["pxelinux.0", "firewall"]),
    ("chainloop.pcap", "52:54:00:12:34:08", "iPXE chain loop", ["undionly.kpxe"]),
    ("http404.pcap", "52:54:00:12:34:0b", "HTTP 404", ["/live/filesystem.squashfs", "command line"]),
    ("bigsquash.pcap", "52:54:00:12:34:0b", "The root filesystem is 1335 MiB", ["1024 MiB"]),
    # OVMF + dnsmasq proxyDHCP beside a router dnsmasq: shim, GRUB, then GRUB asks the router.
    ("uefi_proxy_grub.pcap", "52:54:00:12:34:0c", "GRUB (debian-installer/amd64/grubx64.efi) was loaded",
     ["proxyDHCP server 10.99.0.1", "ACK (10.99.0.2)", "iPXE"]),
])
def test_rule_from_capture(pcap, mac, first, words):
    said = [u.diagnosis for u in updates(pcap, mac) if u.diagnosis]
    assert said, "no diagnosis published"
    assert said[0].startswith(first), said[0]  # the most specific rule leads
    for w in words:
        assert w in said[0], said[0]


@pytest.mark.parametrize("pcap,mac", [
    ("bios_pxelinux.pcap", "52:54:00:12:34:01"),  # nine pxelinux.cfg probes fail on every boot
    ("proxy_pxelinux.pcap", "52:54:00:12:34:04"),  # the router's offer without a file is normal
])
def test_healthy_boots_have_no_finding(pcap, mac):
    assert rules(pcap, mac) == []
    assert "kernel may be running" in client(pcap, mac).diagnosis


def test_definite_findings_appear_without_waiting():
    # Before the end of the capture (the last update is the end-of-capture tick), only
    # definite findings may be published: a loop at once, a healthy boot's probes never.
    loop = updates("chainloop.pcap", "52:54:00:12:34:08", stuck=10_000)
    assert any("iPXE chain loop" in u.diagnosis and u.stage == "failed" for u in loop[:-1])
    healthy = updates("bios_pxelinux.pcap", "52:54:00:12:34:01", stuck=10_000)
    assert len(healthy) > 10 and all(u.diagnosis == "" for u in healthy[:-1])


def test_only_the_definite_rules_can_give_a_definite_finding():
    # The tracker asks only DEFINITE_RULES after each transfer: any other rule must never
    # return a definite finding, from its code (no `definite=`) and on every test capture.
    import inspect

    others = [r for r in diagnosis.RULES if r not in diagnosis.DEFINITE_RULES]
    assert len(others) == 7 and all("definite=" not in inspect.getsource(r) for r in others)
    assert all("definite=" in inspect.getsource(r) for r in diagnosis.DEFINITE_RULES)
    found = set()
    for pcap in sorted(DATA.glob("*.pcap")):
        tr = Tracker()
        for _ in replay(str(pcap), tracker=tr):
            pass
        for c in tr.clients.values():
            everything = diagnosis.diagnose(c.events)
            assert diagnosis.definite(c.events) == [f for f in everything if f.definite], pcap
            found |= {f.rule for f in everything if f.definite}
    assert {"ipxe_chain_loop", "squashfs_ram", "http_404_kernel_arg"} <= found


def test_squashfs_rule_needs_memory_and_size():
    base = [{"type": "TransferStarted", "ts": 1.0, "path": "/live/filesystem.squashfs", "transfer_id": "a"},
            {"type": "TransferProgress", "ts": 1.1, "transfer_id": "a", "size": 900 << 20}]
    assert diagnosis.squashfs_ram(base) is None
    cb = {"type": "BootCallback", "ts": 0.5, "detail": "memsize=4096"}
    assert diagnosis.squashfs_ram([cb, *base]) is None
    cb["detail"] = "memsize=1500"
    f = diagnosis.squashfs_ram([cb, *base])
    assert f is not None and "900 MiB" in f.message and "1500 MiB" in f.message


def test_bios_client_sent_uefi_loader():
    evs = [{"type": "DhcpPacket", "ts": 1.0, "msg_type": "DISCOVER", "arch": 0},
           {"type": "DhcpPacket", "ts": 1.1, "msg_type": "ACK", "yiaddr": "10.0.0.5", "boot_file": "grubx64.efi"}]
    f = diagnosis.firmware_mismatch(evs)
    assert f is not None and "BIOS client" in f.message and "grubx64.efi" in f.message
    evs[0]["arch"] = 9  # 9 is x64 UEFI too (docs/FIELD-NOTES.md: the 7/9 swap)
    assert diagnosis.firmware_mismatch(evs) is None


def test_analyze_command_prints_timeline_and_diagnosis(capsys):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    analyze.register(sub)
    args = parser.parse_args(["analyze", str(DATA / "foreign_win.pcap")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "DHCP servers seen: 10.99.0.2" in out and "Client 52:54:00:12:34:0a" in out
    assert "discover" in out and "Another DHCP server's offer won" in out
    args = parser.parse_args(["analyze", str(DATA / "nope.pcap")])
    assert args.func(args) == 2
    assert "cannot open" in capsys.readouterr().err


def test_no_answer_rule():
    evs = [{"type": "DhcpPacket", "ts": t, "msg_type": "DISCOVER", "arch": 7} for t in (1.0, 5.0, 13.0)]
    f = diagnosis.no_answer(evs)
    assert f is not None and "3 DISCOVER(s) over 12 s" in f.message
    evs.append({"type": "DhcpPacket", "ts": 14.0, "msg_type": "OFFER", "yiaddr": "10.0.0.9"})
    assert diagnosis.no_answer(evs) is None


def test_timeouts_that_recovered_are_not_a_finding():
    evs = [{"type": "TransferStarted", "ts": 1.0, "transfer_id": "a", "path": "pxelinux.0"},
           {"type": "TransferFailed", "ts": 5.0, "transfer_id": "a", "path": "pxelinux.0", "reason": "timed out"},
           {"type": "TransferStarted", "ts": 6.0, "transfer_id": "b", "path": "pxelinux.0"},
           {"type": "TransferFailed", "ts": 9.0, "transfer_id": "b", "path": "pxelinux.0", "reason": "timed out"},
           {"type": "TransferStarted", "ts": 10.0, "transfer_id": "c", "path": "pxelinux.0"}]
    f = diagnosis.tftp_timeouts(evs)
    assert f is not None and not f.definite
    evs.append({"type": "TransferFinished", "ts": 11.0, "transfer_id": "c", "path": "pxelinux.0"})
    assert diagnosis.tftp_timeouts(evs) is None


def test_optional_404_after_kernel_waits_for_a_stall():
    evs = [{"type": "TransferStarted", "ts": 1.0, "transfer_id": "k", "path": "/vmlinuz", "protocol": "http"},
           {"type": "TransferFailed", "ts": 2.0, "transfer_id": "x", "path": "/extra/optional.cfg",
            "protocol": "http", "status": 404}]
    f = diagnosis.http_404_kernel_arg(evs)
    assert f is not None and not f.definite
    evs[1]["path"] = "/casper/filesystem.squashfs"
    assert diagnosis.http_404_kernel_arg(evs).definite


def test_pxetui_analyze_cli_on_a_tcpdump_capture():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pxetui", "analyze", str(DATA / "uefi_bios_loader.pcap")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Client 52:54:00:12:34:06" in r.stdout and "firmware uefi64" in r.stdout
    assert "diagnosis: UEFI client (x64 UEFI, option 93 = 7) was sent the BIOS loader pxelinux.0" in r.stdout


def test_pxetui_analyze_json(capsys):
    import argparse
    import json

    parser = argparse.ArgumentParser()
    analyze.register(parser.add_subparsers())
    args = parser.parse_args(["analyze", "--json", str(DATA / "chainloop.pcap")])
    assert args.func(args) == 0
    objs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (server,) = [o for o in objs if o["type"] == "ForeignDhcpServer"]
    assert server["server_ip"] == "10.99.0.1" and server["boot_file"] == "undionly.kpxe"
    (client,) = [o for o in objs if o["type"] == "ClientUpdate"]
    assert client["mac"] == "52:54:00:12:34:08" and "iPXE chain loop" in client["diagnosis"]
    assert [s["stage"] for s in client["stages"]] == ["discover", "offer", "ack", "bootloader"]


def _dhcp(ts: float, kind: str = "DISCOVER") -> dict:
    return {"type": "DhcpPacket", "ts": ts, "msg_type": kind, "direction": "in"}


def _load(ts: float, path: str = "/ipxe.efi") -> dict:
    return {"type": "TransferStarted", "ts": ts, "path": path, "transfer_id": str(ts), "protocol": "http"}


def test_chain_loop_needs_dhcp_between_loads():
    # OVMF's HTTP boot GETs ipxe.efi for its size, aborts, GETs it again (and again after a
    # lost segment): three loads after one DHCP exchange are one fetch, not a loop (CI saw it).
    one_fetch = [_dhcp(0.0), _dhcp(0.1, "REQUEST"), _load(1.0), _load(1.2), _load(1.5)]
    assert diagnosis.ipxe_chain_loop(one_fetch) is None
    loop = [e for i in range(3) for e in (_dhcp(i * 10.0), _load(i * 10.0 + 1))]
    found = diagnosis.ipxe_chain_loop(loop)
    assert found and found.definite and "3 times" in found.message
    # iPXE then got its script: not a loop any more.
    assert diagnosis.ipxe_chain_loop([*loop, _load(40.0, "/boot.ipxe")]) is None
