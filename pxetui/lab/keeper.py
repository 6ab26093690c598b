"""The lab's VM kept under the UI: whether it runs, whether its system came up, booting it again.

Under the UI, `pxetui lab` stays up when the VM powers off (the busybox system powers off
once it has called back): the engine keeps serving, and the UI says in plain words what
happened and offers to boot the VM again. `Keeper.status()` is the VM's state as a typed
`LabVm` event (the UI polls it: the lab process, not the engine, owns the VM);
`Keeper.boot()` starts a new VM with the lab's own QEMU start (`Lab.boot`). A boot that shows
no sign of life (the content's marker on the serial console) within the time limit is stopped.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

from pxetui.events import LabVm
from pxetui.lab.network import LabError
from pxetui.lab.qemu import Vm

POLL_SECONDS = 0.5
READ_LIMIT = 1 << 20  # console bytes looked at per poll: a flooding firmware cannot stall us


class _Options(Protocol):
    mac: str


class Lab(Protocol):
    """What the keeper uses of pxetui.lab.run.Lab (which imports this module)."""

    opts: _Options
    console: Path
    vm: Vm | None

    @property
    def marker(self) -> str: ...

    def boot(self) -> Vm: ...


class Keeper:
    """Boots the lab's VM and watches it from a thread; `close()` stops watching (the lab
    itself is closed by its owner)."""

    def __init__(self, lab: Lab, timeout: float, poll: float = POLL_SECONDS) -> None:
        self.lab, self.timeout, self.poll = lab, timeout, poll
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._boots = 0
        self._booted = False
        self._off: tuple[int | None, str] | None = None  # exit code, why: set once it is off
        self._deadline = 0.0
        self._seen = 0  # console bytes already searched for the marker
        self._tail = b""  # the last bytes searched: a marker split across two reads

    # -- the UI's side ------------------------------------------------------------------
    def start(self) -> Keeper:
        self.boot()
        self._thread = threading.Thread(target=self._watch, name="lab-vm", daemon=True)
        self._thread.start()
        return self

    def status(self) -> LabVm:
        with self._lock:
            return self._status()

    def boot(self) -> LabVm:
        """Start the VM (again); LabError when it is running or the lab is closing."""
        with self._lock:
            if self._stop.is_set():
                raise LabError("the lab is closing")
            vm = self.lab.vm
            if vm is not None and vm.running:
                raise LabError("the lab VM is already running")
            if vm is not None:
                vm.stop()  # reaps the old QEMU
            self.lab.boot()  # a new QEMU on the lab's tap; the console file starts empty
            self._boots += 1
            self._booted, self._off = False, None
            self._deadline = time.monotonic() + self.timeout
            self._seen, self._tail = 0, b""
            return self._status()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- watching -----------------------------------------------------------------------
    def _status(self) -> LabVm:
        code, why = self._off if self._off is not None else (None, "")
        return LabVm(service="lab", mac=self.lab.opts.mac, state="running" if self._off is None else "off",
                     boots=self._boots, booted=self._booted, exit_code=code, detail=why)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            with self._lock:
                self.check()

    def check(self) -> None:
        """One look at the VM (the lock held): did its system come up, has it stopped, is
        its time up."""
        vm = self.lab.vm
        if vm is None or self._off is not None:
            return
        running = vm.running  # before the read: an exited VM's console is then complete
        if not self._booted:
            self._booted = self._marker_seen()
        if not running:
            self._off = (vm.proc.returncode if vm.proc else None, self._why_off())
        elif not self._booted and time.monotonic() > self._deadline:
            vm.stop()
            self._off = (None, f"was stopped: its system did not come up within {self.timeout:.0f} s "
                               "(its serial console shows how far it got)")

    def _marker_seen(self) -> bool:
        marker = self.lab.marker.encode()
        try:
            with self.lab.console.open("rb") as fh:
                fh.seek(self._seen)
                data = fh.read(READ_LIMIT)
        except OSError:
            return False
        self._seen += len(data)
        found = marker in self._tail + data
        self._tail = (self._tail + data)[-len(marker):]
        return found

    def _why_off(self) -> str:
        vm = self.lab.vm
        code = vm.proc.returncode if vm is not None and vm.proc is not None else None
        if code is not None and code < 0:
            return f"was killed (signal {-code})"
        if code:  # QEMU itself failed: its own words are in its log
            return f"stopped: QEMU exited ({vm.exit_reason() if vm is not None else code})"
        if self._booted:
            return "powered off after its system booted"
        return "powered off before its system came up (its serial console shows how far it got)"
