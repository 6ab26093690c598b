"""`pxetui export`: the plan follows pxetui's boot policy, each renderer writes the lines that
carry it, and each real server accepts what it is given (dnsmasq --test, kea-dhcp4 -t,
dhcpd -t -cf)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from netns import require_tool

from pxetui.config import Config
from pxetui.export import dnsmasq, isc, kea
from pxetui.export.plan import Plan, build
from pxetui.loaders import find_loaders

SERVER = "10.66.0.1"


def make_cfg(tmp_path: Path, **dhcp: Any) -> Config:
    raw: dict[str, Any] = {
        "interface": "eth9", "state_dir": str(tmp_path / "state"),
        "tftp": {"root": str(tmp_path / "tftp")},
        "dhcp": {"range": "10.66.0.100-10.66.0.199", "router": "10.66.0.254", "dns": ["10.66.0.53"],
                 "domain": "lab.example", "boot_files": {"uefi64": "snponly.efi"},
                 "reservations": [{"mac": "52:54:00:00:00:02", "ip": "10.66.0.20", "hostname": "web1",
                                   "boot_file": "undionly.kpxe"}],
                 "relay_pools": [{"subnet": "10.67.0.0/24", "range": "10.67.0.50-10.67.0.99",
                                  "router": "10.67.0.1"}],
                 "deny": ["52:54:00:00:00:0d"], **dhcp},
    }
    cfg = Config.from_dict(raw)
    cfg.server_ip, cfg.netmask = SERVER, "255.255.255.0"  # what resolve() takes from the interface
    return cfg


OVERRIDES = {"52:54:00:00:00:03": {"boot_file": "http://10.66.0.1/special.ipxe", "boot_once": "local",
                                   "entry": "memtest"}}


def plan_of(tmp_path: Path, mode: str = "full", **dhcp: Any) -> Plan:
    return build(make_cfg(tmp_path, **dhcp), OVERRIDES, mode, loaders=find_loaders(), isos=["debian"])


def test_plan_asks_the_boot_policy(tmp_path: Path) -> None:
    p = plan_of(tmp_path)
    files = {b.kind: b.file for b in p.boots}
    assert files["uefi64"] == "snponly.efi"  # configured
    assert files["ipxe"] == f"http://{SERVER}/boot.ipxe"  # iPXE gets the script, not iPXE again
    assert files["bios"] == "pxelinux.0"  # the policy's default when the root holds none
    assert p.boot("uefi64") is not None and p.boot("uefi64").arch_codes == (7, 9)  # type: ignore[union-attr]
    hosts = {h.mac: h for h in p.hosts}
    web1 = hosts["52:54:00:00:00:02"]
    assert web1.files["bios"] == "undionly.kpxe" and "ipxe" not in web1.files  # no chain loop
    over = hosts["52:54:00:00:00:03"]
    assert over.files["ipxe"] == "http://10.66.0.1/special.ipxe" and over.source == "per-MAC override"
    assert any("boot once" in n for n in over.notes) and any("memtest" in n for n in over.notes)
    assert [str(x.network) for x in p.pools] == ["10.66.0.0/24", "10.67.0.0/24"]
    assert any("/iso/debian/" in n for n in p.notes)


def test_proxy_mode_chains_ipxe_for_uefi_and_hands_out_no_addresses(tmp_path: Path) -> None:
    p = plan_of(tmp_path, "proxy", boot_files={})
    assert p.pools == []
    assert p.boot("uefi64").file == "ipxe.efi"  # type: ignore[union-attr]  # docs/FIELD-NOTES.md: GRUB under proxy


def test_dnsmasq_lines(tmp_path: Path) -> None:
    text = dnsmasq.render(plan_of(tmp_path))
    lines = set(text.splitlines())
    for line in ("port=0  # no DNS: pxetui serves none", "interface=eth9", "enable-tftp",
                 f"tftp-root={tmp_path / 'tftp'}", "dhcp-userclass=set:ipxe,iPXE", "dhcp-match=set:ipxe,175",
                 "dhcp-range=set:pool0,10.66.0.100,10.66.0.199,255.255.255.0,3600",
                 "dhcp-option=tag:pool0,option:router,10.66.0.254",
                 "dhcp-range=set:pool1,10.67.0.50,10.67.0.99,255.255.255.0,3600",
                 "dhcp-host=52:54:00:00:00:0d,ignore  # dhcp.deny",
                 "dhcp-host=52:54:00:00:00:02,10.66.0.20,web1  # reservation",
                 "dhcp-match=set:uefi64,option:client-arch,7  # x64 UEFI",
                 "dhcp-match=set:uefi64,option:client-arch,9  # x64 UEFI",
                 f"dhcp-boot=tag:!host-ipxe,tag:ipxe,tag:!http,http://{SERVER}/boot.ipxe",
                 "dhcp-boot=tag:host1,tag:ipxe,tag:!http,http://10.66.0.1/special.ipxe",
                 f"dhcp-boot=tag:!host-uefi64,tag:uefi64,tag:!ipxe,tag:!http,snponly.efi,,{SERVER}",
                 f"dhcp-boot=tag:host0,tag:bios,tag:!ipxe,tag:!http,undionly.kpxe,,{SERVER}",
                 "dhcp-option-force=tag:http,option:vendor-class,HTTPClient"):
        assert line in lines, f"{line!r} missing from:\n{text}"
    # the reserved host's iPXE binary is never a boot line for iPXE itself
    assert not any(ln.startswith("dhcp-boot=tag:host0,tag:ipxe") for ln in lines)
    assert re.search(r"^#   cp /\S+/snponly\.efi \S+/tftp/snponly\.efi$", text, re.M) or \
        find_loaders().path("snponly.efi") is None


def test_dnsmasq_admits_as_pxetui_does(tmp_path: Path) -> None:
    text = dnsmasq.render(plan_of(tmp_path, allow_unknown=False, allow=["52:54:00:00:00:04"]))
    lines = text.splitlines()
    assert "dhcp-ignore=tag:!known  # dhcp.allow_unknown = false" in lines
    assert "dhcp-host=52:54:00:00:00:04  # allow list" in lines
    assert not [ln for ln in lines if ln.startswith("dhcp-host=52:54:00:00:00:03")]  # override only


def test_dnsmasq_proxy_uses_pxe_service(tmp_path: Path) -> None:
    text = dnsmasq.render(plan_of(tmp_path, "proxy", boot_files={}))
    assert "dhcp-range=10.66.0.0,proxy,255.255.255.0" in text
    assert f'pxe-service=tag:!host-bios,tag:!ipxe,x86PC,"pxetui bios",pxelinux.0,{SERVER}' in text
    # iPXE (a PXE client too) gets the script URL as its boot service: no chain loop
    assert f'pxe-service=tag:!host-ipxe,tag:ipxe,X86-64_EFI,"pxetui ipxe",http://{SERVER}/boot.ipxe' in text
    assert f'pxe-service=tag:!host-uefi64,tag:!ipxe,X86-64_EFI,"pxetui uefi64",ipxe.efi,{SERVER}' in text
    assert "dhcp-host=52:54:00:00:00:02,10.66.0.20" not in text  # no addresses in proxy mode


def kea_json(text: str) -> dict[str, Any]:
    return json.loads("\n".join(ln for ln in text.splitlines() if not ln.startswith("//")))


def test_kea_classes_and_subnets(tmp_path: Path) -> None:
    conf = kea_json(kea.render(plan_of(tmp_path, allow_unknown=False)))["Dhcp4"]
    classes = {c["name"]: c for c in conf["client-classes"]}
    assert "52:54:00:00:00:0d" in classes["DROP"]["test"]
    assert classes["pxetui-ipxe"]["boot-file-name"] == f"http://{SERVER}/boot.ipxe"
    assert "option[175].exists" in classes["pxetui-ipxe"]["test"]
    assert classes["pxetui-uefi64"]["boot-file-name"] == "snponly.efi"
    assert classes["pxetui-uefi64"]["next-server"] == SERVER
    assert "option[93].hex == 0x0007" in classes["pxetui-uefi64"]["test"]
    assert "not (option[77].hex == 'iPXE'" in classes["pxetui-uefi64"]["test"]
    names = list(classes)
    assert names.index("pxetui-host0-bios") < names.index("pxetui-bios")  # per host first
    main, relayed = conf["subnet4"]
    assert main["pools"] == [{"pool": "10.66.0.100 - 10.66.0.199", "client-class": "pxetui-allowed"}]
    # a reservation admits a MAC, a per-MAC override alone does not (BootPolicy.admitted)
    assert "'52:54:00:00:00:02'" in classes["pxetui-allowed"]["test"]
    assert "'52:54:00:00:00:03'" not in classes["pxetui-allowed"]["test"]
    assert {"hw-address": "52:54:00:00:00:02", "ip-address": "10.66.0.20", "hostname": "web1",
            "comment": "its iPXE binary is not handed to iPXE itself (no chain loop)"} in main["reservations"]
    assert relayed["subnet"] == "10.67.0.0/24" and relayed["option-data"][0]["data"] == "10.67.0.1"


def test_isc_chain(tmp_path: Path) -> None:
    text = isc.render(plan_of(tmp_path))
    assert "option pxetui-arch code 93 = unsigned integer 16;  # RFC 4578" in text
    chain = text[text.index("# boot files"):]
    # HTTP, then iPXE, then firmware: the policy's order
    assert chain.index('"HTTPClient"') < chain.index("ipxe.bus-id") < chain.index("pxetui-arch = 7")
    assert f'  filename "http://{SERVER}/boot.ipxe";' in text
    assert "host pxetui-deny0 {  # dhcp.deny\n  hardware ethernet 52:54:00:00:00:0d;\n  deny booting;" in text
    assert "  fixed-address 10.66.0.20;" in text
    assert "subnet 10.67.0.0 netmask 255.255.255.0 {\n  option routers 10.67.0.1;\n  range 10.67.0.50 10.67.0.99;" in text


def check(cmd: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{cmd} refused {path}:\n{r.stdout}\n{r.stderr}\n{path.read_text()}"
    return r


@pytest.mark.parametrize("mode", ["full", "proxy"])
def test_dnsmasq_accepts_the_export(tmp_path: Path, mode: str) -> None:
    require_tool("/usr/sbin/dnsmasq", package="dnsmasq-base")
    out = tmp_path / "dnsmasq.conf"
    out.write_text(dnsmasq.render(plan_of(tmp_path, mode)))
    r = check(["/usr/sbin/dnsmasq", "--test", f"--conf-file={out}"], out)
    assert "syntax check OK" in r.stderr


def test_dnsmasq_check_can_fail(tmp_path: Path) -> None:
    require_tool("/usr/sbin/dnsmasq", package="dnsmasq-base")
    out = tmp_path / "dnsmasq.conf"
    out.write_text(dnsmasq.render(plan_of(tmp_path)) + "dhcp-boot=tag:\n")
    assert subprocess.run(["/usr/sbin/dnsmasq", "--test", f"--conf-file={out}"],
                          capture_output=True, timeout=60).returncode != 0


@pytest.mark.parametrize("mode", ["full", "proxy"])
def test_kea_accepts_the_export(tmp_path: Path, mode: str) -> None:
    require_tool("kea-dhcp4", package="kea-dhcp4-server")
    out = tmp_path / "kea-dhcp4.conf"
    plan = plan_of(tmp_path, mode, allow_unknown=False)
    plan.interface = "lo"  # kea-dhcp4 -t checks that the interface exists
    out.write_text(kea.render(plan))
    check(["kea-dhcp4", "-t", str(out)], out)
    bad = tmp_path / "bad.conf"
    bad.write_text(out.read_text().replace("option[175].exists", "option[175].exits"))
    assert subprocess.run(["kea-dhcp4", "-t", str(bad)], capture_output=True, timeout=60).returncode != 0


@pytest.mark.parametrize("mode", ["full", "proxy"])
def test_isc_dhcpd_accepts_the_export(tmp_path: Path, mode: str) -> None:
    require_tool("dhcpd", package="isc-dhcp-server")
    out = tmp_path / "dhcpd.conf"
    out.write_text(isc.render(plan_of(tmp_path, mode, allow_unknown=False)))
    check(["dhcpd", "-t", "-cf", str(out)], out)
    bad = tmp_path / "bad.conf"
    bad.write_text(out.read_text().replace("unsigned integer 16", "unsigned integer 17"))
    assert subprocess.run(["dhcpd", "-t", "-cf", str(bad)], capture_output=True, timeout=60).returncode != 0


def test_export_command_names_a_missing_interface(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pxetui import cli, exitcodes

    out = tmp_path / "out.conf"
    code = cli.main(["export", "--format", "kea", "--interface", "nosuch0", "--state-dir", str(tmp_path),
                     "-o", str(out)])
    assert code == exitcodes.USAGE
    assert "nosuch0" in capsys.readouterr().err
    assert not out.exists()  # nothing written


def test_export_command_refuses_an_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    from pxetui import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["export", "--format", "bind"])
    assert exc.value.code == 2 and "invalid choice: 'bind'" in capsys.readouterr().err
