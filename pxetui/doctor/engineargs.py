"""The self-test command for the engine behind a control socket, from that engine's own command
line: the same options (its `--boot-file`s included) make the same config, and under `pxetui lab`
the engine lives in a network namespace the test must run in (`nsenter --net`). The UI uses it;
it needs nothing from the engine but its socket."""

from __future__ import annotations

import os
import socket
import struct
import sys
from pathlib import Path

SERVE_ONLY = {"-v": 0, "--verbose": 0, "--log-file": 1}  # serve's options doctor does not take


class NoEngine(Exception):
    pass


def engine_pid(sock_path: str | Path) -> int:
    """The PID of the process that listens on the control socket (SO_PEERCRED)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(str(sock_path))
        cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError as exc:
        raise NoEngine(f"no engine answers on {sock_path} ({exc.strerror or exc})") from None
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
    cmd = [sys.executable, "-m", "pxetui", *doctor_args(cmdline)]
    if theirs != ours:  # a lab's engine: run where its interface is
        cmd = ["nsenter", f"--net=/proc/{pid}/ns/net", *cmd]
    return cmd, f"/proc/{pid}/cwd"
