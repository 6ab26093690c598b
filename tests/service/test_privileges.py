"""Least privilege and process hygiene (issue 13 points 1 and 7; docs/SECURITY.md).

Who the services run as, as deployed (`pxetui serve` in a namespace, read from /proc), what the
state directory looks like, that no service outlives a `kill -9`ed engine, and that the
long-running commands stop on SIGINT even when their parent ignored it. Plus the pieces:
`readable_by` against the kernel's own answer, and `service_identity`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import REPO, Netns, require, require_root, require_tool, wait_for
from services import collect

from pxetui import privileges
from pxetui.config import Config
from pxetui.control import is_live, socket_path
from pxetui.privileges import Identity

SERVICES = ("dhcp", "tftp", "http", "capture")


# -- service_identity ---------------------------------------------------------------------

def some_user() -> pwd.struct_passwd:
    """An existing user that is neither root nor the fallback."""
    return next(p for p in pwd.getpwall() if p.pw_uid not in (0, 65534) and p.pw_name != "nobody")


def test_service_identity_is_the_configured_user(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    pw = some_user()
    cfg = Config.from_dict({"security": {"user": pw.pw_name}})
    assert privileges.service_identity(cfg) == Identity(pw.pw_name, pw.pw_uid, pw.pw_gid)


def test_service_identity_falls_back_to_nobody(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    nobody = pwd.getpwnam("nobody")
    ident = privileges.service_identity(Config.from_dict({"security": {"user": "no-such-user-x"}}))
    assert ident is not None and (ident.name, ident.uid) == ("nobody", nobody.pw_uid)
    import grp
    want = next((g.gr_gid for g in grp.getgrall() if g.gr_name in ("nogroup", "nobody")), nobody.pw_gid)
    assert ident.gid == want


def test_service_identity_without_any_user_is_an_error(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(privileges, "FALLBACK_USER", "no-such-fallback-x")
    with pytest.raises(privileges.PrivilegeError, match="no-such-user-x.*no-such-fallback-x"):
        privileges.service_identity(Config.from_dict({"security": {"user": "no-such-user-x"}}))


def test_nothing_to_drop_when_not_root_or_told_root(monkeypatch, caplog):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert privileges.service_identity(Config()) is None
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with caplog.at_level(logging.WARNING, logger="pxetui.privileges"):
        assert privileges.service_identity(Config.from_dict({"security": {"user": "root"}})) is None
    assert "keep every privilege" in caplog.text


def test_security_user_is_checked():
    with pytest.raises(Exception, match="security.user: 'a b' is not a user name"):
        Config.from_dict({"security": {"user": "a b"}})


# -- readable_by, checked against the kernel ------------------------------------------------

def kernel_says(path: Path, ident: Identity) -> bool:
    """Open `path` for reading in a child that really became `ident`."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setresgid(ident.gid, ident.gid, ident.gid)
            os.setresuid(ident.uid, ident.uid, ident.uid)
            fd = os.open(path, os.O_RDONLY)
            if os.path.isdir(path):
                os.listdir(fd)
            os._exit(0)
        except OSError:
            os._exit(1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) in (0, 1)
    return os.waitstatus_to_exitcode(status) == 0


def set_acl(path: Path, entries: list[tuple[int, int, int]]) -> None:
    import struct
    raw = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, q) for t, p, q in entries)
    os.setxattr(path, "system.posix_acl_access", raw)


def test_readable_by_matches_the_kernel(tmp_path):
    require_root()
    me = Identity("probe", 43210, 43210)
    other_group = 43211
    top = tmp_path / "top"
    top.mkdir()
    sub = top / "sub"
    sub.mkdir()
    f = sub / "f.iso"
    f.write_bytes(b"x")
    cases = 0
    mismatches = []
    # Every combination of: who owns the file, its mode, and the directory's search bit for that class.
    for owner in ((me.uid, other_group), (0, me.gid), (0, other_group)):
        for fmode in (0o600, 0o640, 0o604, 0o000, 0o044):
            for dmode in (0o700, 0o710, 0o701, 0o711):
                os.chown(f, *owner)
                os.chmod(f, fmode)
                os.chown(sub, 0, me.gid)
                os.chmod(sub, dmode)
                got, want = privileges.readable_by(f, me), kernel_says(f, me)
                cases += 1
                if got != want:
                    mismatches.append((owner, oct(fmode), oct(dmode), got, want))
    assert cases == 60 and mismatches == []
    # A directory itself needs r and x.
    os.chown(sub, 0, 0)
    os.chmod(sub, 0o701)
    assert privileges.readable_by(sub, me) is False and kernel_says(sub, me) is False
    os.chmod(sub, 0o705)
    assert privileges.readable_by(sub, me) is True and kernel_says(sub, me) is True


def test_readable_by_reads_posix_acls(tmp_path):
    """`setfacl -m u:pxetui:r` is one of the fixes `pxetui import` names: it must count."""
    require_root()
    me = Identity("probe", 43220, 43220)
    f = tmp_path / "f.iso"
    f.write_bytes(b"x")
    os.chmod(f, 0o600)
    A = privileges
    try:
        set_acl(f, [(A.ACL_USER_OBJ, 6, 0xFFFFFFFF), (A.ACL_USER, 4, me.uid), (A.ACL_GROUP_OBJ, 0, 0xFFFFFFFF),
                    (A.ACL_MASK, 4, 0xFFFFFFFF), (A.ACL_OTHER, 0, 0xFFFFFFFF)])
    except OSError as exc:
        require(False, f"{tmp_path} takes no POSIX ACLs ({exc})")
    assert privileges.readable_by(f, me) is True and kernel_says(f, me) is True
    # The mask limits a named user's entry...
    set_acl(f, [(A.ACL_USER_OBJ, 6, 0xFFFFFFFF), (A.ACL_USER, 4, me.uid), (A.ACL_GROUP_OBJ, 4, 0xFFFFFFFF),
                (A.ACL_MASK, 2, 0xFFFFFFFF), (A.ACL_OTHER, 4, 0xFFFFFFFF)])
    assert privileges.readable_by(f, me) is False and kernel_says(f, me) is False
    # ...but an empty mask makes Linux skip the ACL for the mode bits (acl_permission_check).
    set_acl(f, [(A.ACL_USER_OBJ, 6, 0xFFFFFFFF), (A.ACL_USER, 4, me.uid), (A.ACL_GROUP_OBJ, 0, 0xFFFFFFFF),
                (A.ACL_MASK, 0, 0xFFFFFFFF), (A.ACL_OTHER, 4, 0xFFFFFFFF)])
    assert privileges.readable_by(f, me) is True and kernel_says(f, me) is True
    # grant_search (what setup.sh uses on a checkout's parents) opens exactly a directory's search.
    d = tmp_path / "closed"
    d.mkdir(mode=0o700)
    (d / "f").write_bytes(b"x")
    os.chmod(d / "f", 0o644)
    assert privileges.readable_by(d / "f", me) is False
    privileges.grant_search(d, me)
    assert privileges.readable_by(d / "f", me) is True and kernel_says(d / "f", me) is True
    assert privileges.readable_by(d, me) is False  # search, not listing
    assert stat.S_IMODE(os.stat(d).st_mode) & 0o007 == 0  # others gained nothing


def test_how_to_grant_names_the_user_the_blocking_part_and_the_fix(tmp_path):
    require_root()
    me = Identity("pxetui", 43230, 43230)
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    f = d / "big.iso"
    f.write_bytes(b"x")
    msg = privileges.how_to_grant(f, me)
    assert f"{f}: the service user pxetui cannot search {d}" in msg
    assert f"chmod o+x {d}" in msg and f"setfacl -m u:pxetui:x {d}" in msg
    os.chmod(d, 0o711)
    os.chmod(f, 0o600)
    assert f"cannot read {f}; fix with `chmod o+r {f}`" in privileges.how_to_grant(f, me)


def test_the_state_dir_is_private_and_chown_follows_nothing(tmp_path):
    require_root()
    me = Identity("probe", 43240, 43240)
    cfg = Config.from_dict({"state_dir": str(tmp_path / "state")})
    st = cfg.state_path
    (st / "cache" / "loaders").mkdir(parents=True)
    (st / "cache" / "loaders" / "grubx64.efi").write_bytes(b"img")
    cfg.db_path.write_bytes(b"")
    os.chmod(cfg.db_path, 0o644)
    secret = tmp_path / "root-only"
    secret.write_bytes(b"secret")
    os.symlink(secret, st / "link")  # a symlink planted in the state dir
    os.link(secret, st / "hardlink")  # a hard link to a root file
    privileges.secure_state_dir(cfg, me)
    assert stat.S_IMODE(st.stat().st_mode) == 0o700 and st.stat().st_uid == me.uid
    assert stat.S_IMODE(cfg.db_path.stat().st_mode) == 0o600 and cfg.db_path.stat().st_uid == me.uid
    assert (st / "cache" / "loaders" / "grubx64.efi").stat().st_uid == me.uid
    assert secret.stat().st_uid == 0  # neither link gave the root file away
    assert os.lstat(st / "link").st_uid == 0


# -- the engine as deployed -------------------------------------------------------------------

def running_pids(evs: list[dict]) -> dict[str, int]:
    return {e["service"]: e["pid"] for e in evs if e.get("type") == "ServiceState" and e.get("state") == "running"}


def status(pid: int) -> dict[str, str]:
    return privileges.status_fields(pid)


def ns_pids(ns: Netns) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if Path(f"/proc/{p}").exists()]


def children_of(pid: int, among: list[int]) -> list[int]:
    return [p for p in among if status(p).get("PPid") == str(pid)]


def start_serve(ns: Netns, tmp: Path, preexec=None) -> tuple[subprocess.Popen[bytes], Path]:
    """`pxetui serve` as deployed: full DHCP (probe off), TFTP, HTTP, capture with a pcap."""
    state = tmp / "state"
    conf = tmp / "pxetui.toml"
    conf.write_text(f'[dhcp]\nprobe_seconds = 0\n[capture]\npcap = "{state}/dhcp.pcap"\n')
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed with the process
    p = subprocess.Popen(ns.exec_args([sys.executable, "-m", "pxetui", "serve", "--interface", "eth0",
                                       "--dhcp", "full", "--state-dir", str(state), "--config", str(conf)]),
                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=ns.env(),
                         start_new_session=True, preexec_fn=preexec)
    ns.procs.append(p)
    return p, state


def wait_all_running(state: Path, timeout: float = 30) -> dict[str, int]:
    sock = socket_path(state)
    wait_for(lambda: is_live(sock), timeout=timeout, what="the control socket")
    evs = asyncio.run(collect(sock, lambda e: set(SERVICES) <= set(running_pids(e)), timeout))
    return running_pids(evs)


@pytest.mark.root
def test_every_service_runs_unprivileged_and_none_outlives_a_killed_engine(netns, tmp_path):
    server, _client = netns.pair()
    eng, state = start_serve(server, tmp_path)
    pids = wait_all_running(state)
    ident = privileges.service_identity(Config())
    assert ident is not None and ident.uid != 0
    workers = children_of(pids["tftp"], ns_pids(server))
    assert workers or os.cpu_count() == 1, "the TFTP service has no worker processes to check"
    checked = {}
    for name, pid in [*pids.items(), *((f"tftp-worker-{w}", w) for w in workers)]:
        st = status(pid)
        checked[name] = st
        assert st["Uid"].split() == [str(ident.uid)] * 4, (name, st["Uid"])
        assert st["Gid"].split() == [str(ident.gid)] * 4, (name, st["Gid"])
        assert st["Groups"] == "", (name, st["Groups"])
        # No capability left in any set: none of the services needs one once its sockets are open.
        for key in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            assert int(st[key], 16) == 0, (name, key, st[key])
        assert st["NoNewPrivs"] == "1", name
    assert set(checked) >= set(SERVICES)
    assert status(eng.pid)["Uid"].split()[0] == "0"  # the supervisor keeps root to restart them

    # The state directory: private, the service user's; the database (seeds live in it) 0600;
    # what a service made itself (the pcap) 0600 under umask 077.
    st = state.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and (st.st_uid, st.st_gid) == (ident.uid, ident.gid)
    db = (state / "pxetui.db").stat()
    assert stat.S_IMODE(db.st_mode) == 0o600 and db.st_uid == ident.uid
    pcap = (state / "dhcp.pcap").stat()
    assert stat.S_IMODE(pcap.st_mode) == 0o600 and pcap.st_uid == ident.uid

    # kill -9 the engine: every service and worker goes within 2 s (PDEATHSIG and the EOF of
    # its stdin pipe), nothing is left in the namespace.
    before = set(ns_pids(server))
    assert set(pids.values()) | set(workers) <= before
    os.kill(eng.pid, signal.SIGKILL)
    eng.wait(5)
    deadline = time.monotonic() + 2.0
    while ns_pids(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {p: status(p).get("Name") for p in ns_pids(server)}
    assert left == {}, f"left behind after kill -9 of the engine: {left}"


@pytest.mark.root
def test_serve_stops_on_sigint_even_when_the_parent_ignored_it(netns, tmp_path):
    server, _client = netns.pair()

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    # The disposition really reaches the command through `ip netns exec`: a control process.
    ctl = subprocess.Popen(server.exec_args(["sleep", "30"]), preexec_fn=ignore_sigint, start_new_session=True)
    server.procs.append(ctl)
    wait_for(lambda: status(ctl.pid).get("Name") == "sleep", timeout=10, what="the control process")
    assert int(status(ctl.pid)["SigIgn"], 16) & (1 << (signal.SIGINT - 1))
    server.stop(ctl)

    eng, state = start_serve(server, tmp_path, preexec=ignore_sigint)
    wait_all_running(state)
    os.kill(eng.pid, signal.SIGINT)
    assert eng.wait(10) == 0, (tmp_path / "serve.log").read_text()[-2000:]
    assert not socket_path(state).exists()
    assert ns_pids(server) == []


@pytest.mark.root
@pytest.mark.qemu
@pytest.mark.timeout(300)
def test_lab_stops_on_sigint_even_when_the_parent_ignored_it(tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "e2e"))  # the lab tests' helpers
    from labkit import require_lab
    from test_lab_cli import finish, namespace_of, namespaces, qemu_pids

    require_lab()
    require_tool("qemu-system-x86_64", package="qemu-system-x86")
    p = subprocess.Popen([sys.executable, "-m", "pxetui", "lab", "--headless", "--state-dir", str(tmp_path),
                          "--timeout", "200"], cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                         text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        ns = namespace_of(p)
        vm = wait_for(lambda: qemu_pids(ns), timeout=60, what="the VM to start")
        os.kill(p.pid, signal.SIGINT)  # the command alone, as `kill -INT` would
        out = finish(p, 60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, out
    assert "interrupted; lab removed" in out
    assert ns not in namespaces()
    assert not [pid for pid in vm if Path(f"/proc/{pid}").exists()]
