"""Pilot tests for the ISO import and the menu editor, against a real state directory."""

from __future__ import annotations

from ui_helpers import goto, make_app, screen_text, settle
from ui_isos import debian_live_iso

from pxetui.config import Config
from pxetui.iso.library import import_iso
from pxetui.menus.model import Menu
from screens.menu_editor import MenuScreen
from screens.menu_store import load_from

SIZE = (80, 24)


async def wait_import(app, pilot) -> None:
    for _ in range(100):
        await pilot.pause(0.05)
        if not app.screen.importing:
            return
    raise AssertionError("import did not finish")


async def test_import_an_iso_from_the_picker(tmp_path):
    debian_live_iso(tmp_path / "isos" / "debian-live.iso")
    app, source = make_app(tmp_path, iso_dir=str(tmp_path / "isos"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await pilot.pause(0.2)
        tree = app.screen.query_one("#iso-tree")
        tree.focus()
        await pilot.press("down", "enter")  # the tree opens at the directory: pick the file
        await pilot.pause()
        assert app.screen.query_one("#iso-path").value.endswith("debian-live.iso")
        await pilot.press("ctrl+o")
        await wait_import(app, pilot)
        text = screen_text(app)
        assert "Imported debian-live: debian-live" in text
        assert "entries: debian-live" in text
        bar = app.screen.query_one("#iso-progress")
        assert bar.percentage == 1.0
        assert app.screen.query_one("#library").get_cell("debian-live", "family").plain == "debian-live"
        assert source.sent == [{"cmd": "reload"}]
        await settle(app, pilot)
        assert "debian-live" in app.state.library  # the menu editor hears of it too


async def test_a_bad_image_is_refused_with_the_reason(tmp_path):
    bad = tmp_path / "isos" / "notes.iso"
    bad.parent.mkdir()
    bad.write_text("not an image")
    app, source = make_app(tmp_path, iso_dir=str(tmp_path / "isos"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await pilot.pause()
        app.screen.query_one("#iso-path").value = str(bad)
        await pilot.press("ctrl+o")
        await wait_import(app, pilot)
        assert "Import failed:" in screen_text(app)
        assert app.screen.query_one("#library").row_count == 0
        assert source.sent == []


async def test_without_a_state_dir_the_library_says_so():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        await pilot.pause()
        assert "state directory is not known" in screen_text(app)


def imported(tmp_path) -> Config:
    cfg = Config(state_dir=str(tmp_path / "state"))
    import_iso(cfg, debian_live_iso(tmp_path / "isos" / "debian-live.iso"))
    return cfg


def stored_menu(cfg: Config) -> Menu:
    return load_from(cfg.db_path)


async def test_menu_editor_validates_previews_reorders_and_saves(tmp_path):
    cfg = imported(tmp_path)
    app, source = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await goto(app, pilot, "f6")
        assert isinstance(screen, MenuScreen)
        assert [e.id for e in screen.menu.entries] == ["debian-live", "local"]
        timeout = screen.query_one("#m-timeout")
        timeout.value = "99999"
        await pilot.pause()
        assert "timeout: 99999 is outside 0..3600 seconds" in screen_text(app)
        await pilot.press("ctrl+s")
        assert stored_menu(cfg).timeout == 10 and source.sent == []  # refused
        timeout.value = "5"
        screen.query_one("#e-args").value = "boot=live components quiet"
        await pilot.pause()
        assert "Menu OK" in screen_text(app)
        pxelinux = str(screen.query_one("#pv-text-pxelinux").content)
        assert "TIMEOUT 50" in pxelinux and "boot=live components quiet" in pxelinux
        assert "boot=live components quiet" in str(screen.query_one("#pv-text-grub").content)
        assert "boot=live components quiet" in str(screen.query_one("#pv-text-ipxe").content)
        screen.query_one("#m-entries").focus()
        await pilot.press("ctrl+d")  # debian-live becomes the default
        await pilot.press("alt+down")  # and moves below local
        await pilot.press("ctrl+s")
        await pilot.pause()
        menu = stored_menu(cfg)
        assert menu.timeout == 5 and menu.default == "debian-live"
        assert [e.id for e in menu.entries] == ["local", "debian-live"]
        assert menu.get("debian-live").args == "boot=live components quiet"
        assert source.sent == [{"cmd": "reload"}]


async def test_menu_editor_new_entry_needs_a_kernel_and_can_be_removed(tmp_path):
    cfg = imported(tmp_path)
    app, source = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await goto(app, pilot, "f6")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.current == "new-entry"
        assert "entry new-entry: linux entry has no kernel/image" in screen_text(app)
        screen.query_one("#e-kernel").value = "iso/debian-live/live/vmlinuz"
        await pilot.pause()
        assert "Menu OK: 3 entries" in screen_text(app)
        screen.query_one("#m-entries").focus()
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert [e.id for e in screen.menu.entries] == ["debian-live", "local"]
        await pilot.press("ctrl+x")  # removing is per selection; local cannot go
        await pilot.press("down")
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert any("cannot be removed" in str(n.message) for n in app._notifications)
        assert stored_menu(cfg).get("debian-live") is not None  # nothing saved


async def test_boot_once_offers_the_menu_entries(tmp_path):
    imported(tmp_path)
    app, source = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await goto(app, pilot, "f2")
        await pilot.press("enter", "b")
        await pilot.pause()
        options = app.screen.query_one("#entries")
        assert [options.get_option_at_index(i).id for i in range(options.option_count)] == [
            "debian-live", "local"]
        await pilot.press("enter")
        await pilot.pause()
        assert source.sent == [{"cmd": "set_host", "mac": "52:54:00:00:00:01",
                                "boot_once": "debian-live"}]


async def test_menu_revert_drops_unsaved_edits(tmp_path):
    cfg = imported(tmp_path)
    app, source = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await goto(app, pilot, "f6")
        screen.query_one("#m-timeout").value = "42"
        await pilot.pause()
        assert screen.menu.timeout == 42 and screen.modified
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert screen.menu.timeout == stored_menu(cfg).timeout == 10
        assert screen.query_one("#m-timeout").value == "10" and not screen.modified
        assert source.sent == []
