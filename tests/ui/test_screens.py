"""Pilot tests: every screen at 80x24, driven by keys only, fed by an in-memory engine."""

from __future__ import annotations

from ui_feed import ev, lab_feed, mac
from ui_helpers import goto, make_app, screen_text, settle

from screens.client_detail import ClientDetailScreen
from screens.pick import EntryPicker
from screens.source import MemorySource
from screens.widgets import LiveTable

SIZE = (80, 24)


async def test_header_shows_interface_mode_and_each_service():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        assert "eth1 10.99.0.1/24" in text
        assert "DHCP proxy (10.99.0.2 answered the probe)" in text
        for name in ("dhcp", "tftp", "http", "capture"):
            assert f"+{name} running" in text
        app.source.push(ev("ServiceState", 30, service="http", state="failed",
                           reason="TCP port 80 is held by nginx (PID 42)"))
        await settle(app, pilot)
        assert "!http failed: TCP port 80 is held by nginx" in screen_text(app)


async def test_f_keys_and_alt_digits_reach_every_screen():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for key, mode in (("f2", "clients"), ("f3", "leases"), ("f4", "transfers"),
                          ("f5", "isos"), ("f6", "menu"), ("f7", "logs"), ("f8", "settings"),
                          ("f9", "console"), ("f1", "dashboard"), ("alt+4", "transfers")):
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode, key
        assert "F4 Xfers" in screen_text(app)


async def test_navigation_works_while_a_text_field_has_focus():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f7")
        await pilot.pause()
        app.screen.query_one("#log-client").focus()
        await pilot.press("5", "2")
        assert app.screen.query_one("#log-client").value == "52"
        await pilot.press("f2")
        await pilot.pause()
        assert app.current_mode == "clients"


async def test_dashboard_services_stages_throughput_alerts():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        assert "dhcp" in text and "67,4011" in text
        assert "Clients: 5" in text and "stuck: 1" in text and "bootloader 1" in text
        assert "peak 1.1M/s" in text
        assert "UEFI boot loader grubx64.efi is missing" in text
        assert "another DHCP server on the wire: 10.99.0.2" in text
        spark = app.screen.query_one("#throughput")
        assert max(spark.data) > 0


async def test_clients_update_in_place_and_the_cursor_stays():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = (await goto(app, pilot, "f2")).query_one(LiveTable)
        assert table.row_count == 5
        await pilot.press("down", "down")
        assert table.selected_key() == mac(3)

        def refuse() -> None:
            raise AssertionError("the table was cleared")

        table.clear = refuse  # type: ignore[method-assign]
        source.push(ev("ClientUpdate", 40, service="tracker", mac=mac(3), stage="booted",
                       progress=1.0, last_event="kernel started"))
        source.push(ev("ClientUpdate", 41, service="tracker", mac=mac(7), stage="dhcp"))
        await settle(app, pilot)
        assert table.row_count == 6
        assert table.selected_key() == mac(3)
        assert str(table.get_cell(mac(3), "stage")) == "booted"
        assert "kernel started" in str(table.get_cell(mac(3), "last"))


async def test_clients_sort_by_column_keeps_the_selected_client():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = (await goto(app, pilot, "f2")).query_one(LiveTable)
        await pilot.press("down")  # client 2
        for _ in range(5):  # mac -> ip -> fw -> stage -> progress
            await pilot.press("s")
        assert table.sort_column == "progress"
        assert [table.get_cell(k, "mac").plain for k in table.keys_shown] == [
            mac(1), mac(2), mac(3), mac(4), mac(5)]
        assert table.selected_key() == mac(2)
        await pilot.press("r")
        assert table.keys_shown == [mac(5), mac(4), mac(3), mac(2), mac(1)]
        assert table.selected_key() == mac(2)
        assert table.cursor_row == 3
        await pilot.press("s")  # last event time
        await pilot.press("s")  # diagnosis: the stuck client sorts last
        assert table.sort_column == "diag" and table.keys_shown[-1] == mac(3)


async def test_client_detail_timeline_files_diagnosis_and_actions():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(app, pilot, "f2")
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ClientDetailScreen)
        text = screen_text(app)
        assert mac(3) in text and "10.99.0.52" in text
        assert "Diagnosis: the kernel download stopped at 19%: TFTP timed out" in text
        timeline = app.screen.query_one("#timeline")
        assert [str(timeline.get_cell_at((i, 0))) for i in range(timeline.row_count)] == [
            "discover", "ack", "bootloader"]
        assert str(timeline.get_cell_at((0, 2))) == "3.0s"
        assert str(timeline.get_cell_at((2, 2))).endswith("so far")
        files = app.screen.query_one("#files")
        assert [str(c) for c in files.get_row_at(1)] == [
            "iso/debian/live/vmlinuz", "kernel", "tftp", "1.4M/7.6M", "failed: timed out"]
        await pilot.press("l")
        await pilot.press("f")
        await pilot.pause()
        assert source.sent[:2] == [
            {"cmd": "set_host", "mac": mac(3), "boot_once": "local"},
            {"cmd": "forget", "mac": mac(3)},
        ]
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, EntryPicker)
        await pilot.press(*"debian-live", "enter")
        await pilot.pause()
        assert source.sent[-1] == {"cmd": "set_host", "mac": mac(3), "boot_once": "debian-live"}
        source.push(ev("ClientForgotten", 50, mac=mac(3)))
        await settle(app, pilot)
        assert "forgotten" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert app.current_mode == "clients"
        assert app.screen.query_one(LiveTable).row_count == 4


async def test_leases_ours_and_seen_on_the_wire():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = (await goto(app, pilot, "f3")).query_one(LiveTable)
        by = {table.get_cell(k, "ip").plain: table.get_cell(k, "by").plain for k in table.keys_shown}
        assert by["10.99.0.50"] == "10.99.0.2" and by["10.99.0.120"] == "pxetui"
        source.push(ev("LeaseEnded", 60, mac=mac(9), ip="10.99.0.120", ours=True))
        await settle(app, pilot)
        assert table.row_count == 5
        ips = {table.get_cell(k, "ip").plain for k in table.keys_shown}
        assert ips == {f"10.99.0.{50 + i}" for i in range(5)}  # ours ended, the wire's stay


async def test_transfers_options_progress_rate_retransmits():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = (await goto(app, pilot, "f4")).query_one(LiveTable)
        assert table.get_cell("t1", "opts").plain == "1468/4"
        assert table.get_cell("t1", "progress").plain.endswith(" 60%")
        assert table.get_cell("t1", "rtx").plain == "1"
        assert table.get_cell("t1", "rate").plain == "391K/s"  # 400,000 B/s
        assert table.get_cell("t0", "rate").plain == "162K/s"  # the finish's average
        assert table.get_cell("t0", "status").plain.startswith("done")
        source.push(ev("TransferFailed", 70, transfer_id="t2", protocol="http",
                       reason="client closed the connection"))
        await settle(app, pilot)
        assert table.get_cell("t2", "status").plain == "failed: client closed the connection"


async def test_logs_filter_by_level_service_and_client():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await goto(app, pilot, "f7")
        log = screen.query_one("#log")
        assert any("lease 10.99.0.50" in line for line in log.lines)
        progress = [r.text for r in app.state.logs if r.type == "TransferProgress"]
        assert progress and not any(p in line for line in log.lines for p in progress)  # debug
        screen.set_filter(level="warning")
        await pilot.pause()
        assert log.lines and all(line[9] in "WE" for line in log.lines)
        screen.set_filter(service="tracker")
        await pilot.pause()
        assert log.lines and all(" tracker " in line for line in log.lines)
        screen.set_filter(client="00:03", level="debug")
        await pilot.pause()
        about = [r for r in app.state.logs if screen.matches(r)]
        assert len(log.lines) == len(about) > 0
        assert all(mac(3) == r.mac or "00:03" in r.text for r in about)
        assert any(r.type == "TransferProgress" for r in about)  # debug shows progress


async def test_logs_append_only_what_is_new():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(app, pilot, "f7")
        log = app.screen.query_one("#log")
        before = list(log.lines)
        source.push(ev("Log", 95, service="tftp", message="first new line"))
        source.push(ev("Log", 96, service="http", message="second new line"))
        await settle(app, pilot)
        assert log.lines[:len(before)] == before
        assert [line.split(" ", 1)[1] for line in log.lines[len(before):]] == [
            "  tftp     first new line", "  http     second new line"]
        await settle(app, pilot)  # nothing new: nothing written twice
        assert len(log.lines) == len(before) + 2


async def test_feed_that_drops_is_an_alert_not_a_crash():
    source = MemorySource(lab_feed()[:3], fail_with="peer reset the connection")
    app, _ = make_app(source=source)
    async with app.run_test(size=SIZE) as pilot:
        await app.feed_done.wait()
        await settle(app, pilot)
        assert app.is_running
        text = screen_text(app)
        assert "Lost the engine: it went away (ConnectionResetError: peer" in text
        assert "pxetui  DISCONNECTED (was serving eth1 10.99.0.1/24)" in text
        assert " Start the engine, then this UI again." in text  # the header says what to do
        await pilot.press("f2")  # still usable
        assert app.current_mode == "clients"


async def test_commands_without_an_engine_are_refused_politely():
    source = MemorySource([], end_after_initial=True)
    app, _ = make_app(source=source, events=[])
    async with app.run_test(size=SIZE) as pilot:
        await app.feed_done.wait()
        app.send({"cmd": "reload"}, "reload")
        await pilot.pause(0.1)
        assert source.sent == []
        assert any("not connected" in str(n.message) for n in app._notifications)


async def test_command_palette_offers_every_action_and_runs_them():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for want in ("Go to Dashboard", "Go to Clients", "Go to Leases", "Go to Transfers",
                     "Go to ISOs", "Go to Menu editor", "Go to Logs", "Go to Settings",
                     "Go to Console", "Reload menus and overrides", "Restart service tftp",
                     "Stop the engine", "Quit"):
            assert any(t.startswith(want) for t in titles), want
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Reload menus")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert source.sent == [{"cmd": "reload"}]
        await goto(app, pilot, "f2")
        await pilot.press("enter")
        await pilot.pause()
        detail = [c.title for c in app.get_system_commands(app.screen)]
        assert f"Boot {mac(1)} locally next time" in detail and f"Forget {mac(1)}" in detail


async def test_isos_screen_lists_imported_images():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto(app, pilot, "f5")
        source.push(ev("IsoImported", 80, name="debian-live-12", family="debian-live",
                       path="/srv/isos/debian-live-12.iso", entries=["debian-live-12"]))
        await settle(app, pilot)
        table = app.screen.query_one("#library")
        assert table.get_cell("debian-live-12", "family").plain == "debian-live"


async def test_console_tails_the_serial_log(tmp_path):
    console = tmp_path / "console.log"
    app, _ = make_app(console_path=str(console))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f9")
        await pilot.pause()
        screen = app.screen
        assert "waiting for the file" in screen_text(app)
        console.write_bytes(b"\x1b[2J\x1b[1;1HSeaBIOS (version 1.16)\r\niPXE initialising\r\npartial")
        screen.poll()
        await pilot.pause()
        log = screen.query_one("#console")
        assert log.lines == ["SeaBIOS (version 1.16)", "iPXE initialising"]
        with console.open("ab") as fh:
            fh.write(b" line\nBooting from ROM...\n")
        screen.poll()
        assert log.lines[-2:] == ["partial line", "Booting from ROM..."]
        console.write_bytes(b"restarted\n")  # truncated: start over
        screen.poll()
        assert log.lines[-1] == "restarted"


async def test_no_console_path_says_how_to_get_one():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f9")
        await pilot.pause()
        assert "No console file" in screen_text(app)


async def test_reconnects_and_rebuilds_from_the_new_replay(monkeypatch):
    import screens.app

    monkeypatch.setattr(screens.app, "RECONNECT_SECONDS", 0.05)
    first = MemorySource(lab_feed(), fail_with="engine restarting")
    second = MemorySource([ev("EngineStarted", 100, interface="eth2", address="10.98.0.1",
                              netmask="255.255.255.0", dhcp_mode="full", dhcp_mode_reason="forced"),
                           ev("ClientUpdate", 101, mac=mac(40), stage="discover")])
    app, _ = make_app(source=first)
    app.source_factory = lambda: second
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        for _ in range(100):  # bounded: two connections' worth of events
            await settle(app, pilot)
            if app.state.engine.interface == "eth2":
                break
        await settle(app, pilot)
        assert app.state.connected and "connection" not in app.state.alerts
        assert list(app.state.clients) == [mac(40)]
        text = screen_text(app)
        assert "eth2 10.98.0.1/24" in text and mac(40) in text and mac(1) not in text


async def test_markup_in_what_clients_send_is_shown_literally():
    """File names and hostnames come off the wire: '[/x]' must be text, not Rich markup."""
    hostile = "[/bold][red]x[/nope]"
    app, source = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await goto(app, pilot, "f2")
        source.push(ev("ClientUpdate", 90, mac=mac(1), stage="bootloader",
                       last_event=hostile, diagnosis=hostile,
                       files=[{"path": hostile, "protocol": "tftp", "status": "failed",
                               "reason": hostile}]))
        source.push(ev("TransferStarted", 91, mac=mac(1), transfer_id="h", path=hostile))
        source.push(ev("Log", 92, service="tftp", message=hostile))
        await settle(app, pilot)
        # the Diagnosis column starts at column 100 of 120: as much of it as fits, literally
        assert hostile[:17] in screen_text(app)
        assert app.screen.query_one(LiveTable).get_cell(mac(1), "diag").plain == hostile
        await pilot.press("enter")
        await settle(app, pilot)
        assert hostile in screen_text(app)
        for key in ("escape", "f4", "f7", "f1"):
            await pilot.press(key)
            await settle(app, pilot)
        assert app.is_running


async def test_palette_restart_and_stop_send_their_commands():
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        commands = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        commands["Restart service tftp"]()
        commands["Stop the engine"]()
        await pilot.pause(0.1)
        assert source.sent == [{"cmd": "restart", "service": "tftp"}, {"cmd": "stop"}]
