from __future__ import annotations

import asyncio

from pxetui import store
from pxetui.config import Config
from pxetui.control import ControlClient, is_live, socket_path
from pxetui.events import from_dict
from pxetui.supervisor import Supervisor, ports_needed, services_for


def cfg_for(tmp_path, **raw) -> Config:
    cfg = Config.from_dict({"interface": "eth0", "state_dir": str(tmp_path / "st"), **raw})
    cfg.server_ip, cfg.netmask = "10.99.0.1", "255.255.255.0"
    return cfg


def test_services_and_ports_follow_config(tmp_path):
    cfg = cfg_for(tmp_path, dhcp={"mode": "off"}, capture={"enabled": False}, http={"port": 8080})
    assert services_for(cfg) == ["tftp", "http"]
    assert ports_needed(cfg, services_for(cfg)) == {69: "udp", 8080: "tcp"}
    cfg = cfg_for(tmp_path, dhcp={"mode": "proxy"})
    assert ports_needed(cfg, ["dhcp"]) == {67: "udp", 4011: "udp"}


# The replay cache's rules (one state per key, bounded history) are pinned in test_fold.py.


async def test_control_socket_replays_state_and_takes_commands(tmp_path):
    cfg = cfg_for(tmp_path)
    sup = Supervisor(cfg, names=[])
    await sup.start()
    try:
        sock = socket_path(cfg.state_dir)
        assert is_live(sock)
        client = await ControlClient.connect(sock)
        events = client.events()
        first = await asyncio.wait_for(events.__anext__(), 5)
        assert first["type"] == "EngineStarted" and first["address"] == "10.99.0.1"

        await client.send({"cmd": "set_host", "mac": "52:54:00:AA:BB:CC", "boot_once": "local"})
        await client.send({"cmd": "forget", "mac": "52:54:00:aa:bb:cc"})
        await client.send({"cmd": "no-such-command"})
        seen = []
        async def until_forgotten():
            async for ev in events:
                seen.append(ev)
                if ev["type"] == "ClientForgotten":
                    return ev
        ev = await asyncio.wait_for(until_forgotten(), 5)
        assert ev["mac"] == "52:54:00:aa:bb:cc"
        # A UI attaching now gets the state replayed: the start, then the history so far.
        late = await ControlClient.connect(sock)
        replayed = []
        async def until_forget_logged():
            async for e in late.events():
                replayed.append(e)
                if e["type"] == "Log" and "bad command" in e.get("message", ""):
                    return
        await asyncio.wait_for(until_forget_logged(), 5)
        await late.close()
        assert replayed[0]["type"] == "EngineStarted"
        assert [e for e in replayed if e["type"] == "Log" and e.get("mac") == "52:54:00:aa:bb:cc"
                and "'boot_once': 'local'" in e["message"]]
        conn = store.connect(cfg.db_path)
        assert store.host_overrides(conn)["52:54:00:aa:bb:cc"]["boot_once"] == "local"
        conn.close()
        await client.send({"cmd": "stop"})
        await asyncio.wait_for(sup.wait(), 5)
        warn = [e for e in sup.replay() if e.type == "Log" and "bad command" in e.message]
        assert warn and "unknown command 'no-such-command'" in warn[0].message
        await client.close()
    finally:
        await sup.stop()
    assert not is_live(socket_path(cfg.state_dir))


async def test_boot_once_into_an_entry_is_spent_by_the_boot_callback(tmp_path):
    from pxetui.events import BootCallback

    cfg = cfg_for(tmp_path)
    sup = Supervisor(cfg, names=[])
    await sup.start()
    try:
        mac = "52:54:00:aa:bb:01"
        await sup.command({"cmd": "set_host", "mac": mac, "boot_once": "memtest"})
        await sup.command({"cmd": "set_host", "mac": "52:54:00:aa:bb:02", "boot_once": "local"})
        assert sup.boot_once_entries == {mac}
        sup.publish(BootCallback(service="http", mac="52:54:00:aa:bb:02", stage="booting"))
        sup.publish(BootCallback(service="http", mac=mac, stage="booting", entry="memtest"))
        conn = store.connect(cfg.db_path)
        rows = store.host_overrides(conn)
        conn.close()
        assert rows[mac]["boot_once"] is None
        assert rows["52:54:00:aa:bb:02"]["boot_once"] == "local"  # spent by DHCP, not here
        assert sup.boot_once_entries == set()
    finally:
        await sup.stop()


async def test_stop_writes_what_the_tracker_still_holds(tmp_path):
    """The tracker writes at its tick (once a second); the engine's stop must not lose what
    it still holds."""
    import time

    from pxetui.tracker import Tracker

    cfg = cfg_for(tmp_path)
    sup = Supervisor(cfg, names=[])
    await sup.start()
    mac, ip, now = "52:54:00:aa:bb:07", "10.99.0.57", time.time()
    try:
        for ev in (
            {"type": "DhcpPacket", "ts": now, "service": "dhcp", "mac": mac, "msg_type": "ACK", "xid": 1,
             "direction": "out", "arch": 0, "yiaddr": ip, "server_ip": "10.99.0.1"},
            {"type": "TransferStarted", "ts": now + 0.1, "service": "tftp", "ip": ip, "transfer_id": "t",
             "path": "vmlinuz", "size": 1000},
            {"type": "TransferProgress", "ts": now + 0.2, "service": "tftp", "ip": ip, "transfer_id": "t",
             "bytes_done": 600, "size": 1000},
        ):
            sup.relay(from_dict(ev))
        conn = store.connect(cfg.tracker_db_path)
        row = conn.execute("SELECT data FROM tracker_files WHERE mac=?", (mac,)).fetchone()
        conn.close()
        assert row is None  # held back until the tracker's next tick
    finally:
        await sup.stop()
    tr = Tracker(db_path=cfg.tracker_db_path)
    try:
        assert tr.clients[mac].files["t"]["bytes"] == 600
    finally:
        tr.close()


async def test_a_late_ui_gets_every_file_of_a_client_though_live_updates_are_deltas(tmp_path):
    from pxetui.state import EngineState

    cfg = cfg_for(tmp_path)
    sup = Supervisor(cfg, names=[])
    live = EngineState()
    sup.on_event = live.apply
    await sup.start()
    mac, ip = "52:54:00:aa:bb:08", "10.99.0.58"
    try:
        sup.relay(from_dict({"type": "LeaseGranted", "ts": 1.0, "service": "dhcp", "mac": mac, "ip": ip}))
        for i in range(5):
            # as the HTTP service sends them: with the MAC it attributed the address to
            sup.relay(from_dict({"type": "TransferStarted", "ts": 2.0 + i, "service": "http", "ip": ip,
                                 "mac": mac, "transfer_id": f"h{i}", "protocol": "http", "path": f"/f{i}"}))
        client = await ControlClient.connect(socket_path(cfg.state_dir))
        late = EngineState()
        async def until_client():
            async for ev in client.events():
                late.apply(ev)
                if ev["type"] == "ClientUpdate":
                    return ev
        first = await asyncio.wait_for(until_client(), 5)
        await client.close()
        assert first["full"] and [f["id"] for f in first["files"]] == [f"h{i}" for i in range(5)]
        assert list(late.clients[mac].files) == list(live.clients[mac].files) == [f"h{i}" for i in range(5)]
    finally:
        await sup.stop()


def test_a_service_line_reaches_the_uis_as_is_only_when_it_is_exactly_the_event(tmp_path):
    # A complete line is passed on byte for byte (no second encoding in a storm); a line with
    # a field this version does not know, or a service's hostile extra, is written again from
    # the event, so UIs only ever get the event's own fields.
    import json

    from pxetui.events import DhcpPacket, dumps, loads
    from pxetui.supervisor import ServiceRunner

    sup = Supervisor(cfg_for(tmp_path), names=[])
    q: asyncio.Queue = asyncio.Queue()
    sup.subscribers[q] = 1000
    runner = ServiceRunner(sup, "dhcp")
    exact = dumps(DhcpPacket(service="dhcp", mac="52:54:00:00:00:01", msg_type="DISCOVER").view())
    runner.take(exact)
    assert q.get_nowait() == ("DhcpPacket", exact + b"\n")
    extra = loads(exact)
    extra["injected"] = "x" * 1000
    runner.take(json.dumps(extra).encode())
    name, line = q.get_nowait()
    relayed = loads(line)
    assert name == "DhcpPacket" and "injected" not in relayed and relayed["mac"] == "52:54:00:00:00:01"
    assert runner.bad_lines == 0 and q.empty()


def test_installer_chatter_does_not_push_other_history_out_of_the_replay(tmp_path):
    from pxetui.events import ClientLog, Log
    from pxetui.supervisor import CLIENT_LOG_HISTORY, HISTORY

    sup = Supervisor(cfg_for(tmp_path), names=[])
    for i in range(10):
        sup.publish(Log(ts=float(i), service="engine", message=f"log {i}"))
    for i in range(HISTORY * 2):
        sup.publish(ClientLog(ts=10.0 + i, service="logs", mac="52:54:00:00:00:01", message=f"line {i}"))
    replay = sup.replay()
    logs = [e.message for e in replay if isinstance(e, Log)]
    lines = [e.message for e in replay if isinstance(e, ClientLog)]
    assert logs == [f"log {i}" for i in range(10)]
    assert lines == [f"line {i}" for i in range(HISTORY * 2 - CLIENT_LOG_HISTORY, HISTORY * 2)]
    stamps = [e.ts for e in replay if isinstance(e, (Log, ClientLog))]
    assert stamps == sorted(stamps)


def test_a_runner_far_behind_sheds_per_packet_events_and_reports_them_as_that_services_drops(tmp_path):
    # SHED_LAG: lines read long after they were emitted. Per-packet kinds are counted, not
    # folded; leases and transfer ends are folded whatever their age; the count reaches the
    # fold (dashboard, /metrics) as the service's EventsDropped.
    import time

    from pxetui.events import BootDecision, DhcpPacket, LeaseGranted, TransferFinished, dumps, loads
    from pxetui.supervisor import SHED_LAG, ServiceRunner

    sup = Supervisor(cfg_for(tmp_path), names=[])
    runner = ServiceRunner(sup, "dhcp")
    sup.runners["dhcp"] = runner
    q: asyncio.Queue = asyncio.Queue()
    sup.subscribers[q] = 1000
    now = time.time()
    stale = now - SHED_LAG
    old, fresh = now - SHED_LAG - 5, now

    def line(ev):
        return dumps(ev.view())

    for i in range(3):
        runner.take(line(DhcpPacket(ts=old, service="dhcp", mac=f"52:54:00:00:00:0{i}", msg_type="DISCOVER")), stale)
    runner.take(line(BootDecision(ts=old, service="dhcp", mac="52:54:00:00:00:01", firmware="bios")), stale)
    runner.take(line(LeaseGranted(ts=old, service="dhcp", mac="52:54:00:00:00:01", ip="10.99.0.50",
                                  expires=now + 600)), stale)
    runner.take(line(TransferFinished(ts=old, service="dhcp", mac="52:54:00:00:00:01", ip="10.99.0.50",
                                      transfer_id="t1")), stale)
    runner.take(line(DhcpPacket(ts=fresh, service="dhcp", mac="52:54:00:00:00:09", msg_type="REQUEST")), stale)
    relayed = []
    while not q.empty():
        relayed.append(q.get_nowait()[0])
    assert "BootDecision" not in relayed and relayed.count("DhcpPacket") == 1  # only the fresh one
    assert "LeaseGranted" in relayed and "TransferFinished" in relayed
    assert [le.ip for le in sup.state.leases.values()] == ["10.99.0.50"]  # tables are never shed
    assert runner.shed == {"DhcpPacket": 3, "BootDecision": 1}
    sup.report_shed()
    assert runner.shed == {}
    name, raw = q.get_nowait()
    report = loads(raw)
    assert name == "EventsDropped" and report["service"] == "dhcp" and report["total"] == 4
    assert report["counts"] == {"DhcpPacket": 3, "BootDecision": 1}
    assert report["packets"] == {"in.DISCOVER": 3}
    assert sup.state.dropped["dhcp"] == 4
    # the shed DISCOVERs are still counted, as is the fresh REQUEST that was folded
    assert sup.state.counts["dhcp.in.DISCOVER"] == 3 and sup.state.counts["dhcp.in.REQUEST"] == 1
    sup.report_shed()  # nothing new: no second report
    assert q.empty()


async def test_boot_once_into_proxmox_is_spent_when_the_installer_fetched_its_answer(tmp_path):
    # Proxmox's installer asks for its answer URL (DHCP option 250) after the kernel runs,
    # after the boot callback: the DHCP service gives the URL only while the boot-once names
    # the entry, so that callback keeps it and the answer's fetch spends it.
    from pxetui.dhcp import answer
    from pxetui.events import BootCallback, TransferFinished
    from pxetui.menus import model, seeds

    cfg = cfg_for(tmp_path)
    conn = store.connect(cfg.db_path)
    try:
        def entries(m: model.Menu) -> None:
            m.add(model.Entry(id="pve", label="Proxmox VE", kernel="iso/pve/boot/linux26",
                              initrds=["iso/pve/boot/initrd.img", "/proxmox.iso=iso/pve.iso"], loaders=["ipxe"]))
            m.add(model.Entry(id="memtest", label="Memtest", kernel="memtest.bin", loaders=["ipxe"]))
        model.update_menu(conn, entries)
        seeds.set_seed(conn, "answer.toml", b"[global]\n", entry="pve")
    finally:
        conn.close()
    sup = Supervisor(cfg, names=[])
    await sup.start()
    mac, other = "52:54:00:aa:bb:11", "52:54:00:aa:bb:12"

    def boot_once(m: str) -> str | None:
        c = store.connect(cfg.db_path)
        try:
            return store.host_overrides(c)[m]["boot_once"]
        finally:
            c.close()

    def answer_key(m: str) -> str | None:
        c = store.connect(cfg.db_path)
        try:
            return answer.seed_key(c, m)
        finally:
            c.close()

    try:
        await sup.command({"cmd": "set_host", "mac": mac, "boot_once": "pve"})
        await sup.command({"cmd": "set_host", "mac": other, "boot_once": "memtest"})
        sup.publish(BootCallback(service="http", mac=mac, stage="booting", entry="pve"))
        sup.publish(BootCallback(service="http", mac=other, stage="booting", entry="memtest"))
        assert boot_once(other) is None  # any other entry: spent by the callback, as before
        assert boot_once(mac) == "pve" and answer_key(mac) == "pve"  # the installer's DHCP gets it
        kept = [e for e in sup.replay() if e.type == "Log" and "kept until its installer" in e.message]
        assert len(kept) == 1 and mac in kept[0].message
        # Another file, or another host's answer, spends nothing.
        sup.publish(TransferFinished(service="http", mac=mac, protocol="http", path="iso/pve/boot/linux26"))
        sup.publish(TransferFinished(service="http", mac=other, protocol="http", path="seed/pve/answer.toml"))
        assert boot_once(mac) == "pve"
        sup.publish(TransferFinished(service="http", mac=mac, protocol="http", path="seed/pve/answer.toml"))
        assert boot_once(mac) is None and answer_key(mac) is None  # the next boot: the normal menu
        assert sup.boot_once_entries == set()
    finally:
        await sup.stop()
