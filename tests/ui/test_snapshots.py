"""Snapshots of every screen at 80x24 and 120x40, from a fixed feed (fixed timestamps, UTC,
no clocks, no spinners). Update with `pytest tests/ui --snapshot-update` after a deliberate
change, and look at the SVGs."""

from __future__ import annotations

import time

import pytest
from ui_feed import T0, ev, lab_boot_feed
from ui_helpers import FakeLab, make_app, settle
from ui_isos import debian_live_iso

from pxetui import store
from pxetui.config import Config
from pxetui.iso.library import import_iso
from screens import fmt
from screens.isos import IsoTree

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A state dir with one imported image and a console log, at relative paths so nothing
    machine-specific is drawn."""
    monkeypatch.chdir(tmp_path)
    cfg = Config(state_dir="state")
    import_iso(cfg, debian_live_iso(tmp_path / "isos" / "debian-live.iso"))
    conn = store.connect(cfg.db_path)
    conn.execute("UPDATE iso_library SET imported = ?", (T0,))  # drawn as a clock time
    conn.close()
    (tmp_path / "console.log").write_text("SeaBIOS (version 1.16.3)\niPXE initialising devices...\n"
                                          "Booting from ROM...\n")
    app, source = make_app(None, console_path="console.log", iso_dir="isos", state_dir="state",
                           config_path="pxetui.toml")
    return app, source


def run_keys(*keys: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        await settle(app, pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        trees = app.screen.query(IsoTree)
        for _ in range(100):  # the picker lists its directory in a worker: wait (bounded)
            if not trees or trees.first().root.children:
                break
            await pilot.pause(0.05)
        for _ in range(2):  # widgets that lay out after a refresh (tab underlines) settle too
            app.flush()
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()

    return run_before


SCREENS = {
    "dashboard": ("f1",),
    "clients": ("f2",),
    "client_detail": ("f2", "down", "down", "down", "down", "enter"),
    "leases": ("f3",),
    "transfers": ("f4",),
    "isos": ("f5",),
    "menu": ("f6",),
    "logs": ("f7",),
    "settings": ("f8",),
    "console": ("f9",),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare, lab, screen, size):
    app, _ = lab
    assert snap_compare(app, terminal_size=size, run_before=run_keys(*SCREENS[screen]))


def test_disconnected_dashboard(snap_compare, tmp_path, monkeypatch):
    from ui_feed import lab_feed

    from screens.source import MemorySource

    monkeypatch.chdir(tmp_path)
    source = MemorySource(lab_feed()[:6], fail_with="the engine went away")

    def engine_gone() -> MemorySource:  # `pxetui` tries again every 2 s: nothing answers
        raise FileNotFoundError(2, "No such file or directory")

    # The header says DISCONNECTED and, in its second line, the command that starts it again.
    app, _ = make_app(None, source=source, source_factory=engine_gone)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_keys())


def test_lab_vm_powered_off(snap_compare, tmp_path, monkeypatch):
    """`pxetui lab` after its first boot: the VM powered off. The header, the alert and the
    footer say so in plain words and offer ctrl+r to boot it again."""
    monkeypatch.chdir(tmp_path)
    app, _ = make_app(None, events=lab_boot_feed(), lab=FakeLab())
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_keys())


@pytest.mark.parametrize("screen", ["transfers", "clients"])
def test_lab_boot_tables(snap_compare, tmp_path, monkeypatch, screen):
    """The first lab boot's tables at 80x24: PXELINUX's config lookups dimmed as normal, the
    initrd once (the capture's copy of our own transfer is not a row), the rate readable; the
    Firmware column whole (bios/ipxe)."""
    monkeypatch.chdir(tmp_path)
    app, _ = make_app(None, events=lab_boot_feed())
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_keys(*SCREENS[screen]))


def test_drawn_times_are_the_events_own_in_local_time(monkeypatch):
    """What keeps the snapshots fixed: a time on screen is the event's own stamp, never the wall
    clock, drawn in the local zone that the `utc` fixture pins (an operator sees their own)."""
    stamp = ev("Log", 17)["ts"]
    assert fmt.clock(stamp) == "14:13:37"
    monkeypatch.setenv("TZ", "IST-5:30")  # the `utc` fixture restores the zone afterwards
    time.tzset()
    assert fmt.clock(stamp) == "19:43:37"
    assert fmt.clock(None) == "--:--:--"
