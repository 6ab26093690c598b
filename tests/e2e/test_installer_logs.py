"""Client logs end to end (docs/CLIENT-LOGS.md): real firmware in QEMU (TCG) booting from pxetui
with its `logs` service on (`--logs`).

- The Debian installer (netboot tree) with a preseed stored for its entry: the kernel line
  carries `auto=true priority=critical url=<seed URL with this boot's token>` and
  `log_host=`/`log_port=`; the installer fetches the preseed from pxetui, runs its early
  command (a line on the serial console), and its syslog lines arrive under the VM's MAC,
  putting the client through installer -> network -> seed on the tracker's timeline.
- The lab's busybox kernel with `netconsole=` from the menu: its /init loads Debian's
  netconsole module with that value, and the kernel's console lines arrive under the VM's MAC.

One boot each, stopped as soon as that is proven. Wall times go to PXETUI_E2E_TIMES.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from labkit import TIMES, Booted, require_lab
from netns import require

from pxetui import store
from pxetui.lab import content
from pxetui.lab.network import LabError
from pxetui.lab.run import Lab, LabOptions
from pxetui.menus import seeds

pytestmark = [pytest.mark.qemu, pytest.mark.root, pytest.mark.timeout(300)]

PRESEED_RAN = "PXETUI-PRESEED-RAN"
# The early command writes to the console itself: d-i runs it under log-output, whose stdout
# goes to syslog. The sleep holds the installer at network-preseed, so its next steps
# (choose-mirror: the lab has no mirror) cannot race the assertions; the VM is stopped anyway.
PRESEED = (f"d-i preseed/early_command string echo {PRESEED_RAN} > /dev/console; sleep 600\n"
           "d-i debian-installer/locale string en_US.UTF-8\n"
           "d-i keyboard-configuration/xkb-keymap select us\n").encode()
SERVER = "10.77.0.1"
INSTALLER_BOOT_TIMEOUT = 240.0  # VM start to the "seed" stage; 92-116 s measured under TCG
BUSYBOX_BOOT_TIMEOUT = 120.0


class SeededInstallerLab(Lab):
    """The lab's installer content with a preseed stored for its entry (before the engine
    starts: the state database is then the services')."""

    def prepare_content(self) -> None:
        super().prepare_content()
        conn = store.connect(self.engine_state / "pxetui.db")
        try:
            seeds.set_seed(conn, content.PRESEED, PRESEED, entry=content.INSTALLER_ENTRY)
        finally:
            conn.close()


def _record(name: str, seconds: float, wall: float) -> None:
    with TIMES.open("a") as fh:
        fh.write(json.dumps({"test": name, "boot_s": round(seconds, 1), "wall_s": round(wall, 1)}) + "\n")
    print(f"{name}: proven after {seconds:.1f}s, lab wall {wall:.1f}s")


def _stages(lab: Lab, mac: str) -> list[str]:
    assert lab.events is not None
    ups = lab.events.of("ClientUpdate", mac=mac)
    return [s["stage"] for s in ups[-1]["stages"]] if ups else []


def _wait_logs_service(lab: Lab) -> None:
    ev = lab.events
    assert ev is not None
    ev.wait_until(lambda: ev.of("ServiceState", service="logs", state="running"), 30, "running logs service")


def _phase_times(events: list[dict[str, Any]], mac: str) -> dict[str, float]:
    """Seconds from the client's first stage to each later one (for the report in the log)."""
    ups = [e for e in events if e.get("type") == "ClientUpdate" and e.get("mac") == mac]
    stages = ups[-1]["stages"] if ups else []
    t0 = stages[0]["ts"] if stages else 0.0
    return {s["stage"]: round(s["ts"] - t0, 1) for s in stages}


def test_debian_installer_preseed_and_syslog(tmp_path: Path) -> None:
    require_lab("bios")
    # 1 GiB: below ~780 MB d-i enters low memory mode, whose note waits for a key even in
    # automatic mode at priority critical (seen on the serial console at 512 MB).
    # A router and a name server in the DHCP answer: without them netcfg asks "Continue without
    # a default route?" and for name server addresses, critical questions asked before any
    # preseed can answer them, and the install stops there (both seen on the serial console).
    opts = LabOptions(state_dir=tmp_path, content="debian-installer", memory_mb=1024,
                      extra_serve_args=["--logs", "--router", SERVER, "--dns", SERVER])
    t0 = time.monotonic()
    with SeededInstallerLab(opts) as lab:
        _wait_logs_service(lab)
        vm = lab.boot()
        assert lab.events is not None
        try:
            lab.events.wait_until(lambda: "seed" in _stages(lab, opts.mac), INSTALLER_BOOT_TIMEOUT,
                                  f"'seed' stage for {opts.mac}")
        except LabError as exc:
            raise LabError(f"{exc}; stages {_stages(lab, opts.mac)}\n--- console tail ---\n"
                           f"{vm.console_text()[-2000:]}") from None
        seconds = time.monotonic() - vm.started
        vm.wait_for(PRESEED_RAN, 30)  # the early command runs right after the preseed is loaded
        b = Booted(seconds=seconds, console=vm.console_text(), events=lab.events.snapshot(), mac=opts.mac)
    _record("installer-logs", seconds, time.monotonic() - t0)
    print("installer-logs phases:", _phase_times(b.events, b.mac))

    # The kernel line pxetui rendered: d-i's automatic mode with the seed URL and this boot's
    # token, and where to log (the kernel prints its command line on the serial console).
    cmdline = next((ln for ln in b.console.splitlines() if "Command line:" in ln), "")
    url = re.search(rf"url=(http://{re.escape(SERVER)}/seed/([0-9a-f]{{32}})/{content.INSTALLER_ENTRY}/"
                    rf"{re.escape(content.PRESEED)})", cmdline)
    assert url, f"no tokened seed URL on the kernel line: {cmdline!r}"
    assert "auto=true" in cmdline and "priority=critical" in cmdline, cmdline
    assert f"log_host={SERVER} log_port=514" in cmdline, cmdline
    head, _, tail = cmdline.partition(" --- ")
    assert "url=" in head and "log_host=" in head and "url=" not in tail, cmdline  # before d-i's ---

    # The installer fetched its preseed from pxetui over HTTP, with the token (the transfer is
    # named without it); nothing was refused on the way.
    seed_path = f"seed/{content.INSTALLER_ENTRY}/{content.PRESEED}"
    got = [e for e in b.of("TransferFinished", protocol="http", service="http") if e["path"].lstrip("/") == seed_path]
    assert got and got[0]["mac"] == b.mac and got[0]["bytes_done"] == len(PRESEED), got
    assert [e for e in b.of("TransferStarted", protocol="http") if e["path"].lstrip("/") == seed_path]
    refused = [e for e in b.of("Alert", service="http") if e.get("key", "").split(":")[0] in
               ("untokened", "badtoken", "misattributed")]
    assert not refused, refused

    # The preseed took effect: its early command wrote to the serial console.
    assert PRESEED_RAN in b.console

    # Its syslog lines, under the VM's MAC, include preseed's own report of the tokened URL.
    lines = b.of("ClientLog", mac=b.mac, source="syslog")
    assert len(lines) >= 3, lines
    loaded = [e for e in lines if e["message"].startswith("successfully loaded preseed file from ")]
    assert loaded and loaded[0]["message"].endswith(url.group(1)), [e["message"] for e in lines][-20:]
    assert not b.of("ClientLog", mac=None), "a line from the VM was not attributed"

    # The timeline: the boot, then the installer's stages in order, no diagnosis.
    stages = b.assert_timeline("menu", "kernel", "initrd", "installer", "network", "seed", booted=False)
    assert stages.index("installer") < stages.index("network") < stages.index("seed"), stages


def test_busybox_kernel_netconsole(tmp_path: Path) -> None:
    require_lab("bios")
    version = content.kernel_version()
    require(bool(content.netconsole_modules(version)),
            f"needs netconsole.ko for the lab kernel {version} (Debian package linux-image-{version})")
    opts = LabOptions(state_dir=tmp_path, content="busybox", extra_serve_args=["--logs"])
    t0 = time.monotonic()
    with Lab(opts) as lab:
        _wait_logs_service(lab)
        vm = lab.boot()
        assert lab.events is not None
        vm.wait_for(content.POWEROFF, BUSYBOX_BOOT_TIMEOUT + content.CALLBACK_WAIT)
        seconds = time.monotonic() - vm.started
        ev = lab.events
        ev.wait_until(lambda: ev.of("ClientUpdate", mac=opts.mac, stage="booted"), 30,
                      f"'booted' stage for {opts.mac}")
        b = Booted(seconds=seconds, console=vm.console_text(), events=ev.snapshot(), mac=opts.mac)
    _record("busybox-netconsole", seconds, time.monotonic() - t0)

    # /init loaded the module with the menu's value: the client's own address, pxetui's port.
    assert content.NETCONSOLE in b.console, b.console[-2000:]
    lines = b.of("ClientLog", mac=b.mac, source="netconsole")
    # (netconsole sends the kernel's buffer from boot on; lines carry printk's timestamp)
    marker = [e for e in lines if content.NETCONSOLE in e["message"]]
    assert marker, [e["message"] for e in lines]
    value = marker[0]["message"].split()[-1]
    addr = b.console.split("PXETUI-LAB-ADDRESS ", 1)[1].split("/", 1)[0]
    assert value == f"@{addr}/,6666@{SERVER}/", value
    assert all(e["app"] == "kernel" for e in lines), lines
    assert not b.of("ClientLog", mac=None), "a line from the VM was not attributed"
    # The busybox system still called back; netconsole lines are not install stages.
    assert content.CALLBACK_OK in b.console
    b.assert_timeline("menu")
