"""What the storm's checks read from a UI's fold (pxetui.lab.storm.tracker_view): a client is
booted when the tracker has it at the initrd stage with its loader, kernel and initrd finished
and no verdict; anything short of that is named, so the e2e storm test and bench/storm fail
on it rather than pass."""

from __future__ import annotations

from typing import Any

from pxetui.events import ClientUpdate
from pxetui.lab.network import LabNetwork
from pxetui.lab.storm import client_macs, tracker_view
from pxetui.state import EngineState

FILES = (("bootloader", "pxelinux.0"), ("kernel", "lab/vmlinuz"), ("initrd", "lab/initrd.gz"))


def update(mac: str, stage: str, reached: list[str], done: int = 3, diagnosis: str = "") -> ClientUpdate:
    rows: list[dict[str, Any]] = [{"id": f"{mac}-{i}", "kind": kind, "path": path,
                                   "status": "done" if i < done else "running"}
                                  for i, (kind, path) in enumerate(FILES)]
    return ClientUpdate(service="tracker", mac=mac, stage=stage, diagnosis=diagnosis, full=True,
                        stages=[{"stage": s, "ts": float(i)} for i, s in enumerate(reached)], files=rows)


BOOTED = ["discover", "offer", "ack", "bootloader", "kernel", "initrd"]


def test_macs_are_the_storm_clients_own():
    assert client_macs(3) == ["52:54:00:aa:00:00", "52:54:00:aa:00:01", "52:54:00:aa:00:02"]
    assert client_macs(1000)[-1] == "52:54:00:aa:03:e7"


def test_every_client_at_initrd_with_its_files_done_is_booted():
    macs = client_macs(3)
    state = EngineState()
    for mac in macs:
        state.apply(update(mac, "initrd", BOOTED))
    view = tracker_view(state, macs)
    assert view.all_booted and view.clients == 3 and view.stages == {"initrd": 3}


def test_what_falls_short_is_named():
    a, b, c, d, e = client_macs(5)
    state = EngineState()
    state.apply(update(a, "initrd", BOOTED))
    # the tracker's verdict after tracker.stuck_seconds without news: `stage` says "stuck",
    # `stages` still where the boot got to
    state.apply(update(b, "stuck", BOOTED, diagnosis="Nothing heard for 90 s after the initrd download"))
    state.apply(update(c, "failed", BOOTED[:4], done=0, diagnosis="pxelinux.0: file not found"))
    state.apply(update(d, "initrd", BOOTED, done=2))  # the initrd still running
    view = tracker_view(state, [a, b, c, d, e])
    assert not view.all_booted
    assert (view.clients, view.missing, view.stuck, view.failed) == (4, [e], [b], [c])
    assert set(view.diagnosed) == {b, c}
    assert view.without_initrd == [c] and view.unfinished == [c, d]
    assert view.stages == {"bootloader": 1, "initrd": 3}  # by the furthest stage, in boot order


def test_the_lab_subnet_holds_a_storm_of_1000():
    assert LabNetwork().dhcp_range() == ("10.77.0.10", "10.77.0.250")  # the /24 the lab always had
    start, end = LabNetwork(prefix=21).dhcp_range()
    assert (start, end) == ("10.77.0.10", "10.77.7.250")
    first, last = (int.from_bytes(bytes(int(x) for x in ip.split(".")), "big") for ip in (start, end))
    assert last - first + 1 >= 2 * 1000
