"""[logs]: defaults, validation with the key named, `--logs`, and which services it starts."""

from __future__ import annotations

import argparse

import pytest

from pxetui import reload as reload_plan
from pxetui.cliconfig import add_common, overrides_from
from pxetui.config import Config, ConfigError
from pxetui.supervisor import ports_needed, services_for


def test_off_by_default_and_on_with_its_ports() -> None:
    cfg = Config()
    assert not cfg.logs.enabled and "logs" not in services_for(cfg)
    on = Config.from_dict({"logs": {"enabled": True, "netconsole_port": 6667}})
    names = services_for(on)
    assert "logs" in names
    assert ports_needed(on, names)[514] == "udp" and ports_needed(on, names)[6667] == "udp"


@pytest.mark.parametrize(("raw", "message"), [
    ({"syslog_port": 0}, "logs.syslog_port: 0 is not a port number"),
    ({"syslog_port": 6666}, "logs.netconsole_port: 6666 is also logs.syslog_port"),
    ({"rate": 0.0}, "logs.rate: 0.0 is outside 0.1..1000000 lines/s"),
    ({"burst": 0}, "logs.burst: 0 is outside 1..10000000 lines"),
    ({"max_lines_per_client": 5}, "logs.max_lines_per_client: 5 is outside 10..10000000 lines"),
    ({"max_line_bytes": 100}, "logs.max_line_bytes: 100 is outside 256..65535 bytes"),
    ({"max_connections": 0}, "logs.max_connections: 0 is outside 1..10000 connections"),
    ({"idle_timeout": 0.0}, "logs.idle_timeout: 0.0 is outside 1..86400 seconds"),
    ({"enabled": "yes"}, "logs.enabled: expected true or false"),
])
def test_bad_values_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"logs": raw})
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems


def test_logs_flag_turns_it_on() -> None:
    p = argparse.ArgumentParser()
    add_common(p)
    assert overrides_from(p.parse_args(["--logs"]))["logs"] == {"enabled": True}
    assert "logs" not in overrides_from(p.parse_args([]))


def test_a_reload_restarts_logs_and_the_menu_services_for_menu_keys() -> None:
    old = Config.from_dict({"logs": {"enabled": True}})
    new = Config.from_dict({"logs": {"enabled": True, "syslog_port": 5514, "rate": 10.0}})
    plan = reload_plan.restarts(reload_plan.changed_keys(old, new), ["tftp", "http", "logs", "dhcp"])
    assert plan["logs"] == ["logs.rate", "logs.syslog_port"]
    assert plan["tftp"] == plan["http"] == ["logs.syslog_port"]  # menus carry log_port
    assert "dhcp" not in plan
