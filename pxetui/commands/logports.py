"""`--syslog-port` and `--netconsole-port` of the commands that read clients' log lines off the
wire (`watch`, `analyze`): the logs service's defaults and checks (config.LogsConfig)."""

from __future__ import annotations

import argparse
import sys

from pxetui.config import LogsConfig, log_port_problems


def add_args(p: argparse.ArgumentParser) -> None:
    d = LogsConfig()
    p.add_argument("--syslog-port", type=int, default=d.syslog_port,
                   help=f"UDP port whose datagrams are clients' syslog lines (default {d.syslog_port})")
    p.add_argument("--netconsole-port", type=int, default=d.netconsole_port,
                   help=f"UDP port whose datagrams are clients' netconsole lines (default {d.netconsole_port})")


def ports(args: argparse.Namespace, command: str) -> tuple[int, int] | None:
    """The two ports, or None after saying on stderr what is wrong with them."""
    problems = log_port_problems(args.syslog_port, args.netconsole_port, prefix="--")
    for problem in problems:
        print(f"pxetui {command}: {problem.replace('_', '-')}", file=sys.stderr)
    return None if problems else (args.syslog_port, args.netconsole_port)
