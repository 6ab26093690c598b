"""The client tracker: golden timelines from real captures, de-duplication of our own events
against the wire's, stuck detection, new boots, and history kept in SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from pxetui.commands.analyze import replay
from pxetui.tracker import Tracker, classify

DATA = Path(__file__).resolve().parent.parent / "data" / "pcap"


def track(name: str, stuck: float = 90.0) -> Tracker:
    tr = Tracker(stuck_seconds=stuck)
    for _ in replay(str(DATA / name), stuck_seconds=stuck, tracker=tr):
        pass
    return tr


def stages(tr: Tracker, mac: str) -> list[str]:
    return [s["stage"] for s in tr.clients[mac].stages]


def test_bios_pxelinux_timeline():
    tr = track("bios_pxelinux.pcap")
    c = tr.clients["52:54:00:12:34:01"]
    assert stages(tr, c.mac) == ["discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd"]
    u = c.update(c.last)
    assert u.firmware == "bios/ipxe" and u.arch == 0 and u.ip == "10.99.0.128"
    assert u.vendor_class == "PXEClient:Arch:00000:UNDI:002001"
    kinds = {f["path"]: (f["kind"], f["status"]) for f in u.files}
    assert kinds["pxelinux.0"] == ("bootloader", "done")
    assert kinds["ldlinux.c32"] == ("bootloader", "done")
    assert kinds["pxelinux.cfg/default"] == ("menu", "done")
    assert kinds["pxelinux.cfg/01-52-54-00-12-34-01"] == ("menu", "failed")
    assert kinds["debian-installer/amd64/linux"] == ("kernel", "done")
    assert kinds["debian-installer/amd64/initrd.gz"] == ("initrd", "done")
    durations = [s["duration"] for s in u.stages]
    assert all(d is not None and d >= 0 for d in durations[:-1]) and durations[-1] is None
    assert u.stages[0]["ts"] <= u.stages[-1]["ts"]
    assert u.progress == pytest.approx(0.75)


def test_proxy_timeline_shows_proxy_offer_and_4011():
    tr = track("proxy_pxelinux.pcap")
    c = tr.clients["52:54:00:12:34:04"]
    assert stages(tr, c.mac) == ["discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd"]
    offer, ack = c.stages[1], c.stages[2]
    assert "proxyDHCP" in offer["detail"] and "4011" in ack["detail"]


def test_http_timeline_with_rootfs():
    tr = track("http404.pcap")
    c = tr.clients["52:54:00:12:34:0b"]
    assert stages(tr, c.mac) == ["discover", "offer", "ack", "menu", "kernel", "initrd", "rootfs"]
    kinds = {f["path"]: f["kind"] for f in c.files.values()}
    assert kinds == {"/boot.ipxe": "menu", "/cb?memsize=1024": "other", "/linux": "kernel",
                     "/initrd.gz": "initrd", "/live/filesystem.squashfs": "rootfs"}


def test_uefi_identity_survives_http_boot_retry():
    tr = track("uefi_shim_notfound.pcap")
    c = tr.clients["52:54:00:12:34:02"]
    assert c.update(0).firmware == "uefi64" and c.arch == 7
    assert [f for f in c.files.values() if f["status"] == "probe"]  # EDK2's size probe, kept apart


@pytest.mark.parametrize("path,reached,kind", [
    ("pxelinux.0", set(), "bootloader"), ("grubx64.efi", set(), "bootloader"),
    ("boot\\x64\\wdsnbp.com", set(), "bootloader"), ("pxelinux.cfg/default", {"bootloader"}, "menu"),
    ("grub/grub.cfg", {"bootloader"}, "menu"), ("/boot.ipxe", set(), "menu"),
    ("casper/vmlinuz", {"menu"}, "kernel"), ("images/pxeboot/initrd.img", {"kernel"}, "initrd"),
    ("boot/initramfs-lts", {"kernel"}, "initrd"), ("live/filesystem.squashfs", {"initrd"}, "rootfs"),
    ("ubuntu.iso", {"initrd"}, "rootfs"), ("boot/modloop-lts", {"initrd"}, "rootfs"),
    ("mystery.bin", {"kernel"}, "initrd"), ("mystery.bin", {"bootloader"}, "other"),
    ("ldlinux.c32", {"bootloader"}, "bootloader"), ("memtest86+x64.bin", {"menu"}, "kernel"),
])
def test_classify(path, reached, kind):
    assert classify(path, reached) == kind


MAC, IP = "52:54:00:00:00:09", "10.99.0.150"


def dhcp(msg: str, ts: float, service: str, direction: str, **kw) -> dict:
    d = {"type": "DhcpPacket", "ts": ts, "service": service, "mac": MAC, "msg_type": msg, "xid": 42,
         "direction": direction, "arch": 0, "vendor_class": "PXEClient:Arch:00000:UNDI:002001"}
    d.update(kw)
    return d


def test_own_and_wire_copies_of_one_exchange_count_once():
    tr = Tracker()
    own = "dhcp"
    assert tr.feed(dhcp("DISCOVER", 1.0, own, "in"))
    assert tr.feed(dhcp("DISCOVER", 1.001, "capture", "wire")) == []
    tr.feed(dhcp("ACK", 2.0, own, "out", yiaddr=IP, server_ip="10.99.0.1", boot_file="pxelinux.0"))
    assert tr.feed(dhcp("ACK", 2.001, "capture", "wire", yiaddr=IP, server_ip="10.99.0.1")) == []
    # TFTP: the wire's copy first, ours a moment later: ours takes the row over.
    tr.feed({"type": "TransferStarted", "ts": 3.0, "service": "capture", "ip": IP, "transfer_id": "wire-tftp-1",
             "protocol": "tftp", "path": "pxelinux.0", "ours": True})
    tr.feed({"type": "TransferStarted", "ts": 3.002, "service": "tftp", "ip": IP, "transfer_id": "t1",
             "protocol": "tftp", "path": "pxelinux.0", "size": 42430})
    assert tr.feed({"type": "TransferFinished", "ts": 3.5, "service": "capture", "ip": IP,
                    "transfer_id": "wire-tftp-1", "path": "pxelinux.0", "bytes_done": 1}) == []
    (u,) = tr.feed({"type": "TransferFinished", "ts": 3.6, "service": "tftp", "ip": IP, "transfer_id": "t1",
                    "path": "pxelinux.0", "bytes_done": 42430})
    (row,) = u.files
    assert row["id"] == "t1" and row["source"] == "own" and row["bytes"] == 42430 and row["status"] == "done"
    # Ours first, the wire's copy after: dropped, and its later events too.
    tr.feed({"type": "TransferStarted", "ts": 4.0, "service": "tftp", "ip": IP, "transfer_id": "t2",
             "protocol": "tftp", "path": "ldlinux.c32"})
    assert tr.feed({"type": "TransferStarted", "ts": 4.001, "service": "capture", "ip": IP,
                    "transfer_id": "wire-tftp-2", "protocol": "tftp", "path": "ldlinux.c32", "ours": True}) == []
    assert tr.feed({"type": "TransferFailed", "ts": 4.5, "service": "capture", "ip": IP,
                    "transfer_id": "wire-tftp-2", "path": "ldlinux.c32", "reason": "x"}) == []
    c = tr.clients[MAC]
    assert list(c.files) == ["t1", "t2"]
    assert [s["stage"] for s in c.stages] == ["discover", "ack", "bootloader"]


def test_wire_transfers_of_the_same_file_twice_are_both_kept():
    tr = Tracker()
    tr.feed(dhcp("ACK", 1.0, "capture", "wire", yiaddr=IP, server_ip="10.99.0.1"))
    for i in (1, 2):
        tr.feed({"type": "TransferStarted", "ts": 2.0 + i * 0.01, "service": "capture", "ip": IP,
                 "transfer_id": f"w{i}", "path": "x.efi", "ours": False})
    assert len(tr.clients[MAC].files) == 2


def test_stuck_detection_and_booted():
    tr = Tracker(stuck_seconds=30)
    tr.feed(dhcp("DISCOVER", 100.0, "dhcp", "in"))
    tr.feed(dhcp("OFFER", 100.5, "dhcp", "out", yiaddr=IP, server_ip="10.99.0.1", boot_file="pxelinux.0"))
    assert tr.tick(120.0) == []
    (u,) = tr.tick(131.0)
    assert u.type == "ClientUpdate" and "No progress for 30 s" in u.diagnosis and "offer" in u.diagnosis
    assert u.stage == "stuck" and u.stages[-1]["stage"] == "offer"  # the UI alerts on "stuck"
    assert tr.tick(140.0) == []  # said once
    other = "52:54:00:00:00:10"
    tr.feed({"type": "LeaseGranted", "ts": 200.0, "service": "dhcp", "mac": other, "ip": "10.99.0.151"})
    tr.feed({"type": "BootCallback", "ts": 201.0, "service": "http", "ip": "10.99.0.151", "mac": other,
             "stage": "booted", "entry": "debian"})
    assert tr.clients[other].stage == "booted"
    assert all(u.mac != other for u in tr.tick(1000.0))


def test_new_boot_after_kernel_and_history_survives_restart(tmp_path):
    db = tmp_path / "state" / "pxetui.db"
    tr = Tracker(db_path=db)
    tr.feed(dhcp("DISCOVER", 1.0, "dhcp", "in"))
    tr.feed(dhcp("ACK", 1.5, "dhcp", "out", yiaddr=IP, server_ip="10.99.0.1"))
    tr.feed({"type": "TransferStarted", "ts": 2.0, "service": "tftp", "ip": IP, "transfer_id": "a",
             "path": "pxelinux.0"})
    tr.feed({"type": "TransferStarted", "ts": 3.0, "service": "tftp", "ip": IP, "transfer_id": "b",
             "path": "vmlinuz"})
    tr.close()
    tr = Tracker(db_path=db)
    c = tr.clients[MAC]
    assert c.stage == "kernel" and c.ip == IP and list(c.files) == ["a", "b"]
    tr.feed({"type": "TransferStarted", "ts": 4.0, "service": "tftp", "ip": IP, "transfer_id": "c",
             "path": "initrd.img"})  # IP -> MAC remembered across the restart
    assert tr.clients[MAC].stage == "initrd"
    tr.feed(dhcp("DISCOVER", 500.0, "dhcp", "in", xid=43))  # the machine boots again
    c = tr.clients[MAC]
    assert c.boot == 2 and [s["stage"] for s in c.stages] == ["discover"] and c.files == {}
    hist = tr.history(MAC)
    assert [h["boot"] for h in hist] == [1, 2]
    assert hist[0]["stage"] == "initrd" and [s["stage"] for s in hist[0]["stages"]][-1] == "initrd"
    tr.close()


def test_ipxe_second_dhcp_is_the_same_boot():
    tr = Tracker()
    tr.feed(dhcp("DISCOVER", 1.0, "dhcp", "in"))
    tr.feed(dhcp("ACK", 1.5, "dhcp", "out", yiaddr=IP, server_ip="10.99.0.1"))
    tr.feed({"type": "TransferStarted", "ts": 2.0, "service": "tftp", "ip": IP, "transfer_id": "a",
             "path": "undionly.kpxe"})
    tr.feed(dhcp("DISCOVER", 5.0, "dhcp", "in", xid=77, user_class="iPXE", ipxe=True))
    c = tr.clients[MAC]
    assert c.boot == 1 and c.stage == "bootloader" and c.ipxe


def test_unknown_events_and_unknown_clients_are_ignored():
    tr = Tracker()
    assert tr.feed({"type": "Log", "ts": 1.0, "message": "x"}) == []
    assert tr.feed({"type": "TransferStarted", "ts": 1.0, "ip": "10.0.0.9", "transfer_id": "z", "path": "a"}) == []
    assert tr.clients == {}


def test_uefi_shim_grub_timeline():
    # OVMF's own PXE: shim (bootnetx64.efi) -> grubx64.efi -> grub.cfg -> kernel + initrd.
    tr = track("uefi_shim_grub.pcap")
    c = tr.clients["52:54:00:12:34:02"]
    assert stages(tr, c.mac) == ["discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd"]
    u = c.update(c.last)
    assert u.firmware == "uefi64" and u.arch == 7
    kinds = {f["path"]: f["kind"] for f in u.files if f["status"] == "done"}
    assert kinds["debian-installer/amd64/bootnetx64.efi"] == "bootloader"
    assert kinds["grubx64.efi"] == "bootloader"
    assert kinds["/debian-installer/amd64/grub/grub.cfg"] == "menu"  # GRUB: leading / (docs/FIELD-NOTES.md)
    assert kinds["/debian-installer/amd64/linux"] == "kernel"
    assert kinds["/debian-installer/amd64/initrd.gz"] == "initrd"
    assert any(f["status"] == "probe" for f in u.files)  # EDK2's tsize probe


def test_ipxe_http_timeline():
    tr = track("ipxe_http.pcap")
    c = tr.clients["52:54:00:12:34:03"]
    assert stages(tr, c.mac) == ["discover", "offer", "ack", "menu", "kernel", "initrd"]
    assert c.update(0).firmware == "bios/ipxe"
    done = {f["path"]: (f["protocol"], f["kind"], f["bytes"]) for f in c.files.values() if f["status"] == "done"}
    assert done["/boot.ipxe"] == ("http", "menu", 223)
    assert done["/linux"] == ("http", "kernel", 8222656)
    assert done["/initrd.gz"] == ("http", "initrd", 1_500_000)


def test_forget_drops_client_and_history(tmp_path):
    db = tmp_path / "t.db"
    tr = Tracker(db_path=db)
    tr.feed(dhcp("DISCOVER", 1.0, "dhcp", "in"))
    tr.feed(dhcp("ACK", 1.5, "dhcp", "out", yiaddr=IP, server_ip="10.99.0.1"))
    for i in range(5):  # a new file is written at once (progress alone: see the test below)
        tr.feed({"type": "TransferStarted", "ts": 2.0 + i, "service": "tftp", "ip": IP,
                 "transfer_id": f"t{i}", "path": f"f{i}.c32"})
    tr.close()
    tr = Tracker(db_path=db)
    assert len(tr.clients[MAC].files) == 5
    tr.forget(MAC)
    assert MAC not in tr.clients and tr.history(MAC) == []
    assert tr.feed({"type": "TransferStarted", "ts": 9.0, "ip": IP, "transfer_id": "z", "path": "x"}) == []
    tr.close()
    assert MAC not in Tracker(db_path=db).clients


def stored_bytes(db: Path, mac: str = MAC) -> int | None:
    """The bytes of a client's first file row as the database holds it (None: no row yet)."""
    import json

    from pxetui.store import connect

    conn = connect(db)
    try:
        row = conn.execute("SELECT data FROM tracker_files WHERE mac=? ORDER BY started LIMIT 1", (mac,)).fetchone()
        return None if row is None else json.loads(row["data"])["bytes"]
    finally:
        conn.close()


def test_changes_are_written_at_the_tick_in_one_transaction_and_on_close(tmp_path):
    db = tmp_path / "t.db"
    tr = Tracker(db_path=db)
    assert tr.db is not None
    statements: list[str] = []
    tr.db.set_trace_callback(statements.append)
    tr.feed(dhcp("ACK", 1.0, "dhcp", "out", yiaddr=IP, server_ip="10.99.0.1"))
    tr.feed({"type": "TransferStarted", "ts": 2.0, "service": "tftp", "ip": IP, "transfer_id": "t",
             "path": "vmlinuz", "size": 1000})
    (u,) = tr.feed({"type": "TransferProgress", "ts": 3.5, "service": "tftp", "ip": IP, "transfer_id": "t",
                    "bytes_done": 500, "size": 1000})
    assert [f["bytes"] for f in u.files] == [500] and not u.full  # the changed row only
    assert statements == [] and stored_bytes(db) is None  # nothing written between ticks
    tr.tick(4.0)
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements[-1] == "COMMIT"
    assert stored_bytes(db) == 500
    statements.clear()
    tr.tick(5.0)
    assert statements == []  # nothing changed: no transaction at all
    tr.feed({"type": "TransferProgress", "ts": 8.5, "service": "tftp", "ip": IP, "transfer_id": "t",
             "bytes_done": 700, "size": 1000})
    assert stored_bytes(db) == 500
    tr.close()  # and close writes what is left
    assert stored_bytes(db) == 700
    tr = Tracker(db_path=db)
    assert [h["stage"] for h in tr.history(MAC)] == ["kernel"]
    assert tr.clients[MAC].files["t"]["bytes"] == 700 and tr.ip_mac[IP] == MAC
    tr.close()


def test_a_transfers_size_is_recorded_once_for_diagnosis():
    tr = Tracker()
    tr.feed(dhcp("ACK", 1.0, "dhcp", "out", yiaddr=IP, server_ip="10.99.0.1"))
    for tid, start in (("a", 2.0), ("b", 3.0)):
        tr.feed({"type": "TransferStarted", "ts": start, "service": "tftp", "ip": IP, "transfer_id": tid,
                 "path": f"{tid}.img"})
    for i in range(4):  # interleaved: the newest event is often the other transfer's
        for tid in ("a", "b"):
            tr.feed({"type": "TransferProgress", "ts": 4.0 + i, "service": "tftp", "ip": IP,
                     "transfer_id": tid, "bytes_done": 100 * i, "size": 1000})
    tr.feed({"type": "TransferProgress", "ts": 9.0, "service": "tftp", "ip": IP, "transfer_id": "a",
             "bytes_done": 400, "size": 1000, "retransmits": 1})
    recorded = [(e["transfer_id"], e.get("retransmits")) for e in tr.clients[MAC].events
                if e["type"] == "TransferProgress"]
    assert recorded == [("a", None), ("b", None), ("a", 1)]


def test_uefi_proxy_timeline():
    # OVMF sets the broadcast flag, so the router's ACK is seen too; then port 4011 to the proxy.
    tr = track("uefi_proxy_grub.pcap")
    c = tr.clients["52:54:00:12:34:0c"]
    assert stages(tr, c.mac) == ["discover", "offer", "ack", "bootloader"]
    assert "proxyDHCP" in c.stages[1]["detail"] and "from 10.99.0.2" in c.stages[2]["detail"]
    assert any(e["type"] == "DhcpPacket" and e.get("port") == 4011 and e["msg_type"] == "ACK" for e in c.events)
    assert c.update(0).firmware == "uefi64"


def _as_our_tftp(ev: dict) -> dict:
    """A wire transfer event as our own TFTP service reports it: client IP only, no MAC."""
    return {**{k: v for k, v in ev.items() if k != "mac"}, "service": "tftp", "direction": "out"}


def test_proxy_request_binds_address_when_the_ack_is_unicast_and_unseen():
    # proxy_pxelinux.pcap as a switch port sees it when the address server's ACK is unicast
    # and the client does no port-4011 exchange (iPXE takes the boot file from our offer):
    # only the broadcast REQUEST (option 50) ties 10.99.0.131 to the MAC.
    from pxetui.capture.decode import Decoder
    from pxetui.capture.pcap import read_pcap

    lt, frames = read_pcap(DATA / "proxy_pxelinux.pcap")
    dec, tr = Decoder(linktype=lt), Tracker()
    for ts, data in frames:
        for e in dec.feed(data, ts):
            ev = e.to_dict()
            if ev["type"] == "LeaseGranted" or ev.get("msg_type") == "ACK" or ev.get("port") == 4011:
                continue
            tr.feed(_as_our_tftp(ev) if ev["type"].startswith("Transfer") else ev)
    c = tr.clients["52:54:00:12:34:04"]
    assert stages(tr, c.mac) == ["discover", "offer", "ack", "bootloader", "menu", "kernel", "initrd"]
    assert c.ip == "10.99.0.131" and tr.ip_mac["10.99.0.131"] == c.mac
    ack = c.stages[2]
    assert "10.99.0.131 requested from 10.99.0.2" in ack["detail"] and "not seen" in ack["detail"]
    assert ack["ts"] < c.stages[3]["ts"]  # the REQUEST's time, before the first transfer
    assert {f["kind"] for f in c.files.values()} >= {"bootloader", "menu", "kernel", "initrd"}


def test_request_never_takes_an_address_another_client_holds_by_ack():
    other = "52:54:00:00:00:0a"
    tr = Tracker()
    tr.feed({**dhcp("ACK", 1.0, "capture", "wire", yiaddr=IP, server_ip="10.99.0.2"), "mac": other})
    tr.feed(dhcp("DISCOVER", 2.0, "dhcp", "in"))
    tr.feed(dhcp("OFFER", 2.1, "dhcp", "out", server_ip="10.99.0.1"))
    tr.feed(dhcp("REQUEST", 2.2, "dhcp", "in", requested_ip=IP, server_ip="10.99.0.2"))
    assert tr.ip_mac[IP] == other and tr.clients[MAC].ip is None
    tr.feed({"type": "TransferStarted", "ts": 3.0, "service": "tftp", "ip": IP, "transfer_id": "t1",
             "protocol": "tftp", "path": "pxelinux.0"})
    assert list(tr.clients[other].files) == ["t1"] and not tr.clients[MAC].files
    assert stages(tr, MAC) == ["discover", "offer"]


def test_renewal_ciaddr_binds_and_nak_undoes_a_requested_address():
    tr = Tracker()
    tr.feed(dhcp("DISCOVER", 1.0, "dhcp", "in"))
    tr.feed(dhcp("REQUEST", 1.1, "dhcp", "in", requested_ip=IP, server_ip="10.99.0.2"))
    assert tr.ip_mac[IP] == MAC
    tr.feed(dhcp("NAK", 1.2, "capture", "wire", server_ip="10.99.0.2"))
    assert IP not in tr.ip_mac and tr.clients[MAC].ip is None
    # A renewing client names its address in ciaddr (RFC 2131 4.3.2), seen as the event's ip.
    tr.feed(dhcp("REQUEST", 5.0, "capture", "wire", ip="10.99.0.151", xid=43))
    assert tr.ip_mac["10.99.0.151"] == MAC and tr.clients[MAC].ip == "10.99.0.151"
    # An ACK is a fact: it moves the address to whoever it names.
    tr.feed({**dhcp("ACK", 6.0, "capture", "wire", yiaddr="10.99.0.151", server_ip="10.99.0.2", xid=44),
             "mac": "52:54:00:00:00:0b"})
    assert tr.ip_mac["10.99.0.151"] == "52:54:00:00:00:0b"


def _menu_db(path: Path, entries: list[dict]) -> None:
    from pxetui.menus.model import Entry, Menu, local_entry, save_menu
    from pxetui.store import connect

    conn = connect(path)
    save_menu(conn, Menu(entries=[*(Entry.from_dict(e) for e in entries), local_entry()]))
    conn.close()


def test_menu_entries_classify_kernel_and_initrd(tmp_path):
    # memtest86+ through PXELINUX's LINUX: its image is boot/floppy.img inside the imported
    # ISO, which no name rule calls a kernel; the menu entry says it is one.
    db = tmp_path / "state.db"
    _menu_db(db, [{"id": "memtest", "label": "memtest86+", "kernel": "iso/memtest/boot/floppy.img"},
                  {"id": "live", "label": "live", "kernel": "{http}/iso/live/live/vmlinuz",
                   "initrds": ["iso/live/live/stuff.img"]}])
    # As the supervisor runs it: its history in tracker.db, the menu in the engine's database.
    tr = Tracker(db_path=tmp_path / "tracker.db", menu_db=db)
    tr.feed(dhcp("ACK", 1.0, "dhcp", "out", yiaddr=IP, server_ip="10.99.0.1"))
    for i, path in enumerate(["pxelinux.0", "ldlinux.c32", "pxelinux.cfg/default", "/ISO/memtest/boot/floppy.img"]):
        tr.feed({"type": "TransferStarted", "ts": 2.0 + i, "service": "tftp", "ip": IP, "transfer_id": f"t{i}",
                 "protocol": "tftp", "path": path})
        tr.feed({"type": "TransferFinished", "ts": 2.5 + i, "service": "tftp", "ip": IP, "transfer_id": f"t{i}",
                 "bytes_done": 10})
    c = tr.clients[MAC]
    assert stages(tr, MAC) == ["ack", "bootloader", "menu", "kernel"]
    assert list(c.files.values())[-1]["kind"] == "kernel"
    # Without the menu, the same file after the menu is nothing the name rules know.
    assert classify("iso/memtest/boot/floppy.img", {"bootloader", "menu"}) == "other"
    # The initrd by the menu, even before any kernel; over HTTP with a leading slash too.
    known = tr.known_files(100.0)
    assert classify("/iso/live/live/stuff.img?x=1", {"menu"}, known) == "initrd"
    assert classify("iso/live/live/vmlinuz", {"menu"}, known) == "kernel"
    tr.close()


def test_menu_change_is_seen_and_a_missing_menu_falls_back_to_names(tmp_path):
    db = tmp_path / "state.db"
    tr = Tracker(db_path=db)
    assert tr.known_files(1.0) == {}
    assert classify("iso/x/boot/floppy.img", {"menu"}, tr.known_files(1.0)) == "other"
    _menu_db(db, [{"id": "memtest", "label": "m", "kernel": "iso/x/boot/floppy.img"}])
    assert tr.known_files(1.5) == {}  # looked at most every MENU_CHECK_EVERY seconds
    assert tr.known_files(10.0) == {"iso/x/boot/floppy.img": "kernel"}
    # A menu row that does not parse: the name rules again, no exception into the engine.
    assert tr.db is not None
    tr.db.execute("UPDATE menu SET data = '{broken', updated = updated + 1 WHERE id = 1")
    assert tr.known_files(20.0) == {}
    assert classify("iso/x/boot/floppy.img", {"menu"}, tr.known_files(20.0)) == "other"
    tr.close()


# -- bounded cost, memory and disk (docs/SECURITY.md, "Bounded disk and memory") ------------

def _flood(tr: Tracker, requests: int, window: int, counted: list[str]) -> tuple[list[int], list[int], list[int]]:
    """`requests` GET /boot.ipxe from one client (the issue's flood), the tracker ticked once a
    second of event time. Per window of requests: SQL statements run, bytes of SQL (with the
    bound values), and the largest ClientUpdate sent."""
    from pxetui.events import dumps

    tr.feed({"type": "LeaseGranted", "ts": 1000.0, "service": "dhcp", "mac": MAC, "ip": IP})
    statements, sql_bytes, biggest = [], [], []
    next_tick, seen, size = 1001.0, 0, 0
    for i in range(requests):
        ts = 1000.0 + (i + 1) * 0.01
        for ev in ({"type": "TransferStarted", "ts": ts, "service": "http", "ip": IP, "mac": MAC,
                    "transfer_id": f"h{i:05d}", "protocol": "http", "path": f"/boot.ipxe?mac={MAC}"},
                   {"type": "TransferFinished", "ts": ts + 0.005, "service": "http", "ip": IP,
                    "transfer_id": f"h{i:05d}", "protocol": "http", "bytes_done": 223, "status": 200}):
            for u in tr.feed(ev):
                size = max(size, len(dumps(u.to_dict())))
        if ts >= next_tick:
            tr.tick(ts)
            next_tick += 1.0
        if (i + 1) % window == 0:
            statements.append(len(counted) - seen)
            sql_bytes.append(sum(len(s) for s in counted[seen:]))
            biggest.append(size)
            seen, size = len(counted), 0
    return statements, sql_bytes, biggest


def test_a_flood_of_requests_for_one_client_costs_the_same_per_event_as_its_list_grows(tmp_path, monkeypatch):
    from pxetui import diagnosis
    from pxetui.config import TrackerConfig
    from pxetui.store import connect

    looks = []
    real = diagnosis.definite
    monkeypatch.setattr(diagnosis, "definite", lambda evs: looks.append(len(evs)) or real(evs))
    tr = Tracker(db_path=tmp_path / "t.db", config=TrackerConfig(max_files_per_client=200))
    assert tr.db is not None
    counted: list[str] = []
    tr.db.set_trace_callback(counted.append)
    statements, sql_bytes, biggest = _flood(tr, 4000, 500, counted)
    # Windows 2..8 (the file list at its cap of 200, rows dropping) cost the same as each
    # other: a whole-list copy or rewrite per update would grow with every request.
    steady = statements[1:]
    assert max(steady) <= min(steady) * 1.02 and max(steady) / 500 <= 6, statements
    assert max(sql_bytes[1:]) <= min(sql_bytes[1:]) * 1.02, sql_bytes
    assert max(biggest) <= min(biggest) + 64, biggest  # each update: the changed row, not the list
    assert len(looks) <= 41  # the diagnosis rules ran once per tick, not per request
    c = tr.clients[MAC]
    assert len(c.files) == 200 and c.files_dropped == 3800 and list(c.files)[0] == "h03800"
    tr.close()
    conn = connect(tmp_path / "t.db")
    assert conn.execute("SELECT count(*) FROM tracker_files").fetchone()[0] == 200
    assert conn.execute("SELECT count(*) FROM tracker_events").fetchone()[0] == TrackerConfig.max_events_per_client
    conn.close()


def test_the_ui_and_a_late_snapshot_see_every_kept_file_and_the_dropped_count():
    from pxetui.config import TrackerConfig
    from pxetui.events import LimitHit
    from pxetui.state import EngineState

    tr, live = Tracker(config=TrackerConfig(max_files_per_client=5)), EngineState()
    out = tr.feed({"type": "LeaseGranted", "ts": 1.0, "service": "dhcp", "mac": MAC, "ip": IP})
    for i in range(8):
        out += tr.feed({"type": "TransferStarted", "ts": 2.0 + i, "service": "tftp", "ip": IP,
                        "transfer_id": f"t{i}", "path": f"f{i}.c32"})
        out += tr.feed({"type": "TransferFinished", "ts": 2.5 + i, "service": "tftp", "ip": IP,
                        "transfer_id": f"t{i}", "bytes_done": 10 * i})
    for ev in out:
        live.apply(ev.to_dict())
    updates = [e for e in out if e.type == "ClientUpdate"]
    assert updates[0].full and all(not u.full and len(u.files) == 1 for u in updates[1:])
    assert [u.files_removed for u in updates if u.files_removed] == [["t0"], ["t1"], ["t2"]]
    hits = [e for e in out if isinstance(e, LimitHit)]
    assert [h.limit for h in hits] == ["tracker.max_files_per_client"]  # once, not per file
    late = EngineState()
    for u in tr.snapshot():
        late.apply(u.to_dict())
    want = {f"t{i}": 10 * i for i in range(3, 8)}
    for state in (live, late):
        c = state.clients[MAC]
        assert {k: f["bytes"] for k, f in c.files.items()} == want and c.files_dropped == 3


def test_12000_clients_keep_memory_and_database_at_the_cap(tmp_path):
    from pxetui.config import TrackerConfig
    from pxetui.events import ClientForgotten, LimitHit
    from pxetui.store import connect

    cfg = TrackerConfig()
    assert cfg.max_clients == 10000
    tr = Tracker(db_path=tmp_path / "t.db", config=cfg)
    forgotten, hits = [], []
    for i in range(12000):
        mac, ip, ts = f"52:54:00:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", 1000.0 + i * 0.01
        out = tr.feed(dhcp("DISCOVER", ts, "dhcp", "in", xid=i) | {"mac": mac})
        out += tr.feed({"type": "LeaseGranted", "ts": ts, "service": "dhcp", "mac": mac, "ip": ip})
        out += tr.feed({"type": "TransferStarted", "ts": ts, "service": "tftp", "ip": ip,
                        "transfer_id": f"t{i}", "path": "pxelinux.0"})
        if i % 1000 == 999:
            out += tr.tick(ts)
        forgotten += [e for e in out if isinstance(e, ClientForgotten)]
        hits += [e for e in out if isinstance(e, LimitHit)]
    tr.tick(1000.0 + 12000 * 0.01)
    assert len(tr.clients) == 10000 and len(forgotten) == 2000
    assert {f.mac for f in forgotten} == {f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}" for i in range(2000)}
    assert all("tracker.max_clients" in f.reason for f in forgotten)
    assert hits and all(h.limit == "tracker.max_clients" for h in hits) and len(hits) <= 3
    assert len(tr.ip_mac) == 10000 and len(tr._tid_mac) == 10000
    conn = connect(tmp_path / "t.db")
    for table in ("tracker_clients", "tracker_boots", "tracker_files"):
        assert conn.execute(f"SELECT count(DISTINCT mac) FROM {table}").fetchone()[0] == 10000, table
    conn.close()
    tr.close()


def test_idle_clients_expire_from_memory_and_the_database(tmp_path):
    from pxetui.config import TrackerConfig
    from pxetui.events import ClientForgotten, Log

    tr = Tracker(db_path=tmp_path / "t.db", config=TrackerConfig(idle_expiry=3600.0))
    other = "52:54:00:00:00:77"
    tr.feed({"type": "LeaseGranted", "ts": 1000.0, "service": "dhcp", "mac": MAC, "ip": IP})
    tr.feed({"type": "TransferStarted", "ts": 1001.0, "service": "tftp", "ip": IP, "transfer_id": "t",
             "path": "pxelinux.0"})
    tr.feed(dhcp("DISCOVER", 3000.0, "dhcp", "in", mac=other))
    assert not [e for e in tr.tick(4600.0) if isinstance(e, ClientForgotten)]  # 3599 s idle: kept
    out = tr.tick(4602.0)
    assert [(e.mac, e.reason) for e in out if isinstance(e, ClientForgotten)] == [(MAC, "idle for more than 1.0 hours")]
    assert [e for e in out if isinstance(e, Log) and "tracker.idle_expiry" in e.message]
    assert list(tr.clients) == [other] and IP not in tr.ip_mac and tr.history(MAC) == []
    tr.close()
    tr = Tracker(db_path=tmp_path / "t.db")
    assert list(tr.clients) == [other]
    tr.close()


def test_history_is_pruned_by_count_and_by_age(tmp_path):
    from pxetui.config import TrackerConfig

    tr = Tracker(db_path=tmp_path / "t.db", config=TrackerConfig(max_boots_per_client=3, history_days=1.0))
    for boot in range(6):  # six boots, each to the kernel: the next DISCOVER is a new boot
        t0 = 1000.0 + boot * 100
        tr.feed(dhcp("DISCOVER", t0, "dhcp", "in", xid=boot))
        tr.feed(dhcp("ACK", t0 + 1, "dhcp", "out", xid=boot, yiaddr=IP, server_ip="10.99.0.1"))
        tr.feed({"type": "TransferStarted", "ts": t0 + 2, "service": "tftp", "ip": IP,
                 "transfer_id": f"k{boot}", "path": "vmlinuz"})
        tr.tick(t0 + 3)
    assert [h["boot"] for h in tr.history(MAC)] == [4, 5, 6]
    assert tr.db is not None
    assert tr.db.execute("SELECT count(*) FROM tracker_files").fetchone()[0] == 1  # this boot's only
    tr.feed({"type": "LeaseGranted", "ts": 90000.0, "service": "dhcp", "mac": "52:54:00:00:00:78",
             "ip": "10.99.0.152"})
    tr.tick(1000.0 + 86400 + 600)  # a day after the last boot ended: its history goes
    assert tr.history(MAC) == [] and MAC in tr.clients  # the client itself is not idle-expired
    tr.close()


def test_one_mac_asking_for_address_after_address_cannot_grow_the_ip_map():
    from pxetui.config import TrackerConfig

    tr = Tracker(config=TrackerConfig(max_addresses_per_client=4))
    tr.feed({"type": "LeaseGranted", "ts": 1.0, "service": "dhcp", "mac": MAC, "ip": IP})
    for i in range(200):
        tr.feed(dhcp("REQUEST", 2.0 + i, "capture", "wire", xid=i, requested_ip=f"10.98.{i >> 8}.{i & 255}"))
    assert len(tr.ip_mac) == 4 and tr.ip_mac[IP] == MAC and tr.clients[MAC].ip == IP
    tr.forget(MAC)
    assert tr.ip_mac == {} and tr._acked == {}


def test_history_written_by_an_older_pxetui_is_read_and_moved_to_the_new_tables(tmp_path):
    import json

    from pxetui.store import connect

    db = tmp_path / "t.db"
    conn = connect(db)
    conn.execute("CREATE TABLE tracker_clients (mac TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL)")
    state = {"ip": IP, "boot": 1, "started": 1.0, "last": 3.0, "stages": [{"stage": "bootloader", "ts": 2.0,
             "detail": "pxelinux.0"}], "files": [{"id": "a", "path": "pxelinux.0", "status": "done",
             "protocol": "tftp", "kind": "bootloader", "bytes": 5, "started": 2.0}],
             "events": [{"type": "TransferStarted", "ts": 2.0, "transfer_id": "a", "path": "pxelinux.0"}]}
    conn.execute("INSERT INTO tracker_clients VALUES (?,?,?)", (MAC, json.dumps(state), 3.0))
    conn.close()
    tr = Tracker(db_path=db)
    c = tr.clients[MAC]
    assert list(c.files) == ["a"] and len(c.events) == 1 and tr.ip_mac[IP] == MAC
    tr.tick(4.0)
    tr.close()
    assert stored_bytes(db) == 5
    tr = Tracker(db_path=db)
    assert list(tr.clients[MAC].files) == ["a"] and len(tr.clients[MAC].events) == 1
    tr.close()


def test_a_failed_write_keeps_the_changes_for_the_next_tick(tmp_path):
    import sqlite3

    from pxetui.store import ensure_schema
    from pxetui.tracker import DDL

    db = tmp_path / "t.db"
    tr = Tracker(db_path=db)
    assert tr.db is not None
    tr.feed({"type": "LeaseGranted", "ts": 1.0, "service": "dhcp", "mac": MAC, "ip": IP})
    tr.feed({"type": "TransferStarted", "ts": 2.0, "service": "tftp", "ip": IP, "transfer_id": "t",
             "path": "pxelinux.0"})
    tr.db.execute("DROP TABLE tracker_files")  # the write fails half-way and is rolled back
    with pytest.raises(sqlite3.OperationalError):
        tr.tick(3.0)
    ensure_schema(tr.db, DDL)
    tr.tick(4.0)
    assert stored_bytes(db) == 0 and tr.history(MAC)[0]["stage"] == "bootloader"
    tr.close()


def test_history_lives_apart_from_the_leases(tmp_path):
    # An older release kept the tracker's tables in the lease database, where each tick's
    # write held the lock the DHCP service's lease commits wait for: they are dropped.
    from pxetui import store
    from pxetui.tracker import drop_old_tables

    old = tmp_path / "pxetui.db"
    Tracker(db_path=old).close()
    conn = store.connect(old)
    conn.execute("CREATE TABLE leases_kept(x)")
    conn.close()
    assert drop_old_tables(old) is True
    conn = store.connect(old)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert names == {"leases_kept"}
    assert drop_old_tables(old) is False


@pytest.mark.parametrize("pcap", ["bios_pxelinux.pcap", "uefi_proxy_grub.pcap", "chainloop.pcap"])
def test_coalesced_updates_fold_to_what_every_update_folds_to(pcap):
    # The supervisor asks for updates once per batch of events (Tracker.coalesce): fewer
    # updates, the same client in the end, as a UI folds them (pxetui/state.py).
    from pxetui.capture.decode import Decoder
    from pxetui.capture.pcap import read_pcap
    from pxetui.state import EngineState

    lt, frames = read_pcap(DATA / pcap)
    dec = Decoder(linktype=lt)
    evs = [e.to_dict() for ts, data in frames for e in dec.feed(data, ts)]
    every, batched = Tracker(), Tracker()
    batched.coalesce = True
    ui_every, ui_batched = EngineState(), EngineState()
    n_every = n_batched = 0
    for i, ev in enumerate(evs):
        for u in every.feed(dict(ev)):
            ui_every.apply(u)
            n_every += u.type == "ClientUpdate"
        assert not [u for u in batched.feed(dict(ev)) if u.type == "ClientUpdate"]
        if i % 8 == 7 or i == len(evs) - 1:  # a batch read from a pipe
            for u in batched.updates():
                ui_batched.apply(u)
                n_batched += 1
    assert not batched.pending and 0 < n_batched < n_every
    # What a throttled progress event left unsent goes with the client's next update.
    for tr, ui in ((every, ui_every), (batched, ui_batched)):
        for c in tr.clients.values():
            ui.apply(c.delta(c.last))
    assert ui_batched.folded()["clients"] == ui_every.folded()["clients"]


def test_a_machine_taking_an_address_is_no_boot_client_until_it_boots():
    # A laptop in full mode: DHCP without PXE markers, then its lease. Not a client (it would
    # go "stuck" at its ACK); the leases table shows it. Once it boots (a transfer from its
    # address, or a PXE DISCOVER) it is a client, with the address of its lease.
    laptop = "02:00:00:00:00:99"
    tr = Tracker(stuck_seconds=90.0)
    for msg, d in (("DISCOVER", "in"), ("OFFER", "out"), ("REQUEST", "in"), ("ACK", "out")):
        tr.feed(dhcp(msg, 1.0, "dhcp", d, mac=laptop, arch=None, vendor_class=None, yiaddr="10.99.0.160"))
    tr.feed({"type": "LeaseGranted", "ts": 1.1, "service": "dhcp", "mac": laptop, "ip": "10.99.0.160"})
    assert laptop not in tr.clients and not tr.tick(500.0)
    tr.feed({"type": "TransferStarted", "ts": 600.0, "service": "tftp", "ip": "10.99.0.160",
             "transfer_id": "t", "path": "pxelinux.0"})
    assert tr.clients[laptop].ip == "10.99.0.160" and tr.clients[laptop].file("t")


def test_leases_of_machines_not_booting_are_remembered_within_a_bound():
    # A full-mode LAN (or spoofed leases seen on the wire): each address a MAC took is kept for
    # when it boots, at most MAX_ALIASES of them, the oldest going first.
    from pxetui.tracker import MAX_ALIASES

    tr = Tracker()
    n = MAX_ALIASES + 100
    for i in range(n):
        tr.feed({"type": "LeaseGranted", "ts": 1.0 + i, "service": "capture", "ours": False,
                 "mac": f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                 "ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"})
    assert not tr.clients
    assert len(tr._leased) == len(tr._leased_ip) == MAX_ALIASES
    assert "02:00:00:00:00:00" not in tr._leased  # the oldest went
    last = n - 1
    assert tr._leased[f"02:00:00:{last >> 16 & 255:02x}:{last >> 8 & 255:02x}:{last & 255:02x}"]


def _leaseholder(tr: Tracker) -> None:
    tr.feed(dhcp("DISCOVER", 1.0, "dhcp", "in"))
    tr.feed({"type": "LeaseGranted", "ts": 2.0, "service": "dhcp", "mac": MAC, "ip": IP})


def test_what_our_services_attributed_to_nobody_goes_on_no_record():
    # Another host on the victim's address: the HTTP service's attribution says nobody's (the
    # neighbour table and our lease disagree), and so mac=None. It was charged to the
    # leaseholder through the tracker's own address map (docs/SECURITY.md, "Callbacks and seeds").
    tr = Tracker()
    _leaseholder(tr)
    before = tr.clients[MAC].last_event
    for ev in ({"type": "TransferStarted", "service": "http", "ip": IP, "mac": None, "transfer_id": "h1",
                "protocol": "http", "path": "ATTACKER-WAS-HERE", "size": 1},
               {"type": "TransferFailed", "service": "http", "ip": IP, "mac": None, "transfer_id": "h2",
                "protocol": "http", "path": "x", "reason": "forged failure", "status": 404},
               {"type": "BootCallback", "service": "http", "ip": IP, "mac": None, "stage": "booted"},
               {"type": "ClientLog", "service": "logs", "ip": IP, "mac": None, "source": "syslog",
                "app": "anna", "message": "forged installer line"}):
        assert tr.feed({**ev, "ts": 3.0}) == []
    c = tr.clients[MAC]
    assert c.files == {} and c.last_event == before and c.stage != "booted"
    # TFTP events carry no MAC at all: the address decides, as before.
    tr.feed({"type": "TransferStarted", "ts": 4.0, "service": "tftp", "ip": IP, "transfer_id": "t1",
             "protocol": "tftp", "path": "pxelinux.0"})
    assert list(c.files) == ["t1"]
    # What the HTTP service did attribute goes on that machine's record.
    tr.feed({"type": "TransferStarted", "ts": 5.0, "service": "http", "ip": IP, "mac": MAC, "transfer_id": "h3",
             "protocol": "http", "path": "boot.ipxe"})
    assert list(c.files) == ["t1", "h3"]


def test_the_wires_copy_of_a_transfer_attributed_to_nobody_leaves_the_leaseholder():
    # The capture puts its copy on the address's client; ours, a moment later, says nobody's.
    tr = Tracker()
    _leaseholder(tr)
    tr.feed({"type": "TransferStarted", "ts": 3.0, "service": "capture", "ip": IP, "mac": MAC,
             "transfer_id": "wire-http-1", "protocol": "http", "path": "/secret.cfg", "ours": True})
    assert list(tr.clients[MAC].files) == ["wire-http-1"]
    (u,) = tr.feed({"type": "TransferStarted", "ts": 3.001, "service": "http", "ip": IP, "mac": None,
                    "transfer_id": "h1", "protocol": "http", "path": "/secret.cfg"})
    assert u.mac == MAC and u.files_removed == ["wire-http-1"]  # the UI drops the row too
    assert tr.feed({"type": "TransferFinished", "ts": 3.5, "service": "capture", "ip": IP, "mac": MAC,
                    "transfer_id": "wire-http-1", "bytes_done": 10}) == []
    assert tr.feed({"type": "TransferFinished", "ts": 3.5, "service": "http", "ip": IP, "mac": None,
                    "transfer_id": "h1", "protocol": "http", "bytes_done": 10}) == []
    assert tr.clients[MAC].files == {}
