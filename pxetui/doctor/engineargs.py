"""The self-test command for the engine behind a control socket, from that engine's own command
line: the same options (its `--boot-file`s included) make the same config, and under `pxetui lab`
the engine lives in a network namespace the test must run in (`nsenter --net`). The UI uses it;
it needs nothing from the engine but its socket."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
from pathlib import Path

from pxetui.control import check_peer
from pxetui.doctor.selftest import Report
from pxetui.interpreter import python_module

SERVE_ONLY = {"-v": 0, "--verbose": 0, "--log-file": 1}  # serve's options doctor does not take
CHILD_ENV = "PXETUI_SELF_TEST_CHILD"  # set for the command run here: it never looks for an engine again
TIMEOUT = 600.0  # seconds: every boot file and a kernel and initrd on a slow link


class NoEngine(Exception):
    pass


def engine_pid(sock_path: str | Path) -> int:
    """The PID of the process that listens on the control socket (SO_PEERCRED), if it runs as
    root or as us: its command line is run as a self-test, so a socket a compromised service
    (the state directory's owner) put in control.sock's place is refused (control.check_peer)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        try:
            s.connect(str(sock_path))
            cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError as exc:
            raise NoEngine(f"no engine answers on {sock_path} ({exc.strerror or exc})") from None
        try:
            check_peer(s)
        except ConnectionRefusedError as exc:
            raise NoEngine(str(exc)) from None
    finally:
        s.close()
    return int(struct.unpack("3i", cred)[0])


def doctor_args(cmdline: list[str]) -> list[str]:
    """`... pxetui [OPTS] serve [OPTS]` -> `[OPTS] doctor --self-test --json [OPTS]`."""
    if "serve" not in cmdline:
        raise NoEngine(f"the process on the socket is not `pxetui serve`: {' '.join(cmdline)[:200]}")
    at = cmdline.index("serve")
    start = next((i + 1 for i, a in enumerate(cmdline[:at]) if a.endswith("pxetui") or a.endswith("pxetui/__main__.py")), at)
    before, after, out = cmdline[start:at], cmdline[at + 1:], []
    skip = 0
    for a in after:
        if skip:
            skip -= 1
            continue
        name = a.split("=", 1)[0]
        if name in SERVE_ONLY:
            skip = SERVE_ONLY[name] if "=" not in a else 0
            continue
        out.append(a)
    return [*before, "doctor", "--self-test", "--json", *out]


def self_test_command(sock_path: str | Path) -> tuple[list[str], str]:
    """The command that self-tests the engine on `sock_path`, where that engine runs, and the
    directory to run it in (the engine's: its relative paths mean the same)."""
    pid = engine_pid(sock_path)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        theirs, ours = os.readlink(f"/proc/{pid}/ns/net"), os.readlink("/proc/self/ns/net")
    except OSError as exc:
        raise NoEngine(f"cannot read the engine's command line (PID {pid}): {exc.strerror}") from None
    cmd = python_module("pxetui", *doctor_args(cmdline))
    if theirs != ours:  # a lab's engine: run where its interface is
        cmd = ["nsenter", f"--net=/proc/{pid}/ns/net", *cmd]
    return cmd, f"/proc/{pid}/cwd"


def run(sock_path: str | Path, extra: list[str] | None = None) -> Report:
    """The self-test of the engine on `sock_path`, run where it runs; a report that says what
    went wrong when it could not run."""
    try:
        cmd, cwd = self_test_command(sock_path)
        env = dict(os.environ, **{CHILD_ENV: "1"})
        r = subprocess.run([*cmd, *(extra or [])], capture_output=True, text=True, cwd=cwd, env=env,
                           timeout=TIMEOUT)
    except NoEngine as exc:
        return Report("", problem=str(exc))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Report("", problem=f"the self-test did not finish: {exc}")
    try:
        return Report.from_dict(json.loads(r.stdout))
    except (ValueError, TypeError, AttributeError):
        tail = " / ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        return Report("", problem=f"the self-test failed (exit {r.returncode}): {tail}")
