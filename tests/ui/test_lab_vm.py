"""`pxetui lab` in the UI: the VM powering off is said in plain words and offered again (a key,
a palette entry); a lost lab engine says what to do; the first boot's tables tell the truth at
80x24 (config lookups dimmed as normal, no live transfer after the client booted, whole
firmware names, readable rates)."""

from __future__ import annotations

from ui_feed import LAB_MAC, PXELINUX_LOOKUPS, ev, lab_boot_feed
from ui_helpers import FakeLab, goto, make_app, screen_text, settle

from pxetui.events import LabVm
from pxetui.lab.network import LabError
from screens.source import MemorySource
from screens.widgets import LiveTable

SIZE = (80, 24)


def palette_titles(app) -> list[str]:  # noqa: ANN001 - the app under test
    return [c.title for c in app.get_system_commands(app.screen)]


async def test_the_vm_powered_off_is_said_and_ctrl_r_boots_it_again():
    lab = FakeLab()
    app, _ = make_app(events=lab_boot_feed(), lab=lab)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        text = screen_text(app)
        assert "INFO    14:14:20 The lab VM powered off after its system booted. ctrl+r" in text
        assert "boots it again." in text  # the alert, wrapped in its box
        assert " VM off: ^r " in text.splitlines()[1]  # the header, on every screen
        assert "^r Boot VM" in text.splitlines()[-1]  # the footer offers the key
        assert "Boot the lab VM again" in palette_titles(app)
        assert "ERROR" not in text and "engine connection lost" not in text

        await pilot.press("ctrl+r")
        for _ in range(50):  # the boot runs in a thread worker: bounded wait
            await pilot.pause(0.02)
            if app.state.lab_vm is not None and app.state.lab_vm.state == "running":
                break
        await settle(app, pilot)
        assert lab.boots_asked == 1
        assert app.state.lab_vm is not None and app.state.lab_vm.boots == 2
        text = screen_text(app)
        assert "lab VM" not in text and "VM off" not in text  # the alert cleared
        assert "Boot VM" not in text.splitlines()[-1]
        assert "Boot the lab VM again" not in palette_titles(app)
        await pilot.press("ctrl+r")  # running: the key does nothing
        await pilot.pause(0.1)
        assert lab.boots_asked == 1


async def test_a_vm_that_did_not_start_is_reported_and_can_be_tried_again():
    class Broken(FakeLab):
        def boot(self):  # noqa: ANN202 - as the keeper's
            self.boots_asked += 1
            raise LabError("qemu-system-x86_64 not found: install the Debian package qemu-system-x86")

    lab = Broken(booted=False, detail="powered off before its system came up")
    app, _ = make_app(events=lab_boot_feed(), lab=lab)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "WARNING" in screen_text(app)  # it never came up: a warning, not info
        for n in (1, 2):
            await pilot.press("ctrl+r")
            for _ in range(50):
                await pilot.pause(0.02)
                if lab.boots_asked == n:
                    break
            await pilot.pause(0.05)
        assert lab.boots_asked == 2 and app.is_running
        assert app.state.lab_vm is not None and app.state.lab_vm.state == "off"


async def test_the_console_says_the_vm_state_and_starts_over_with_a_new_boot(tmp_path):
    console = tmp_path / "console.log"
    console.write_text("SeaBIOS\nPXETUI-LAB-BOOTED\nreboot: Power down\n")

    class Restarting(FakeLab):
        def boot(self) -> LabVm:
            console.write_bytes(b"")  # as pxetui.lab.qemu.Vm.start: emptied before QEMU runs
            return super().boot()

    lab = Restarting()
    app, _ = make_app(events=lab_boot_feed(), lab=lab, console_path=str(console))
    async with app.run_test(size=SIZE) as pilot:
        await goto(app, pilot, "f9")
        await pilot.pause(0.3)  # the console screen polls its file
        text = screen_text(app)
        assert "VM off (ctrl+r boots it again)" in text and "Power down" in text
        await pilot.press("ctrl+r")
        console.write_text("iPXE initialising devices...\n")  # the new QEMU's console, from empty
        for _ in range(50):  # bounded: the boot worker, then the screen's poll
            await pilot.pause(0.05)
            if "VM running (boot 2)" in screen_text(app):
                break
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "VM running (boot 2)" in text and "iPXE initialising" in text
        assert "Power down" not in text and "PXETUI-LAB-BOOTED" not in text  # the old boot's


async def test_without_a_lab_there_is_no_vm_key():
    app, _ = make_app(events=lab_boot_feed())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert "Boot VM" not in screen_text(app)
        assert "Boot the lab VM again" not in palette_titles(app)
        assert app.state.lab_vm is None


async def test_a_lost_lab_engine_says_to_run_the_lab_again():
    source = MemorySource(lab_boot_feed()[:5], fail_with="the engine went away")
    app, _ = make_app(source=source, lab=FakeLab(state="running"))
    async with app.run_test(size=SIZE) as pilot:
        await app.feed_done.wait()
        await settle(app, pilot)
        header = screen_text(app).splitlines()[:2]
        assert header[0].startswith(" pxetui  DISCONNECTED (was serving br0 10.77.0.1/24)")
        assert "quit (ctrl+q) and run `sudo pxetui lab` again" in header[1]


async def test_the_first_boots_transfers_tell_the_truth_at_80_columns():
    app, source = make_app(events=lab_boot_feed())
    async with app.run_test(size=SIZE) as pilot:
        table = (await goto(app, pilot, "f4")).query_one(LiveTable)
        misses = [k for k, t in app.state.transfers.items() if t.path in PXELINUX_LOOKUPS]
        assert len(misses) == len(PXELINUX_LOOKUPS)
        for key in misses:
            status = table.get_cell(key, "status")
            assert status.plain == "not found — normal" and status.style == "dim"
            assert table.get_cell(key, "progress").plain == "-"  # no "?" bar
        # The capture saw our initrd's request but not its end: its copy of our own transfer
        # is not a second row, left "running" or closed (pxetui/state.py, _copies).
        assert not [t for t in app.state.transfers.values() if t.service == "capture"]
        assert [t.path for t in app.state.transfers.values() if t.path == "lab/initrd.gz"] == ["lab/initrd.gz"]
        text = screen_text(app)
        header = text.splitlines()[3]
        assert header.split() == ["Client", "File", "Progress", "Rate", "Status"]
        assert "1.3M/s" in text and "done 0.9s" in text  # the initrd's rate and outcome, whole
        assert "?" not in text
        await goto(app, pilot, "f1")
        assert "live transfers: 0" in screen_text(app)
        # a real failure is still red
        source.push(ev("TransferFailed", 80, ip="10.77.0.10", transfer_id="bad",
                       path="lab/missing.img", reason="file not found", status=1))
        table = (await goto(app, pilot, "f4")).query_one(LiveTable)
        assert table.get_cell("bad", "status").plain == "failed: file not found"


async def test_the_firmware_column_holds_the_whole_name():
    feed = lab_boot_feed() + [ev("ClientUpdate", 90, mac="52:54:00:77:00:11", ip="10.77.0.11",
                                 stage="kernel", firmware="uefi64/ipxe", arch=7)]
    app, _ = make_app(events=feed)
    async with app.run_test(size=SIZE) as pilot:
        await goto(app, pilot, "f2")
        rows = {line.split()[0]: line for line in screen_text(app).splitlines()[4:6]}
        assert " bios/ipxe " in rows[LAB_MAC]
        assert " uefi64/ipxe " in rows["52:54:00:77:00:11"]
