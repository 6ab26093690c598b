"""Transfers nobody will report the end of are closed by the one fold (pxetui/state.py): when
the client boots or starts over, when a later transfer of the same client ends, when the
service serving them goes away, when the UI loses the engine. The replay carries the closure,
and a later event of a closed transfer reopens it. (That a late UI and the live fold agree on
random feeds is tests/unit/test_fold.py's property.)"""

from __future__ import annotations

from pxetui.events import (
    ClientUpdate,
    Event,
    ServiceState,
    TransferClosed,
    TransferFailed,
    TransferFinished,
    TransferProgress,
    TransferStarted,
)
from pxetui.state import EngineState

MAC, IP = "52:54:00:77:00:10", "10.77.0.10"


def fold(*events: Event) -> EngineState:
    s = EngineState()
    for e in events:
        s.apply(e)
    return s


def start(tid: str, ts: float, path: str = "lab/initrd.gz", service: str = "tftp",
          protocol: str = "tftp", mac: str | None = None, ip: str | None = IP,
          ours: bool = False) -> TransferStarted:
    """A transfer; from capture, another server's (`ours`: capture's copy of one of ours)."""
    return TransferStarted(ts=ts, service=service, mac=mac, ip=ip, transfer_id=tid,
                           protocol=protocol, path=path, size=1000, ours=ours or service != "capture")


def booted(ts: float, boot: int = 1) -> ClientUpdate:
    return ClientUpdate(ts=ts + 0.5, mac=MAC, ip=IP, stage="booted", boot=boot,
                        stages=[{"stage": "discover", "ts": 1.0}, {"stage": "booted", "ts": ts}])


def status(s: EngineState) -> dict[str, tuple[str, str]]:
    return {t.transfer_id: (t.status, t.reason) for t in s.transfers.values()}


def test_the_lab_case_a_wire_copy_of_our_transfer_is_not_a_row_of_its_own():
    # pxetui lab, first run: the capture saw the initrd's request but not its last ACK; our
    # TFTP service reported its own copy done; the system booted and called back. The wire's
    # copy of our own transfer is not listed at all (it was a second row, left running).
    s = fold(start("wire-17", 40.66, service="capture", mac=MAC, ours=True),
             start("own-12", 40.68), TransferProgress(ts=41.0, transfer_id="wire-17", bytes_done=500),
             TransferFinished(ts=41.57, transfer_id="own-12", bytes_done=1000),
             booted(52.11))
    assert status(s) == {"own-12": ("done", "")}
    assert s.live_transfers() == 0 and s.counts["transfers.tftp.done"] == 1


def test_another_servers_transfer_never_ended_is_closed_when_the_client_moved_on():
    s = fold(start("wire-17", 40.66, service="capture", mac=MAC),
             start("wire-18", 41.0, service="capture", mac=MAC, path="lab/vmlinuz"),
             TransferFinished(ts=41.57, transfer_id="wire-18", bytes_done=1000), booted(52.11))
    assert status(s)["wire-17"] == ("closed", "the client moved on to lab/vmlinuz")
    assert s.live_transfers() == 0


def test_booting_closes_what_went_quiet_before_and_nothing_after():
    s = fold(start("a", 10, mac=MAC, ip=None, protocol="http", service="http"),
             start("b", 60, path="after", ip=IP), booted(50))
    assert status(s) == {"a": ("closed", "the client booted"), "b": ("running", "")}
    assert s.live_transfers() == 1
    s.apply(booted(70))  # still booted: no new transition, "b" stays
    assert status(s)["b"] == ("running", "")


def test_a_new_boot_closes_the_old_boots_transfers():
    s = fold(ClientUpdate(ts=5, mac=MAC, ip=IP, stage="kernel", boot=1,
                          stages=[{"stage": "discover", "ts": 1.0}]),
             start("k", 6, path="lab/vmlinuz"),
             ClientUpdate(ts=30, mac=MAC, ip=IP, stage="discover", boot=2,
                          stages=[{"stage": "discover", "ts": 29.0}]))
    assert status(s)["k"] == ("closed", "the client started a new boot")


def test_a_later_transfer_that_ended_closes_an_earlier_quiet_one_of_that_client_only():
    s = fold(start("old", 10, path="lab/vmlinuz"),
             start("other", 10, ip="10.77.0.99"),  # another client: untouched
             start("next", 20, path="lab/initrd.gz"),
             TransferFinished(ts=21, transfer_id="next", bytes_done=1000))
    assert status(s)["old"] == ("closed", "the client moved on to lab/initrd.gz")
    assert status(s)["other"] == ("running", "")
    # A config lookup that found nothing ends an exchange too.
    s.apply(start("quiet", 30, path="menu.c32"))
    s.apply(TransferFailed(ts=31, ip=IP, transfer_id="probe", path="pxelinux.cfg/0A",
                           reason="file not found", status=1))
    assert status(s)["quiet"][0] == "closed"
    assert s.transfers["probe"].expected_miss and s.transfers["probe"].status == "failed"


def test_still_active_or_side_by_side_http_is_not_closed():
    s = fold(start("busy", 10), TransferProgress(ts=25, transfer_id="busy", bytes_done=500),
             start("next", 20, path="x"), TransferFinished(ts=26, transfer_id="next"))
    assert status(s)["busy"] == ("running", "")  # it moved after the later one began
    s = fold(start("iso", 10, protocol="http", service="http"),
             start("seed", 20, path="seed/user-data", protocol="http", service="http"),
             TransferFinished(ts=21, transfer_id="seed", protocol="http"))
    assert status(s)["iso"] == ("running", "")  # HTTP clients fetch side by side


def test_a_closed_transfer_that_speaks_again_is_reopened_and_can_finish():
    s = fold(start("old", 10), start("next", 20, path="x"), TransferFinished(ts=21, transfer_id="next"))
    assert status(s)["old"][0] == "closed"
    s.apply(TransferProgress(ts=22, transfer_id="old", bytes_done=900))
    assert status(s)["old"] == ("running", "") and s.live_transfers() == 1
    s.apply(TransferFinished(ts=23, transfer_id="old", bytes_done=1000))
    assert status(s)["old"] == ("done", "")


def test_a_service_that_went_away_closes_its_transfers_only():
    s = fold(start("t", 10), start("h", 10, protocol="http", service="http", ip="10.77.0.11"),
             ServiceState(ts=12, service="tftp", state="failed", reason="exited with code 1"))
    assert status(s) == {"t": ("closed", "the tftp service failed"), "h": ("running", "")}


def test_the_ui_losing_the_engine_closes_every_running_transfer():
    s = fold(start("t", 10), start("h", 10, protocol="http", service="http"))
    s.disconnected("Lost the engine: it went away.")
    assert {st for st, _ in status(s).values()} == {"closed"}
    assert s.transfers["t"].reason == "the engine went away"
    assert s.live_transfers() == 0 and not s.connected


def test_the_replay_carries_a_closure():
    live = fold(start("wire", 10, service="capture", mac=MAC), booted(20))
    replay = live.snapshot()
    assert [e.reason for e in replay if isinstance(e, TransferClosed)] == ["the client booted"]
    late = fold(*replay)
    assert status(late) == status(live) == {"wire": ("closed", "the client booted")}
    assert late.transfers["wire"].service == "capture"
    # a late UI's log says it in words (pxetui/logfmt.py), not as a dict
    assert "tftp transfer wire closed: the client booted" in [r.text for r in late.logs]


def test_a_failure_only_the_wire_saw_is_a_row_a_copy_of_ours_is_not():
    # The booted system's callback was cut before our HTTP server read it: only capture saw it,
    # so its failure is listed; a copy of a request our server did start is not, failed or not.
    cut = start("wire-1", 10, service="capture", mac=MAC, protocol="http", ours=True,
                path="/callback/0123/booted")
    served = [start("wire-2", 20, service="capture", mac=MAC, ours=True, path="/lab/initrd.gz"),
              start("own-2", 20.01, service="tftp", path="lab/initrd.gz")]
    live = fold(cut, *served,
                TransferFailed(ts=12, service="capture", transfer_id="wire-1", reason="connection closed"),
                TransferFailed(ts=25, service="capture", transfer_id="wire-2", reason="no last ACK seen"),
                TransferFailed(ts=25.1, service="tftp", transfer_id="own-2", reason="timed out"))
    assert status(live) == {"wire-1": ("failed", "connection closed"), "own-2": ("failed", "timed out")}
    late = fold(*live.snapshot())
    assert status(late) == status(live) and late.transfers["wire-1"].service == "capture"


def test_a_ui_attached_while_a_copy_is_in_flight_folds_its_end_as_the_live_one():
    # Capture's copy of our transfer is never a row, so it is in no row of the replay: the
    # replay carries it as a copy, or a late UI would make a row of its progress (found by
    # test_fold's property). Whether a failed copy is listed is decided from the rows (our
    # services' own, which the replay carries), not from anything only the live fold kept.
    def both(before: list[Event], after: list[Event], keep: int = 300) -> tuple[EngineState, EngineState]:
        live = EngineState(finished_keep=keep)
        for e in before:
            live.apply(e)
        late = EngineState(finished_keep=keep)
        for e in live.snapshot():
            late.apply(e)
        for e in after:
            live.apply(e)
            late.apply(e)
        return live, late

    copy = start("wire-1", 10, service="capture", ours=True)
    live, late = both([copy], [TransferProgress(ts=11, service="capture", transfer_id="wire-1", bytes_done=10),
                               TransferFinished(ts=12, service="capture", transfer_id="wire-1", bytes_done=1000)])
    assert status(live) == status(late) == {}
    # A copy of a transfer our service served, whose row left the finished history (keep=1)
    # before the copy failed: both folds list the failure, the same way.
    live, late = both([copy, start("own-1", 10.01), TransferFinished(ts=11, transfer_id="own-1", bytes_done=1000),
                       start("own-2", 12, path="other"), TransferFinished(ts=13, transfer_id="own-2", bytes_done=9)],
                      [TransferFailed(ts=40, service="capture", transfer_id="wire-1", reason="no last ACK seen")],
                      keep=1)
    assert status(live) == status(late) == {"wire-1": ("failed", "no last ACK seen")}
    # ... and while its row is still there, neither does.
    live, late = both([copy, start("own-1", 10.01)],
                      [TransferFailed(ts=40, service="capture", transfer_id="wire-1", reason="no last ACK seen")])
    assert status(live) == status(late) == {"own-1": ("running", "")}
