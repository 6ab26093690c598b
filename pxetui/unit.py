"""The systemd unit that runs `pxetui serve` for good (README "Run it permanently").

Written once here: `pxetui service install` renders it with this installation's console script,
and scripts/pxetui.service is its rendering for /usr/local/bin/pxetui (tests/unit/test_service_unit.py
keeps the two equal and runs `systemd-analyze verify` on it)."""

from __future__ import annotations

DEFAULT_EXEC = "/usr/local/bin/pxetui"
DEFAULT_CONFIG = "/etc/pxetui/pxetui.toml"
UNIT_DIR = "/etc/systemd/system"
NAME = "pxetui.service"

TEMPLATE = """# pxetui as a permanent boot server (README "Run it permanently").
# Written by `pxetui service install` (pxetui/unit.py), or copied from scripts/pxetui.service;
# then: systemctl daemon-reload && systemctl enable --now pxetui
# The engine starts as root, opens its sockets and drops every service to the `pxetui` user
# (docs/SECURITY.md, "Least privilege"); the bounding set below is what that start needs.
[Unit]
Description=pxetui network boot server (DHCP/proxyDHCP, TFTP, HTTP)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
# The console script of a system-wide install (pipx with PIPX_HOME=/opt/pipx
# PIPX_BIN_DIR=/usr/local/bin): the pxetui user must read the code (pxetui doctor checks).
ExecStart={exec_start} serve --config {config}
# Re-reads the config and the menus; leases and transfers in flight stay.
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
# A bad config exits 2: retrying it cannot help (a busy port, exit 1, may come free).
RestartPreventExitStatus=2

# Hardening. Each capability, and who uses it:
#   NET_BIND_SERVICE  UDP 67, 69 and 4011, TCP 80, syslog 514 (UDP and TCP, [logs])
#   NET_RAW           capture (AF_PACKET), SO_BINDTODEVICE on kernels before 5.7
#   NET_ADMIN         SO_RCVBUFFORCE/SO_SNDBUFFORCE: DHCP's receive buffer in a boot storm,
#                     the event pipes and a UI's socket past net.core.[rw]mem_max
#   SETUID SETGID     services become the pxetui user (setresuid, setgroups)
#   SETPCAP           ... after emptying their bounding set (PR_CAPBSET_DROP)
#   SYS_NICE          DHCP/TFTP/HTTP above the engine: negative nice, /proc/PID/autogroup
#   CHOWN FOWNER      the state directory handed to the pxetui user at every start
#   DAC_OVERRIDE      the engine (root) in that directory, which the pxetui user owns, 0700
#   KILL              SIGHUP/SIGTERM to services that run as the pxetui user
CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_NET_ADMIN CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_SYS_NICE CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_KILL
# Services set no_new_privs themselves; setresuid and capset only lower privileges, so they work under it.
NoNewPrivileges=yes
ProtectSystem=strict
# Leases, the library, menus, control.sock: made before the sandbox (+: unsandboxed), and not
# with StateDirectory=, which would chown it back to root at every start. Add tftp.uploads_dir
# or capture.pcap here when they are set outside it.
ExecStartPre=+/usr/bin/install -d -m 0700 /var/lib/pxetui
ReadWritePaths=/var/lib/pxetui
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
"""


def render(exec_start: str = DEFAULT_EXEC, config: str = DEFAULT_CONFIG) -> str:
    for what, value in (("the program", exec_start), ("the config file", config)):
        if not value.startswith("/") or any(c.isspace() or c in "%$\\\"'" for c in value):
            raise ValueError(f"{what}: {value!r} must be an absolute path without spaces, quotes, % or $ "
                             "(systemd would split or expand it)")
    return TEMPLATE.format(exec_start=exec_start, config=config)
