"""Settings: interface picker, DHCP mode, range and roots, with the config file's messages."""

from __future__ import annotations

import tomllib

from ui_helpers import make_app, screen_text

from pxetui.config import Config, ConfigError, load, resolve
from screens.settings import SettingsScreen, validate

SIZE = (80, 24)


def config_file_problems(raw: dict) -> list[str]:
    try:
        cfg = Config.from_dict(raw)
        from ui_helpers import fake_ifaces

        resolve(cfg, fake_ifaces()[cfg.interface])
    except ConfigError as exc:
        return exc.problems
    return []


def test_form_and_config_file_give_the_same_messages():
    from ui_helpers import fake_ifaces

    for raw in ({"interface": "eth1", "dhcp": {"range": "10.99.0.200-10.99.0.100"}},
                {"interface": "eth1", "dhcp": {"range": "10.98.0.10-10.98.0.20"}},
                {"interface": "eth1", "dhcp": {"mode": "loud"}}):
        assert validate(raw, fake_ifaces()) == config_file_problems(raw)
    assert validate({"interface": "wlan0"}, fake_ifaces()) == [
        "interface wlan0: is down; usable interfaces: eth1 (10.99.0.1/24, up)"]


async def test_pick_interface_validate_and_save(tmp_path):
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        text = screen_text(app)
        assert "eth1" in text and "10.99.0.1/24" in text and "1000 Mb/s" in text
        assert "wlan0" in text and "down" in text
        assert screen.selected_iface == "eth1"  # from what the engine reports
        screen.query_one("#ifaces").focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert "interface wlan0: is down" in screen_text(app)
        await pilot.press("up", "enter")
        screen.query_one("#range").value = "10.99.0.200-10.99.0.100"
        await pilot.pause()
        assert "dhcp.range: 10.99.0.200-10.99.0.100 ends before it starts" in screen_text(app)
        assert screen.save() is False
        assert not (tmp_path / "pxetui.toml").exists()
        screen.query_one("#range").value = "10.99.0.100-10.99.0.150"
        screen.query_one("#mode").value = "proxy"
        screen.query_one("#tftp_root").value = str(tmp_path / "tftp")
        await pilot.pause()
        assert "Settings are valid." in screen_text(app)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Settings: save", "enter")
        await pilot.pause(0.2)
        saved = tomllib.loads((tmp_path / "pxetui.toml").read_text())
        assert saved == {"interface": "eth1",
                         "dhcp": {"mode": "proxy", "range": "10.99.0.100-10.99.0.150"},
                         "tftp": {"root": str(tmp_path / "tftp")}}
        assert load(tmp_path / "pxetui.toml").dhcp.mode == "proxy"
        assert "applies when the engine restarts" in screen_text(app)


async def test_existing_config_keys_are_kept(tmp_path):
    (tmp_path / "pxetui.toml").write_text(
        'interface = "eth1"\n[dhcp]\nmode = "full"\nrouter = "10.99.0.254"\n[http]\nport = 8080\n')
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#mode").value == "full"
        screen.query_one("#mode").value = "auto"
        await pilot.pause()
        assert screen.save()
        saved = tomllib.loads((tmp_path / "pxetui.toml").read_text())
        assert saved["dhcp"] == {"mode": "auto", "router": "10.99.0.254"}
        assert saved["http"] == {"port": 8080}
