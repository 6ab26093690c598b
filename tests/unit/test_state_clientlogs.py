"""The UI's tail of each client's log lines (EngineState.client_logs, docs/CLIENT-LOGS.md):
bounded per client and in clients, history rather than state (the one fold's `folded()` and
`snapshot()` are what they were), and a UI that attaches late, fed the supervisor's replay,
holds the same tail as one that watched live."""

from __future__ import annotations

from pxetui.config import Config
from pxetui.events import ClientLog, ClientUpdate, Log
from pxetui.state import CLIENT_LOG_CLIENTS, CLIENT_LOG_LINES, EngineState
from pxetui.supervisor import CLIENT_LOG_HISTORY, Supervisor

MAC = "52:54:00:00:00:01"


def line(i: int, mac: str | None = MAC) -> ClientLog:
    return ClientLog(ts=100.0 + i, service="logs", mac=mac, ip="10.99.0.50", app="anna",
                     message=f"line {i}")


def tail(s: EngineState, mac: str = MAC) -> list[str]:
    return [ev.message for _, ev in s.client_logs.get(mac, ())]


def test_a_clients_tail_is_bounded_and_in_order():
    s = EngineState()
    for i in range(CLIENT_LOG_LINES + 50):
        s.apply(line(i))
    assert tail(s) == [f"line {i}" for i in range(50, CLIENT_LOG_LINES + 50)]
    seqs = [seq for seq, _ in s.client_logs[MAC]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert s.take_dirty()["clientlogs"] == {MAC}


def test_the_clients_that_logged_last_are_kept():
    s = EngineState()
    macs = [f"52:54:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(CLIENT_LOG_CLIENTS + 10)]
    for i, m in enumerate(macs):
        s.apply(line(i, m))
    s.apply(line(999, macs[0]))  # logs again: the most recent, kept
    assert len(s.client_logs) == CLIENT_LOG_CLIENTS
    assert macs[0] in s.client_logs and macs[1] not in s.client_logs
    assert list(s.client_logs)[-1] == macs[0]


def test_an_unattributed_line_and_a_fold_without_a_log_keep_no_tail():
    s = EngineState()
    s.apply(line(1, mac=None))
    assert s.client_logs == {} and len(s.logs) == 1  # it is in the Logs screen's ring
    quiet = EngineState(log_size=0, track_dirty=False)  # the supervisor's, analyze's
    quiet.apply(line(2))
    assert quiet.client_logs == {}


def test_lines_are_history_not_state():
    base = [ClientUpdate(ts=50.0, service="tracker", mac=MAC, stage="installer", full=True)]
    with_lines, without = EngineState(), EngineState()
    for ev in base:
        with_lines.apply(ev)
        without.apply(ev)
    for i in range(20):
        with_lines.apply(line(i))
    assert not any(isinstance(e, ClientLog) for e in with_lines.snapshot())
    without.now = with_lines.now  # only the latest event time moved
    assert with_lines.folded() == without.folded()


def test_a_late_ui_holds_the_tail_a_live_ui_holds(tmp_path):
    cfg = Config.from_dict({"interface": "eth0", "state_dir": str(tmp_path / "st")})
    sup = Supervisor(cfg, names=[])
    live = EngineState()
    n = CLIENT_LOG_HISTORY + 300
    for i in range(n):
        for ev in (line(i), Log(ts=100.0 + i, service="engine", message=f"log {i}")):
            sup.publish(ev)
            live.apply(ev)
    late = EngineState()
    for ev in sup.replay():
        late.apply(ev)
    keep = min(CLIENT_LOG_LINES, CLIENT_LOG_HISTORY)
    assert tail(late) == tail(live)[-keep:] == [f"line {i}" for i in range(n - keep, n)]
