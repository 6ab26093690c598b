"""The lab VM's keeper (pxetui/lab/keeper.py) without QEMU: a stand-in VM is a short Python
process that writes to the serial console file and exits, started and ended by us. What the UI
is told (off, and why) and booting again are checked; the real VM is in tests/e2e/test_lab_cli.py."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pxetui.lab.keeper import Keeper
from pxetui.lab.network import LabError, Namespace

MARKER = "PXETUI-LAB-BOOTED"


class StandInVm:
    """What the keeper uses of pxetui.lab.qemu.Vm, around a real process of our own."""

    def __init__(self, console: Path, script: str) -> None:
        console.write_bytes(b"")  # as Vm.start: each boot's console starts empty
        self.log = console.with_name("qemu.log")
        self.log.write_text("qemu-system-x86_64: could not open the tap\n")
        self.proc = subprocess.Popen([sys.executable, "-c", script, str(console)],
                                     start_new_session=True)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        Namespace.stop(self.proc, timeout=3)

    def exit_reason(self) -> str:
        return f"exit code {self.proc.returncode}: {self.log.read_text().strip()}"


@dataclass
class Opts:
    mac: str = "52:54:00:77:00:10"


@dataclass
class StandInLab:
    """What the keeper uses of pxetui.lab.run.Lab: its console, marker, VM and boot()."""

    console: Path
    scripts: list[str]  # one per boot, in order
    marker: str = MARKER
    opts: Opts = field(default_factory=Opts)
    vm: StandInVm | None = None
    vms: list[StandInVm] = field(default_factory=list)

    def boot(self) -> StandInVm:
        self.vm = StandInVm(self.console, self.scripts[len(self.vms)])
        self.vms.append(self.vm)
        return self.vm

    def stop_all(self) -> None:
        for vm in self.vms:
            vm.stop()


def prints(text: str, then_exit: int | None = 0) -> str:
    """A stand-in VM that writes `text` to its console and exits (None: runs for 30 s)."""
    end = f"sys.exit({then_exit})" if then_exit is not None else "time.sleep(30)"
    return f"import sys, time\nopen(sys.argv[1], 'a').write({text!r})\n{end}\n"


def until(cond, seconds: float = 10.0):  # noqa: ANN001, ANN201 - a test helper
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds}s")


@pytest.fixture
def make(tmp_path: Path):  # noqa: ANN201
    made: list[tuple[Keeper, StandInLab]] = []

    def build(*scripts: str, timeout: float = 30.0) -> tuple[Keeper, StandInLab]:
        lab = StandInLab(tmp_path / "console.log", list(scripts))
        keeper = Keeper(lab, timeout, poll=0.05).start()  # type: ignore[arg-type]
        made.append((keeper, lab))
        return keeper, lab

    yield build
    for keeper, lab in made:
        keeper.close()
        lab.stop_all()


def test_a_vm_that_booted_then_powered_off_is_off_after_booting_and_boots_again(make) -> None:
    keeper, lab = make(prints(f"SeaBIOS\n{MARKER}\ncalled back\n"), prints("iPXE\n", None))
    first = keeper.status()
    assert (first.state, first.boots) == ("running", 1)
    off = until(lambda: (s := keeper.status()).state == "off" and s)
    assert off.booted and off.exit_code == 0
    assert off.detail == "powered off after its system booted"
    assert off.mac == "52:54:00:77:00:10"

    again = keeper.boot()  # the UI's ctrl+r: the lab's own start, a new process
    assert (again.state, again.boots, again.booted, again.detail) == ("running", 2, False, "")
    assert len(lab.vms) == 2 and lab.vms[1].running and not lab.vms[0].running
    with pytest.raises(LabError, match="already running"):
        keeper.boot()
    time.sleep(0.3)  # watched a few times: the old console's marker is not this boot's
    assert keeper.status().booted is False


def test_a_vm_that_never_came_up_says_so_and_a_qemu_failure_is_quoted(make) -> None:
    keeper, _ = make(prints("no network devices found\n"), prints("", then_exit=1))
    off = until(lambda: (s := keeper.status()).state == "off" and s)
    assert not off.booted
    assert off.detail.startswith("powered off before its system came up")
    keeper.boot()
    failed = until(lambda: (s := keeper.status()).state == "off" and s)
    assert failed.exit_code == 1
    assert "QEMU exited" in failed.detail and "could not open the tap" in failed.detail


def test_a_marker_split_across_two_looks_is_found(make) -> None:
    half = len(MARKER) // 2
    script = (f"import sys, time\nf = open(sys.argv[1], 'a')\nf.write({MARKER[:half]!r}); f.flush()\n"
              f"time.sleep(0.4)\nf.write({MARKER[half:]!r} + '\\n'); f.flush()\ntime.sleep(30)\n")
    keeper, _ = make(script)
    assert until(lambda: keeper.status().booted)
    assert keeper.status().state == "running"


def test_a_boot_past_its_time_limit_is_stopped_and_a_killed_vm_named(make) -> None:
    keeper, lab = make(prints("waiting for DHCP\n", None), prints(f"{MARKER}\n", None), timeout=0.6)
    off = until(lambda: (s := keeper.status()).state == "off" and s)
    assert off.detail.startswith("was stopped: its system did not come up within 1 s")
    assert not lab.vms[0].running  # stopped by the keeper, not left behind
    keeper.boot()
    assert until(lambda: keeper.status().booted)  # up in time: the limit no longer applies
    time.sleep(0.7)
    assert keeper.status().state == "running"
    lab.vms[1].proc.kill()
    killed = until(lambda: (s := keeper.status()).state == "off" and s)
    assert killed.detail == "was killed (signal 9)"


def test_no_boot_once_the_lab_is_closing(make) -> None:
    keeper, lab = make(prints(f"{MARKER}\n"))
    until(lambda: keeper.status().state == "off")
    keeper.close()
    with pytest.raises(LabError, match="closing"):
        keeper.boot()
    assert len(lab.vms) == 1
