"""The TFTP and HTTP limits in the config: defaults, and every bad value named by its key."""

from __future__ import annotations

import pytest

from pxetui.config import Config, ConfigError


def test_defaults_are_the_documented_ones():
    cfg = Config.from_dict({})
    t, h = cfg.tftp, cfg.http
    assert (t.max_transfers, t.max_per_client, t.idle_timeout, t.oack_timeout, t.pump_threads) == (
        1024, 8, 30.0, 5.0, 64)
    assert (h.max_connections, h.max_per_client, h.send_timeout, h.min_rate, h.min_rate_window) == (
        512, 16, 60.0, 1024, 30.0)


@pytest.mark.parametrize(("raw", "problem"), [
    ({"tftp": {"max_transfers": 0}}, "tftp.max_transfers: 0 is outside 1..100000"),
    ({"tftp": {"max_per_client": 0}}, "tftp.max_per_client: 0 is outside 1..tftp.max_transfers (1024)"),
    ({"tftp": {"max_transfers": 4, "max_per_client": 5}}, "tftp.max_per_client: 5 is outside 1..tftp.max_transfers (4)"),
    ({"tftp": {"idle_timeout": 0.5}}, "tftp.idle_timeout: 0.5 is outside 1..600 seconds"),
    ({"tftp": {"oack_timeout": 120}}, "tftp.oack_timeout: 120.0 is outside 0.5..60 seconds"),
    ({"tftp": {"pump_threads": -1}}, "tftp.pump_threads: -1 is outside 0..1024 (0: lock-step in Python only)"),
    ({"http": {"max_per_client": 600}}, "http.max_per_client: 600 is outside 1..http.max_connections (512)"),
    ({"http": {"min_rate": -5}}, "http.min_rate: -5 is outside 0..1073741824 bytes/s (0: off)"),
    ({"http": {"min_rate_window": 0}}, "http.min_rate_window: 0.0 is outside 0..3600 seconds"),
    ({"http": {"send_timeout": 7200}}, "http.send_timeout: 7200.0 is outside 0..3600 seconds"),
    ({"tftp": {"pump_threads": "many"}}, "tftp.pump_threads: expected an integer, got 'many'"),
    ({"events": {"ui_send_buffer": 4096}}, "events.ui_send_buffer: 4096 is outside 65536..268435456 bytes"),
])
def test_bad_limits_are_named(raw, problem):
    with pytest.raises(ConfigError) as err:
        Config.from_dict(raw)
    assert err.value.problems == [problem]


def test_limits_survive_the_trip_to_the_service_process():
    cfg = Config.from_dict({"tftp": {"max_per_client": 3, "pump_threads": 0},
                            "http": {"max_per_client": 2, "min_rate": 0}})
    back = Config.from_json(cfg.to_json())
    assert (back.tftp.max_per_client, back.tftp.pump_threads, back.http.max_per_client, back.http.min_rate) == (
        3, 0, 2, 0)
