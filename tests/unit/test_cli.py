from __future__ import annotations

import argparse

import pytest

from pxetui.cli import build_parser, main
from pxetui.cliconfig import overrides_from
from pxetui.config import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_every_shared_option_maps_to_a_config_key():
    args = parse("serve", "--interface", "eth1", "--dhcp", "proxy", "--range", "10.0.0.10-10.0.0.20",
                 "--router", "10.0.0.1", "--dns", "10.0.0.2, 10.0.0.3", "--tftp-root", "/srv/tftp",
                 "--http-root", "/srv/http", "--http-port", "8080", "--state-dir", "/tmp/s",
                 "--boot-file", "bios=pxelinux.0", "--boot-file", "ipxe=http://10.0.0.1:8080/boot.ipxe",
                 "--no-capture")
    assert overrides_from(args) == {
        "interface": "eth1",
        "dhcp": {"mode": "proxy", "range": "10.0.0.10-10.0.0.20", "router": "10.0.0.1",
                 "dns": ["10.0.0.2", "10.0.0.3"],
                 "boot_files": {"bios": "pxelinux.0", "ipxe": "http://10.0.0.1:8080/boot.ipxe"}},
        "tftp": {"root": "/srv/tftp"},
        "http": {"root": "/srv/http", "port": 8080},
        "state_dir": "/tmp/s",
        "capture": {"enabled": False},
    }


def test_options_before_the_subcommand_are_kept():
    assert overrides_from(parse("-i", "eth7", "serve"))["interface"] == "eth7"
    assert overrides_from(parse("-i", "eth7"))["interface"] == "eth7"


def test_bad_boot_file_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="--boot-file 'pxelinux.0': expected KIND=FILE_OR_URL"):
        overrides_from(parse("serve", "--boot-file", "pxelinux.0"))


def test_config_errors_exit_2_with_the_key(tmp_path, capsys):
    f = tmp_path / "c.toml"
    f.write_text('[dhcp]\nrange = "10.0.0.50-10.0.0.10"\n')
    assert main(["serve", "--config", str(f), "--interface", "eth0"]) == 2
    assert "pxetui: dhcp.range: 10.0.0.50-10.0.0.10 ends before it starts" in capsys.readouterr().err


def test_version_and_help_everywhere(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("pxetui ")
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"serve", "doctor", "lab", "import", "menu", "watch", "analyze"} <= set(subs.choices)
    for name in subs.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: pxetui " + name in capsys.readouterr().out


def test_ui_without_an_engine_needs_an_interface_before_starting_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("pxetui.cliconfig.DEFAULT_CONFIG", tmp_path / "absent.toml")
    monkeypatch.delenv("PXETUI_CONFIG", raising=False)

    def run_ui(*args: object, **kw: object) -> int:
        raise AssertionError("the UI must not open without an engine")

    assert main(["--state-dir", str(tmp_path / "st")], run_ui=run_ui) == 2
    err = capsys.readouterr().err
    assert "pxetui: interface: not set; pass --interface IFACE (usable: " in err
    assert main(["--state-dir", str(tmp_path / "st"), "-i", "pxt-no-such-if"], run_ui=run_ui) == 2
    assert "pxetui: interface pxt-no-such-if: does not exist; usable interfaces: " in capsys.readouterr().err
    assert not (tmp_path / "st" / "engine.log").exists()  # no engine was started
