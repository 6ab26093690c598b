from __future__ import annotations

import pytest

from pxetui.config import Config, ConfigError, default_range, load, parse_range, resolve
from pxetui.netinfo import InterfaceError, InterfaceInfo, check_interface

ETH1 = InterfaceInfo("eth1", True, "10.0.0.1", "255.255.255.0", "52:54:00:00:00:01", 1000, 1500)


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        Config.from_dict(raw)
    return exc.value.problems


def test_range_that_ends_before_it_starts_names_key_and_problem():
    assert problems({"dhcp": {"range": "10.0.0.50-10.0.0.10"}}) == [
        "dhcp.range: 10.0.0.50-10.0.0.10 ends before it starts"
    ]


def test_range_outside_interface_subnet():
    cfg = Config.from_dict({"interface": "eth1", "dhcp": {"range": "10.1.0.5-10.1.0.9"}})
    with pytest.raises(ConfigError) as exc:
        resolve(cfg, ETH1)
    assert exc.value.problems == ["dhcp.range: 10.1.0.5 is outside eth1's subnet 10.0.0.0/24"]


def test_every_problem_is_reported_with_its_key():
    got = problems({
        "dhcp": {"mode": "fast", "lease_time": "long", "allow": ["zz"], "boot_files": {"bios": "x", "amiga": "y"}},
        "tftp": {"port": 70000, "windowsize_max": 65},
        "bogus": 1,
    })
    joined = "\n".join(got)
    assert "dhcp.lease_time: expected an integer, got 'long'" in joined
    assert "bogus: unknown key" in joined
    # type errors stop before semantic checks; fix them and the rest show up
    got = problems({"dhcp": {"mode": "fast", "allow": ["zz"], "boot_files": {"amiga": "y"}},
                    "tftp": {"port": 70000, "windowsize_max": 65}})
    joined = "\n".join(got)
    assert "dhcp.mode: 'fast' is not one of auto, full, proxy, off" in joined
    assert "dhcp.allow[0]: 'zz' is not a MAC address" in joined
    assert "dhcp.boot_files.amiga: unknown kind" in joined
    assert "tftp.port: 70000 is not a port number (1..65535)" in joined
    assert "tftp.windowsize_max: 65 is outside 1..64" in joined
    assert problems({"http": {"header_timeout": 0, "idle_timeout": 3601}}) == [
        "http.header_timeout: 0.0 is outside 0..3600 seconds",
        "http.idle_timeout: 3601.0 is outside 0..3600 seconds",
    ]


def test_uploads_dir_inside_root_is_refused(tmp_path):
    got = problems({"tftp": {"root": str(tmp_path), "uploads_dir": str(tmp_path / "up")}})
    assert got == [f"tftp.uploads_dir: {(tmp_path / 'up').resolve()} is inside tftp.root; "
                   "uploads must not overwrite served files"]
    got = problems({"tftp": {"root": str(tmp_path), "uploads_dir": str(tmp_path)}})  # the root itself
    assert got[0].startswith("tftp.uploads_dir:") and "is inside tftp.root" in got[0]


def test_duplicate_reservation_and_mac_normalisation():
    cfg = Config.from_dict({"dhcp": {"reservations": [{"mac": "52-54-00-AA-BB-CC", "ip": "10.0.0.7"}]}})
    assert cfg.dhcp.reservations[0].mac == "52:54:00:aa:bb:cc"
    got = problems({"dhcp": {"reservations": [{"mac": "52:54:00:aa:bb:cc"}, {"mac": "52:54:00:AA:BB:CC"}]}})
    assert got == ["dhcp.reservations[1].mac: 52:54:00:aa:bb:cc is already reserved in [0]"]


def test_defaults_come_from_the_interface():
    cfg = resolve(Config.from_dict({"interface": "eth1"}), ETH1)
    assert cfg.server_ip == "10.0.0.1"
    assert cfg.dhcp.range == "10.0.0.100-10.0.0.199"
    assert cfg.http_base == "http://10.0.0.1"


@pytest.mark.parametrize("addr,mask", [("10.0.0.150", "255.255.255.0"), ("192.168.7.9", "255.255.255.248"),
                                        ("172.16.5.100", "255.255.0.0")])
def test_default_range_excludes_own_address_and_stays_in_subnet(addr, mask):
    info = InterfaceInfo("x", True, addr, mask, None, 0, 1500)
    start, end = parse_range(default_range(info))
    import ipaddress

    own = ipaddress.IPv4Address(addr)
    assert start in info.network and end in info.network
    assert not (start <= own <= end)
    assert start <= end


def test_command_line_wins_over_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('interface = "eth9"\n[dhcp]\nmode = "proxy"\nrouter = "10.0.0.254"\n')
    cfg = load(f, {"dhcp": {"mode": "full"}})
    assert cfg.interface == "eth9" and cfg.dhcp.mode == "full" and cfg.dhcp.router == "10.0.0.254"


def test_bad_toml_and_missing_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[dhcp\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(f)
    with pytest.raises(ConfigError, match="no such config file"):
        load(tmp_path / "nope.toml")


def test_config_round_trips_through_json():
    cfg = resolve(Config.from_dict({"interface": "eth1", "dhcp": {"boot_files": {"bios": "pxelinux.0"}}}), ETH1)
    back = Config.from_json(cfg.to_json())
    assert back == cfg


def test_interface_refusals_list_usable_ones():
    ifaces = {
        "eth1": ETH1,
        "eth2": InterfaceInfo("eth2", False, "10.2.0.1", "255.255.255.0", None, 0, 1500),
        "eth3": InterfaceInfo("eth3", True, None, None, None, 0, 1500),
    }
    with pytest.raises(InterfaceError, match=r"eth2: is down; usable interfaces: eth1 \(10.0.0.1/24, up\)"):
        check_interface("eth2", ifaces)
    with pytest.raises(InterfaceError, match="eth3: has no IPv4 address"):
        check_interface("eth3", ifaces)
    with pytest.raises(InterfaceError, match="wlan0: does not exist"):
        check_interface("wlan0", ifaces)
    assert check_interface("eth1", ifaces) is ETH1
