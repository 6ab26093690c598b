"""A client's log lines in the UI (ClientLog events, docs/CLIENT-LOGS.md): the detail screen's
Logs pane (live tail, filter, write to a file), the install stage in the Clients table, and the
Logs screen following one client. Keys only, 80x24."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Input, Log
from ui_feed import T0, ev, lab_feed, mac
from ui_helpers import goto, make_app, settle

from pxetui.state import CLIENT_LOG_LINES
from screens.client_detail import ClientDetailScreen
from screens.clientlogs import ClientLogPane, SaveLogScreen
from screens.logs import LogsScreen

SIZE = (80, 24)
DI = mac(6)  # a machine in the Debian installer
DI_IP = "10.99.0.60"
DI_LINES = [
    ("netcfg", 6, "DHCP lease obtained for 10.99.0.60"),
    ("main-menu", 6, "INFO: Menu item 'network-preseed' selected"),
    ("preseed", 6, "successfully loaded preseed file from http://10.99.0.1/preseed.cfg"),
    ("main-menu", 6, "INFO: Menu item 'partman-base' selected"),
    ("partman", 4, "Warning: no swap partition"),
    ("partman-auto", 6, "Selected recipe: atomic"),
]


def clog(t: float, app: str, severity: int | None, message: str, m: str | None = DI,
         **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"source": "syslog", "facility": 1, "format": "rfc3164", **more}
    return ev("ClientLog", t, service="logs", mac=m, ip=DI_IP if m == DI else None,
              severity=severity, app=app, message=message, **fields)


def installer_feed() -> list[dict[str, Any]]:
    stages = [("discover", 40), ("ack", 41), ("bootloader", 42), ("kernel", 44), ("rootfs", 46),
              ("installer", 50), ("network", 52), ("seed", 53), ("partitioning", 55)]
    out = lab_feed()
    out.append(ev("LeaseGranted", 40, service="dhcp", mac=DI, ip=DI_IP, ours=True,
                  expires=T0 + 3640))
    out.append(ev("ClientUpdate", 56, service="tracker", mac=DI, ip=DI_IP, stage="partitioning",
                  stages=[{"stage": s, "ts": T0 + t, "detail": ""} for s, t in stages],
                  firmware="bios", arch=0, progress=0.8,
                  last_event="log: partman-auto: Selected recipe: atomic"))
    out += [clog(50 + i, app, sev, msg) for i, (app, sev, msg) in enumerate(DI_LINES)]
    out.append(clog(57, "kernel", None, "e1000: eth0 NIC Link is Up", m=mac(1),
                    source="netconsole", format="netconsole"))
    return out


async def open_detail(app: Any, pilot: Any, m: str) -> ClientDetailScreen:
    screen = await goto(app, pilot, "f2")
    screen.table.move_cursor(row=screen.table.keys_shown.index(m))
    await pilot.press("enter")
    await settle(app, pilot)
    assert isinstance(app.screen, ClientDetailScreen) and app.screen.mac == m
    return app.screen


def log_lines(screen: Any) -> list[str]:
    return list(screen.query_one("#clog", Log).lines)


async def test_detail_tails_the_clients_lines_live_and_only_its_own(tmp_path):
    app, source = make_app(events=installer_feed())
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(app, pilot, DI)
        pane = screen.query_one(ClientLogPane)
        assert pane.display
        lines = log_lines(screen)
        assert len(lines) == len(DI_LINES)
        assert lines[2] == ("14:14:12   preseed: successfully loaded preseed file from "
                            "http://10.99.0.1/preseed.cfg")
        assert lines[4].startswith("14:14:14 W partman: ")  # severity 4: a warning
        assert not any("e1000" in line for line in lines)  # mac(1)'s line is not this client's
        source.push(clog(60, "main-menu", 6, "INFO: Menu item 'bootstrap-base' selected"))
        await settle(app, pilot)
        assert log_lines(screen)[-1].endswith("Menu item 'bootstrap-base' selected")
        assert pane.border_title == "Logs (7 lines)"


async def test_a_client_that_never_logged_shows_no_pane():
    app, _ = make_app(events=installer_feed())
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(app, pilot, mac(2))
        assert not screen.query_one(ClientLogPane).display
        await pilot.press("w")  # nothing to write: said, no dialog
        await pilot.pause()
        assert not isinstance(app.screen, SaveLogScreen)
        assert any("has no log lines" in str(n.message) for n in app._notifications)
        app.source.push(clog(70, "kernel", None, "Linux version 6.1.0", m=mac(2)))
        await settle(app, pilot)  # its first line: the pane appears and the tables make room
        assert screen.query_one(ClientLogPane).display
        assert screen.query_one("#detail").has_class("with-logs")
        assert log_lines(screen) == ["14:14:30   kernel: Linux version 6.1.0"]


async def test_filter_by_keys_then_write_the_shown_lines_to_a_new_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app, _ = make_app(events=installer_feed())
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(app, pilot, DI)
        await pilot.press("slash")
        assert isinstance(app.focused, Input) and app.focused.id == "clog-filter"
        await pilot.press(*"PARTMAN")  # case does not matter
        await pilot.press("enter")  # back to the screen's keys
        await settle(app, pilot)
        assert app.focused is None or app.focused.id != "clog-filter"
        shown = log_lines(screen)
        assert len(shown) == 3 and all("partman" in line for line in shown)
        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.screen, SaveLogScreen)
        path = app.screen.query_one("#save-path", Input)
        path.value = "di.log"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ClientDetailScreen)
        written = (tmp_path / "di.log").read_text().splitlines()
        assert written == shown
        assert any(f"Wrote 3 log lines of {DI} to {tmp_path / 'di.log'}" in str(n.message)
                   for n in app._notifications)
        # the same path again: refused, the file kept as it was
        await pilot.press("w")
        await pilot.pause()
        app.screen.query_one("#save-path", Input).value = "di.log"
        await pilot.press("enter")
        await pilot.pause()
        assert (tmp_path / "di.log").read_text().splitlines() == shown
        assert any("Log lines not written: di.log: File exists" in str(n.message)
                   for n in app._notifications)


async def test_the_pane_and_the_fold_are_bounded():
    feed = installer_feed() + [clog(100 + i / 100, "anna", 6, f"line {i}")
                               for i in range(CLIENT_LOG_LINES + 200)]
    app, _ = make_app(events=feed)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(app, pilot, DI)
        assert len(app.state.client_logs[DI]) == CLIENT_LOG_LINES
        lines = log_lines(screen)
        assert len(lines) == CLIENT_LOG_LINES
        assert lines[-1].endswith(f"anna: line {CLIENT_LOG_LINES + 199}")


async def test_clients_table_shows_the_install_stage_and_o_follows_a_client_in_logs():
    app, _ = make_app(events=installer_feed())
    async with app.run_test(size=SIZE) as pilot:
        screen = await goto(app, pilot, "f2")
        assert screen.table.get_cell(DI, "stage").plain == "partition"  # 10 columns
        screen.table.move_cursor(row=screen.table.keys_shown.index(DI))
        await pilot.press("o")
        await settle(app, pilot)
        assert isinstance(app.screen, LogsScreen)
        assert app.screen.query_one("#log-client", Input).value == DI
        text = "\n".join(app.screen.query_one("#log", Log).lines)
        assert f"{DI} syslog preseed: successfully loaded preseed file" in text
        assert "e1000" not in text and mac(1) not in text


async def test_o_in_the_detail_screen_follows_that_client_even_with_logs_open():
    app, _ = make_app(events=installer_feed())
    async with app.run_test(size=SIZE) as pilot:
        await goto(app, pilot, "f7")  # the Logs screen exists already: it is resumed
        await open_detail(app, pilot, mac(1))
        await pilot.press("o")
        await settle(app, pilot)
        assert isinstance(app.screen, LogsScreen)
        assert app.screen.query_one("#log-client", Input).value == mac(1)
        text = "\n".join(app.screen.query_one("#log", Log).lines)
        assert f"{mac(1)} netconsole kernel: e1000: eth0 NIC Link is Up" in text
        assert DI not in text


def keys_to(*keys: str) -> Any:
    async def run_before(pilot: Any) -> None:
        await settle(pilot.app, pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot.app, pilot)

    return run_before


# the installing client is the sixth row of the Clients table
SNAPSHOTS = {"clients": ("f2",), "detail": ("f2", *("down",) * 5, "enter"),
             "filtered": ("f2", *("down",) * 5, "enter", "slash", *"partman", "enter")}


@pytest.mark.parametrize("view", list(SNAPSHOTS))
def test_snapshot(snap_compare, view):
    app, _ = make_app(events=installer_feed())
    assert snap_compare(app, terminal_size=SIZE, run_before=keys_to(*SNAPSHOTS[view]))
