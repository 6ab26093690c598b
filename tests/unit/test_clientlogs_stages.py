"""Install stages from the Debian installer's log lines: the pure mapping, the tracker's
timeline and the diagnosis (pxetui/clientlogs/stages.py, pxetui/tracker.py, pxetui/diagnosis.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pxetui import diagnosis
from pxetui.clientlogs import stages as install
from pxetui.clientlogs.syslog import parse
from pxetui.events import ClientUpdate
from pxetui.stages import FINAL, INSTALL_STAGES, PROGRESS, STAGES
from pxetui.tracker import Tracker

MAC, IP = "52:54:00:12:34:56", "10.99.0.100"
# What busybox syslogd in a bookworm netboot installer forwards to log_host (no host name).
INSTALL = [
    b"<14>Dec  7 09:00:12 netcfg[310]: INFO: Starting netcfg v.1.187",
    b"<14>Dec  7 09:00:15 main-menu[240]: INFO: Menu item 'network-preseed' selected",
    b"<13>Dec  7 09:00:15 preseed: successfully loaded preseed file from http://10.99.0.1/seed/deb12/preseed.cfg",
    b"<14>Dec  7 09:00:20 main-menu[240]: INFO: Menu item 'choose-mirror' selected",
    b"<14>Dec  7 09:00:30 main-menu[240]: INFO: Menu item 'partman-base' selected",
    b"<13>Dec  7 09:00:31 partman:   No matching physical volumes found",
    b"<14>Dec  7 09:01:30 main-menu[240]: INFO: Menu item 'bootstrap-base' selected",
    b"<13>Dec  7 09:01:31 debootstrap: /usr/sbin/debootstrap --components=main --debian-installer",
    b"<14>Dec  7 09:05:00 main-menu[240]: INFO: Menu item 'pkgsel' selected",
    b"<14>Dec  7 09:07:00 main-menu[240]: INFO: Menu item 'grub-installer' selected",
    b"<14>Dec  7 09:08:00 main-menu[240]: INFO: Menu item 'finish-install' selected",
]
SEED_403 = [
    b"<14>Dec  7 09:00:15 main-menu[240]: INFO: Menu item 'network-preseed' selected",
    b"<11>Dec  7 09:00:15 main-menu[240]: (process:3456): wget: server returned error: HTTP/1.1 403 Forbidden",
    b"<12>Dec  7 09:00:16 main-menu[240]: WARNING **: Configuring 'network-preseed' failed with error code 1",
]
NO_MIRROR = [
    b"<14>Dec  7 09:00:20 main-menu[240]: INFO: Menu item 'choose-mirror' selected",
    b"<11>Dec  7 09:00:22 main-menu[240]: (process:4000): wget: bad address 'deb.debian.org'",
    b"<12>Dec  7 09:00:22 choose-mirror[4000]: WARNING **: mirror does not support the specified release (bookworm)",
]


def lines(raw: list[bytes]) -> list[tuple[str, str]]:
    return [(m.app, m.message) for m in map(parse, raw)]


def client_log(raw: bytes, ts: float, ip: str = IP, mac: str | None = MAC) -> dict[str, Any]:
    m = parse(raw)
    return {"type": "ClientLog", "ts": ts, "service": "logs", "mac": mac, "ip": ip, "source": "syslog",
            "app": m.app, "message": m.message, "severity": m.severity, "facility": m.facility}


def feed_all(tr: Tracker, raw: list[bytes], t0: float = 100.0) -> list[ClientUpdate]:
    out = []
    for i, r in enumerate(raw):
        out += [e for e in tr.feed(client_log(r, t0 + i)) if isinstance(e, ClientUpdate)]
    return out


def test_stage_order_is_one_list_with_installs_before_booted() -> None:
    assert STAGES[STAGES.index("rootfs") + 1:STAGES.index("booted")] == INSTALL_STAGES
    assert list(PROGRESS) == list(STAGES) and set(FINAL) <= set(STAGES)
    every = {r.stage for r in install.replay(lines(INSTALL + SEED_403 + NO_MIRROR))}
    assert every - {""} <= set(INSTALL_STAGES)


def test_a_whole_install_reads_as_its_stages() -> None:
    readings = install.replay(lines(INSTALL))
    assert [r.stage for r in readings] == ["installer", "network", "seed", "network", "partitioning",
                                           "partitioning", "installing", "installer", "installing",
                                           "installing", "installed"]
    assert not any(r.failure for r in readings)
    assert readings[2].detail == "preseed loaded from http://10.99.0.1/seed/deb12/preseed.cfg"


def test_a_wget_error_is_the_preseed_s_or_the_mirror_s_by_its_step() -> None:
    seed = [r.failure for r in install.replay(lines(SEED_403)) if r.failure]
    assert seed[0] == ("installer could not fetch its preseed: main-menu: (process:3456): "
                       "wget: server returned error: HTTP/1.1 403 Forbidden")
    mirror = [r.failure for r in install.replay(lines(NO_MIRROR)) if r.failure]
    assert mirror[0] == "no mirror reachable: main-menu: (process:4000): wget: bad address 'deb.debian.org'"
    assert mirror[1].startswith("no mirror reachable: choose-mirror: WARNING **: mirror does not support")


def test_other_families_lines_are_not_stages() -> None:
    r = install.read("anaconda", "Starting installer, one moment...", "")
    assert r == install.Reading(step="")
    assert install.read("kernel", "Linux version 6.1.0", "x").stage == ""


def test_tracker_timeline_reaches_installed_and_stops_watching() -> None:
    tr = Tracker(stuck_seconds=90)
    ups = feed_all(tr, INSTALL)
    last = ups[-1]
    assert [s["stage"] for s in last.stages] == list(INSTALL_STAGES)
    assert last.stage == "installed" and last.progress == PROGRESS["installed"]
    assert last.last_event == "log: main-menu: INFO: Menu item 'finish-install' selected"
    tr.tick(100.0 + 90 * 20)  # long after: an installed client is not "stuck"
    assert not tr.clients[MAC].stuck


def test_a_silent_installer_is_stuck_only_after_ten_times_stuck_seconds() -> None:
    tr = Tracker(stuck_seconds=90)
    feed_all(tr, INSTALL[:5])  # partitioning, last line at t=104
    tr.tick(104.0 + 200)
    assert not tr.clients[MAC].stuck  # formatting a disk can be silent for minutes
    out = [e for e in tr.tick(104.0 + 901) if isinstance(e, ClientUpdate)]
    assert out and out[-1].stage == "stuck" and "partitioning" in out[-1].diagnosis


def test_tracker_keeps_the_order_when_a_late_line_names_an_earlier_step() -> None:
    tr = Tracker()
    feed_all(tr, INSTALL[:5])  # up to partitioning
    ups = feed_all(tr, [b"<14>Dec  7 09:00:40 main-menu[240]: INFO: Menu item 'choose-mirror' selected"], 200.0)
    assert [s["stage"] for s in ups[-1].stages] == ["installer", "network", "seed", "partitioning"]


def test_tracker_diagnoses_a_preseed_403_at_once() -> None:
    tr = Tracker()
    feed_all(tr, SEED_403)
    out = [e for e in tr.tick(110.0) if isinstance(e, ClientUpdate)]
    assert out and out[-1].stage == "failed"
    assert out[-1].diagnosis == ("installer could not fetch its preseed: main-menu: (process:3456): "
                                 "wget: server returned error: HTTP/1.1 403 Forbidden")


def test_diagnosis_names_an_unreachable_mirror() -> None:
    events = [{**client_log(r, 10.0 + i), "type": "ClientLog"} for i, r in enumerate(NO_MIRROR)]
    found = diagnosis.definite(events)
    assert found and found[0].message.startswith("no mirror reachable: main-menu: (process:4000): wget: bad address")


def test_chatter_is_the_last_line_but_not_kept_for_diagnosis() -> None:
    tr = Tracker(config=None)
    feed_all(tr, INSTALL[:2])
    c = tr.clients[MAC]
    kept = len(c.events)
    for i in range(500):
        tr.feed(client_log(b"<15>Dec  7 09:00:20 netcfg[310]: DEBUG: chatter %d" % i, 200.0 + i))
    assert len(c.events) == kept and c.last_event == "log: netcfg: DEBUG: chatter 499"


def test_a_machine_that_only_logs_is_no_client_and_a_known_one_shows_its_last_line() -> None:
    tr = Tracker()
    assert tr.feed(client_log(b"<13>Dec  7 09:00:00 sshd[1]: Accepted publickey", 1.0)) == []
    assert MAC not in tr.clients
    feed_all(tr, INSTALL[:1])
    tr.feed(client_log(b"<13>Dec  7 09:00:00 anaconda[1]: Starting installer", 5.0))
    assert tr.clients[MAC].last_event == "log: anaconda: Starting installer"


def test_install_step_survives_a_tracker_restart(tmp_path: Path) -> None:
    tr = Tracker(db_path=tmp_path / "t.db")
    feed_all(tr, SEED_403[:1])
    tr.tick(101.0)
    tr.close()
    again = Tracker(db_path=tmp_path / "t.db")
    assert again.clients[MAC].install_step == "network-preseed"
    feed_all(again, SEED_403[1:2], 300.0)
    ups = [e for e in again.tick(302.0) if isinstance(e, ClientUpdate)]
    assert ups and ups[-1].diagnosis.startswith("installer could not fetch its preseed")
    again.close()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["main-menu", "preseed", "partman-auto", "netcfg", "anaconda", ""]), st.text(max_size=120),
       st.sampled_from(["", "network-preseed", "choose-mirror", "pkgsel"]))
def test_read_is_total_and_names_only_known_stages(app: str, message: str, step: str) -> None:
    r = install.read(app, message, step)
    assert r.stage in ("", *INSTALL_STAGES)
    assert not r.failure or r.failure.endswith(f"{app}: {message}")  # the failing line, whole
