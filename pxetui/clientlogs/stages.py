"""Install stages from installer log lines (pure: the tracker and the diagnosis both call it).

The Debian installer (d-i) logs through busybox syslogd, which forwards to `log_host`
(its /lib/debian-installer-startup.d/S10syslog, docs/CLIENT-LOGS.md). Its main menu logs each
step it runs as `main-menu[PID]: INFO: Menu item '<udeb>' selected`, a step that fails as
`WARNING **: Configuring '<udeb>' failed with error code N` and `Menu item '<udeb>' failed.`,
and what a step's programs print as `(process:PID): <text>` (wget's errors among them);
preseed.sh logs `preseed: successfully loaded preseed file from <url>`. The stage of a line
depends on the step it is logged in (a wget error fetching the preseed is not one fetching the
archive), so `read` takes the current step and returns the next.

Lines reach us only once the installer's network is up (busybox syslogd drops what it cannot
send), so the first line heard is already past `netcfg`. Other families get no stages: their
lines show as the client's last log line (the tracker's `last_event`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The stages returned are pxetui.stages.INSTALL_STAGES (tests/unit/test_clientlogs_stages.py).

# d-i steps (udebs run by main-menu) -> the stage they begin.
_STEP_STAGE = {
    "network-preseed": "network", "choose-mirror": "network", "download-installer": "network",
    "anna": "network", "partman-base": "partitioning", "partman-auto": "partitioning",
    "bootstrap-base": "installing", "base-installer": "installing", "apt-setup-udeb": "installing",
    "pkgsel": "installing", "grub-installer": "installing", "finish-install": "installed",
}
_STAGE_WORDS = {
    "network": "network configured", "partitioning": "partitioning", "installing": "installing",
    "installed": "installed: finish-install runs, the machine reboots next",
}
# Steps whose download failures are the preseed's, and those that fetch from the archive mirror.
_SEED_STEPS = ("network-preseed", "preseed", "auto-install")
_MIRROR_STEPS = ("choose-mirror", "download-installer", "anna", "bootstrap-base", "base-installer",
                 "apt-setup-udeb", "pkgsel")
_DI_APPS = ("main-menu", "anna", "netcfg", "preseed", "choose-mirror", "debootstrap", "base-installer",
            "pkgsel", "in-target", "grub-installer", "finish-install", "net-retriever", "hw-detect",
            "localechooser", "apt-setup", "bootstrap-base", "check-missing-firmware", "ethdetect",
            "user-setup", "clock-setup", "tzsetup", "os-prober", "log-output", "debconf")

_SELECTED = re.compile(r"Menu item '([^']+)' selected")
_FAILED = re.compile(r"Configuring '([^']+)' failed with error code (\d+)|Menu item '([^']+)' failed\.")
_SEED_OK = re.compile(r"successfully loaded preseed file from (\S+)")
# busybox wget's errors (fetch-url runs it for the preseed and choose-mirror for the Release file).
_WGET = re.compile(r"wget: (server returned error: .*|can't connect to remote host.*|bad address.*"
                   r"|download timed out.*|error getting response.*|unable to resolve.*)")
_MIRROR = re.compile(r"mirror does not support the specified release|broken mirror:|"
                     r"Failed getting release file|Couldn't download release file", re.I)

SEED_FAILED = "installer could not fetch its preseed"
NO_MIRROR = "no mirror reachable"


@dataclass(frozen=True)
class Reading:
    step: str  # the installer's step after this line ("" while none is known)
    stage: str = ""  # the install stage this line shows reached, "" none
    detail: str = ""
    failure: str = ""  # a plain-language finding when the install cannot go on, "" none


def is_installer(app: str) -> bool:
    return app in _DI_APPS or app.startswith("partman")


def read(app: str, message: str, step: str = "") -> Reading:
    """What one log line (its syslog app and message) says, given the installer's current step."""
    if not is_installer(app):
        return Reading(step=step)
    m = _SELECTED.search(message)
    if m is not None:
        item = m.group(1)
        stage = _STEP_STAGE.get(item, "installer")
        return Reading(step=item, stage=stage, detail=_STAGE_WORDS.get(stage, "installer running") + f" ({item})")
    m = _SEED_OK.search(message)
    if app == "preseed" and m is not None:
        return Reading(step=step, stage="seed", detail=f"preseed loaded from {m.group(1)}")
    line = f"{app}: {message}"
    if _WGET.search(message):
        if step in _SEED_STEPS:
            return Reading(step=step, stage="installer", failure=f"{SEED_FAILED}: {line}")
        if step in _MIRROR_STEPS:
            return Reading(step=step, stage="installer", failure=f"{NO_MIRROR}: {line}")
    if _MIRROR.search(message):
        return Reading(step=step, stage="installer", failure=f"{NO_MIRROR}: {line}")
    m = _FAILED.search(message)
    if m is not None:
        item = m.group(1) or m.group(3)
        what = SEED_FAILED if item in _SEED_STEPS else NO_MIRROR if item == "choose-mirror" else \
            f"the installer's step {item} failed"
        return Reading(step=step, stage="installer", failure=f"{what}: {line}")
    if partman_line(app):
        return Reading(step=step, stage="partitioning", detail=line)
    return Reading(step=step, stage="installer", detail="installer running")


def partman_line(app: str) -> bool:
    return app.startswith("partman")


def replay(lines: list[tuple[str, str]]) -> list[Reading]:
    """The readings of a client's lines in order, each with the step the ones before set."""
    out, step = [], ""
    for app, message in lines:
        r = read(app, message, step)
        step = r.step
        out.append(r)
    return out
