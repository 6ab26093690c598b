"""The kernel arguments that make an installer (or a kernel) send its log to pxetui's `logs`
service, per family (docs/CLIENT-LOGS.md, "What each family gets").

An entry's family is read from its shape (kernel path and arguments), not stored: menus made
before this, entries imported from a pxelinux.cfg and hand-made ones get the same treatment as
the ISO library's. Arguments go before a `---` (d-i copies what follows it into the installed
system's boot loader).
"""

from __future__ import annotations

import ipaddress
import re

from pxetui.config import Config

DEBIAN_INSTALLER, ANACONDA, GENERIC, NONE = "debian-installer", "anaconda", "linux", "none"

_DI_KERNEL = re.compile(r"(^|/)(debian-installer/[^/]+/linux|install\.[a-z0-9]+/vmlinuz|linux)$")
_DI_ARGS = re.compile(r"(^|\s)(auto=true|priority=(critical|high|medium|low)|preseed/url=|"
                      r"debian-installer/|url=\{http\}/seed/[^\s]*/preseed\.cfg)")
_ANACONDA_ARGS = re.compile(r"(^|\s)inst\.(repo|stage2|ks)=")
# casper (Ubuntu live, subiquity) and live-boot have no remote log argument of their own
# (subiquity reports through its autoinstall `reporting:` section); the kernel's netconsole is
# what they get, like any Linux kernel.
_MEMTEST = re.compile(r"memtest", re.I)


def family_of(kind: str, kernel: str, args: str, seed_args: str = "") -> str:
    """debian-installer | anaconda | linux (any other Linux kernel) | none (not a Linux kernel
    that takes a command line: memtest86+, EFI images, ISOs, Windows)."""
    if kind != "linux" or _MEMTEST.search(kernel):
        return NONE
    both = f"{args} {seed_args}"
    if _ANACONDA_ARGS.search(both):
        return ANACONDA
    if _DI_ARGS.search(both) or _DI_KERNEL.search(kernel.split("?", 1)[0]):
        return DEBIAN_INSTALLER
    return GENERIC


def _ipv4(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(a, ipaddress.IPv6Address):
        return str(a.ipv4_mapped) if a.ipv4_mapped else None
    return str(a)


def log_args(family: str, cfg: Config, client_ip: str | None) -> str:
    """The arguments for `family`, "" when it has none or they cannot work for this client.
    The receivers listen on IPv4 (cfg.server_ip); a client that came over IPv6 only gets none."""
    lg, server = cfg.logs, cfg.server_ip
    if not server or (client_ip and _ipv4(client_ip) is None):
        return ""
    if family == DEBIAN_INSTALLER:
        # busybox syslogd -R log_host:log_port (d-i's S10syslog reads both from /proc/cmdline).
        return f"log_host={server} log_port={lg.syslog_port}"
    if family == ANACONDA:
        # Anaconda's rsyslog forwards over TCP (`*.* @@host:port`): logs.syslog_tcp must be on.
        return f"inst.syslog={server}:{lg.syslog_port}" if lg.syslog_tcp else ""
    if family == GENERIC:
        # netconsole=[+][src-port]@[src-ip]/[dev],[tgt-port]@<tgt-ip>/[tgt-mac] (the kernel's
        # Documentation/networking/netconsole.rst). Built in, it starts before the kernel has an
        # address, so the source address must be given: the one this client's loader uses.
        src = _ipv4(client_ip)
        return f"netconsole=@{src}/,{lg.netconsole_port}@{server}/" if src else ""
    return ""


def add_log_args(args: str, family: str, cfg: Config, client_ip: str | None, wanted: bool | None) -> str:
    """`args` with the family's log arguments when the logs service runs and the entry wants
    them (`wanted`: the entry's own choice; None follows logs.menu_args), before any `---`."""
    if not cfg.logs.enabled or not (cfg.logs.menu_args if wanted is None else wanted):
        return args
    extra = log_args(family, cfg, client_ip)
    if not extra:
        return args
    words = args.split()
    if any(w.startswith(extra.split("=", 1)[0] + "=") for w in words):
        return args  # the entry sets it itself: its value wins
    if "---" in words:
        i = words.index("---")
        return " ".join([*words[:i], extra, *words[i:]])
    return f"{args} {extra}".strip()
