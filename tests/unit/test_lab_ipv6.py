"""`pxetui lab --ipv6`: what the lab asks of the engine and the VM for a boot over IPv6 only."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from netns import require, require_tool

from pxetui import exitcodes
from pxetui.commands import lab as lab_cmd
from pxetui.lab import qemu
from pxetui.lab.network import SERVER_IP6, LabError
from pxetui.lab.run import Lab, LabOptions


def _flag_values(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_pxe6_engine_serves_both_families(tmp_path: Path) -> None:
    # The server stays dual stack; the VM's port drops IPv4 (LabNetwork.ipv4_off, e2e).
    lab = Lab(LabOptions(state_dir=tmp_path, firmware="uefi", ipv6="pxe"))
    cmd = lab.serve_command()
    assert _flag_values(cmd, "--dhcp") == ["full"] and "--ipv6" in cmd and "--range" in cmd
    assert "uefi64=grubx64.efi" in _flag_values(cmd, "--boot-file")
    assert lab.expected_services() == {"tftp", "http", "dhcp", "dhcp6"}
    assert lab.net.server_ip6 == SERVER_IP6


def test_http6_boots_ipxe_by_url(tmp_path: Path) -> None:
    # No http64 override: the policy's default (iPXE by URL) serves HTTP boot over IPv6 too;
    # only the VM's switches differ from the PXEv6 lab.
    http = Lab(LabOptions(state_dir=tmp_path / "h", firmware="uefi", ipv6="http"))
    pxe = Lab(LabOptions(state_dir=tmp_path / "h", firmware="uefi", ipv6="pxe"))
    assert not [f for f in _flag_values(http.serve_command(), "--boot-file") if f.startswith("http64=")]
    assert http.serve_command() == pxe.serve_command()


def test_ipv4_lab_unchanged(tmp_path: Path) -> None:
    lab = Lab(LabOptions(state_dir=tmp_path, firmware="uefi"))
    cmd = lab.serve_command()
    assert _flag_values(cmd, "--dhcp") == ["full"] and "--ipv6" not in cmd and "--range" in cmd
    assert lab.expected_services() == {"tftp", "http", "dhcp"} and lab.net.server_ip6 == ""


@pytest.mark.parametrize("kw", [{"firmware": "bios"}, {"firmware": "uefi", "dhcp": "proxy"},
                                {"firmware": "secureboot"}])
def test_ipv6_lab_refuses_what_it_cannot_boot(tmp_path: Path, kw: dict[str, str]) -> None:
    with pytest.raises(LabError, match="IPv6 lab boots OVMF"):
        LabOptions(state_dir=tmp_path, ipv6="pxe", **kw)


def test_ipv6_lab_refuses_an_unknown_boot(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="'tftp'"):
        LabOptions(state_dir=tmp_path, firmware="uefi", ipv6="tftp")


def test_ovmf_fw_cfg_switches() -> None:
    pxe, http = qemu.ovmf_ipv6_args("pxe"), qemu.ovmf_ipv6_args("http")
    assert pxe == ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n"]
    assert http == pxe + ["-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
    with pytest.raises(LabError):
        qemu.ovmf_ipv6_args("https")


def test_vm_command_carries_the_switches(tmp_path: Path) -> None:
    require_tool("qemu-system-x86_64", package="qemu-system-x86")
    require((qemu.OVMF_DIR / "OVMF_CODE_4M.fd").exists(), "needs OVMF (Debian package ovmf)")
    lab = Lab(LabOptions(state_dir=tmp_path, firmware="uefi", ipv6="pxe", vm_args=["-S"]))
    spec = qemu.VmSpec(firmware="uefi", extra_args=[*qemu.ovmf_ipv6_args("pxe"), *lab.opts.vm_args])
    cmd = qemu.command(spec, tmp_path / "vm", tmp_path / "console.log")
    assert cmd[-3:] == ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n", "-S"]


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    lab_cmd.register(p.add_subparsers())
    return p.parse_args(["lab", *argv])


def test_cli_ipv6_is_ovmf_pxe6(tmp_path: Path) -> None:
    opts = lab_cmd.options_from(_args("--ipv6", "--state-dir", str(tmp_path)))
    assert (opts.firmware, opts.ipv6, opts.dhcp, opts.content) == ("uefi", "pxe", "full", "busybox")


@pytest.mark.parametrize("extra", [["--proxy"], ["--secure-boot"], ["--ipxe"], ["--arch", "arm64"]])
def test_cli_ipv6_refuses_what_it_cannot_boot(extra: list[str], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(lab_cmd.os, "geteuid", lambda: 0)  # the usage check comes after root's
    args = _args("--ipv6", "--headless", *extra)
    assert lab_cmd.cmd_lab(args) == exitcodes.USAGE
    err = capsys.readouterr().err
    assert "--ipv6" in err or "arm64" in err, err
