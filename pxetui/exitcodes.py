"""What a pxetui command tells its caller: the exit codes, their description for `--help` and
README.md, and the process wrapper that ends quietly on a closed pipe and on Ctrl-C."""

from __future__ import annotations

import os
import select
import signal
import sys
from collections.abc import Callable
from typing import TextIO

OK = 0
FAILED = 1  # the command ran and did not get what it was asked (cannot start, import refused)
USAGE = 2  # a bad argument or configuration: nothing was done (argparse uses 2 as well)
# `pxetui status` found no engine running: 3 as LSB init scripts' and `systemctl status`'s
# "program is not running", so a script tells "down" from "failed to ask".
NOT_RUNNING = 3
INTERRUPTED = 128 + signal.SIGINT  # 130, as a shell reports a command ended by Ctrl-C
# The reader of our output went away (`pxetui menu show | head -1`): like cat or grep, which
# SIGPIPE ends with 128 + 13 = 141, so `set -o pipefail` scripts see the same as with them.
PIPE_CLOSED = 128 + signal.SIGPIPE

EPILOG = f"""\
exit codes:
  {OK:<4}success
  {FAILED:<4}the command failed (cannot start, import refused, doctor found problems)
  {USAGE:<4}bad argument or configuration; nothing was done
  {NOT_RUNNING:<4}`status`: no engine is running
  {INTERRUPTED:<4}interrupted (Ctrl-C); `serve` and `watch` stop cleanly with 0 instead
  {PIPE_CLOSED:<4}the output's reader went away (`| head`); nothing is printed about it"""


def run_process(command: Callable[[], int]) -> int:
    """Run a whole command as a process's entry point: its exit code, with a closed output pipe
    and Ctrl-C ending it quietly instead of in a traceback."""
    try:
        code = command()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        gone = [s for s in (sys.stdout, sys.stderr) if _reader_gone(s)]
        if not gone:
            raise  # a pipe or socket of the command's own (a service, the engine): a real error
        for stream in gone:
            _to_devnull(stream)
        return PIPE_CLOSED
    except KeyboardInterrupt:  # outside what the command handles itself (imports, parsing)
        return INTERRUPTED


def _reader_gone(stream: TextIO) -> bool:
    """Whether `stream` is a pipe or socket whose reader has closed it (poll says POLLERR)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a real file (replaced by a test harness) or closed
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))


def _to_devnull(stream: TextIO) -> None:
    """Python flushes stdout once more at exit: aim it at /dev/null, or that flush fails on the
    same closed pipe and prints "Exception ignored ... BrokenPipeError" (Python docs, "Note on
    SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)
