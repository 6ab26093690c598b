"""The engine's log stays bounded: it rotates by size (log.max_bytes, log.backups), a restart
appends to it, and the UI and the lab hand the engine a rotating log instead of a raw stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pxetui.config import ConfigError, LogConfig
from pxetui.logfile import RotatingLog, log_to_file, numbered, shift, tail


def lines_of(paths: list[Path]) -> list[str]:
    return [line for p in paths for line in p.read_text().splitlines()]


def test_the_log_rotates_at_its_size_cap_and_keeps_the_newest_lines(tmp_path):
    p = tmp_path / "engine.log"
    log = RotatingLog(p, max_bytes=200, backups=2)
    for i in range(60):
        print(f"line {i:03d} of the engine log", file=log, flush=True)  # 29 bytes a line
    log.close()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["engine.log", "engine.log.1", "engine.log.2"]
    assert all(x.stat().st_size <= 200 for x in tmp_path.iterdir())
    kept = [ln for ln in lines_of([numbered(p, 2), numbered(p, 1), p]) if ln.startswith("line")]
    assert kept == [f"line {i:03d} of the engine log" for i in range(60 - len(kept), 60)] and len(kept) >= 8
    assert p.read_text().startswith("(log rotated at log.max_bytes = 200: the earlier lines are in engine.log.1)")
    assert log.rotations >= 8


def test_without_backups_the_log_starts_afresh(tmp_path):
    p = tmp_path / "engine.log"
    with RotatingLog(p, max_bytes=100, backups=0) as log:
        for i in range(20):
            log.write(f"line {i}\n")
    assert [x.name for x in tmp_path.iterdir()] == ["engine.log"] and p.stat().st_size <= 100
    assert "dropped (log.backups = 0)" in p.read_text() and "line 19" in p.read_text()


def test_a_restart_appends_and_counts_what_is_there(tmp_path):
    p = tmp_path / "engine.log"
    p.write_text("x" * 150 + "\n")
    with RotatingLog(p, max_bytes=200, backups=1) as log:
        log.write("y" * 60 + "\n")  # 151 + 61 > 200: the earlier start's lines move to .1
    assert numbered(p, 1).read_text() == "x" * 150 + "\n" and p.read_text().endswith("y" * 60 + "\n")


def test_a_link_planted_where_the_log_goes_is_refused_with_the_key_named(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "engine.log").symlink_to(victim)
    with pytest.raises(ConfigError, match=r"log\.file: "):
        log_to_file(LogConfig(file=str(tmp_path / "engine.log")))
    assert victim.read_text() == "precious"


def test_leftovers_past_the_count_are_deleted_and_links_moved_not_followed(tmp_path):
    p = tmp_path / "engine.log"
    for name in ("engine.log", "engine.log.1", "engine.log.7", "engine.log.x", "other.log"):
        (tmp_path / name).write_text(name)
    shift(p, 2)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["engine.log.1", "engine.log.x", "other.log"]
    assert numbered(p, 1).read_text() == "engine.log"


def test_the_engine_writes_its_stderr_log_lines_and_a_traceback_into_the_rotating_file(tmp_path):
    log = tmp_path / "engine.log"
    code = (
        "import sys\n"
        "from pxetui.config import LogConfig\n"
        "from pxetui.logfile import log_to_file\n"
        f"log_to_file(LogConfig(file={str(log)!r}, max_bytes=4096, backups=1))\n"
        "for i in range(400):\n"
        "    print(f'event {i:04d} ' + 'x' * 40, file=sys.stderr)\n"
        "raise RuntimeError('the engine crashed')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr == ""  # nothing on the real stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["engine.log", "engine.log.1"]
    assert all(x.stat().st_size <= 4096 for x in tmp_path.iterdir())
    text = log.read_text()
    assert "event 0399" in text and "RuntimeError: the engine crashed" in text  # flushed at exit


def test_serve_takes_log_file_as_the_log_file_key():
    from pxetui.cli import build_parser
    from pxetui.cliconfig import overrides_from

    args = build_parser().parse_args(["serve", "--interface", "eth1", "--log-file", "/var/log/pxetui.log"])
    assert overrides_from(args)["log"] == {"file": "/var/log/pxetui.log"}


def test_the_ui_starts_the_engine_with_a_rotating_log_and_a_fresh_start_up_capture(tmp_path, monkeypatch):
    from pxetui import cli
    from pxetui.config import Config

    started: list[tuple[list[str], object]] = []

    class Popen:
        def __init__(self, cmd: list[str], stdout: object, **kw: object) -> None:
            started.append((cmd, stdout))

    monkeypatch.setattr(cli.subprocess, "Popen", Popen)
    monkeypatch.setattr(sys, "argv", ["pxetui", "--interface", "eth1"])
    cfg = Config.from_dict({"interface": "eth1", "state_dir": str(tmp_path)})
    (tmp_path / "engine.stderr").write_text("the last start's crash\n")
    cli.start_engine(cli.build_parser().parse_args(["--interface", "eth1"]), cfg)
    ((cmd, out),) = started
    assert cmd[cmd.index("--log-file") + 1] == str(tmp_path / "engine.log")
    assert cmd[1:4] == ["-P", "-m", "pxetui"]  # never the working directory's modules
    assert isinstance(out, int)  # the fd handed to the child, closed here once it is started
    with pytest.raises(OSError):
        os.fstat(out)
    assert (tmp_path / "engine.stderr").read_text() == ""  # rewritten at each start: bounded
    assert (tmp_path / "engine.stderr").stat().st_mode & 0o777 == 0o600
    (tmp_path / "engine.log").write_text("pxetui: cannot start: UDP port 67 is held by dnsmasq\n")
    assert tail(cli.engine_logs(cfg), 8) == ["pxetui: cannot start: UDP port 67 is held by dnsmasq"]


@pytest.mark.parametrize("raw,problem", [
    ({"log": {"max_bytes": 100}}, "log.max_bytes: 100 is outside 4096..1099511627776 bytes"),
    ({"log": {"backups": -1}}, "log.backups: -1 is outside 0..1000 files"),
    ({"capture": {"max_bytes": 1000}}, "capture.max_bytes: 1000 is outside 1048576..1099511627776 bytes"),
    ({"capture": {"files": 0}}, "capture.files: 0 is outside 1..1000 files"),
    ({"tracker": {"max_clients": 0}}, "tracker.max_clients: 0 is outside 1..10000000 clients"),
    ({"tracker": {"idle_expiry": 1}}, "tracker.idle_expiry: 1.0 is outside 60..31622400 seconds"),
    ({"tracker": {"history_days": 0}}, "tracker.history_days: 0.0 is outside 0.01..3660 days"),
    ({"tracker": {"max_files_per_client": 0}}, "tracker.max_files_per_client: 0 is outside 1..100000 files"),
    ({"tracker": {"max_events_per_client": 5}}, "tracker.max_events_per_client: 5 is outside 10..100000 events"),
    ({"tracker": {"max_boots_per_client": 0}}, "tracker.max_boots_per_client: 0 is outside 1..100000 boots"),
    ({"tracker": {"max_addresses_per_client": 0}},
     "tracker.max_addresses_per_client: 0 is outside 1..1024 addresses"),
    ({"log": {"max_bytes": "big"}}, "log.max_bytes: expected an integer, got 'big'"),
])
def test_every_bound_is_checked_with_its_key(raw, problem):
    from pxetui.config import Config

    with pytest.raises(ConfigError) as exc:
        Config.from_dict(raw)
    assert exc.value.problems == [problem]
    assert Config.from_dict({}).log == LogConfig()  # and the defaults pass


@pytest.mark.parametrize("plant", ["symlink", "hardlink", "fifo"])
def test_the_start_up_capture_is_never_written_through_something_planted(tmp_path: Path, plant: str) -> None:
    """The state directory belongs to the service user; root rewrites engine.stderr there at
    each UI start: a link to a file of root's, or a FIFO, is refused and left as it was."""
    from pxetui.logfile import open_emptied

    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    stray = tmp_path / "engine.stderr"
    if plant == "symlink":
        stray.symlink_to(victim)
    elif plant == "hardlink":
        os.link(victim, stray)
    else:
        os.mkfifo(stray)
    with pytest.raises(OSError, match="engine.stderr"):
        open_emptied(stray)
    assert victim.read_text() == "root:secret\n"
