"""Which client gets Proxmox's answer URL (DHCP option 250), and the URL. No packets here.

Proxmox's automated installer (an ISO prepared with `proxmox-auto-install-assistant prepare-iso
--fetch-from http`) takes its answer URL from DHCP option 250 or DNS, never from the kernel
command line (docs/FIELD-NOTES.md, "Proxmox's answer URL"). The rule, the simplest one that is
correct: a request from a client that is NOT network booting (no PXEClient/HTTPClient vendor
class, no option 93, not iPXE: the installer's own DHCP client after the kernel runs) gets option
250 when its MAC has an `answer.toml` seed of its own, or when the entry that MAC boots (its
boot-once entry, else its per-MAC entry, else the menu default) is a Proxmox entry with a stored
`<entry>/answer.toml`. The URL carries a fresh per-boot token minted for that MAC and the
address the reply gives it, of purpose `answer`: an OFFER or ACK to a client without an address
is broadcast, so any host on the segment reads the token, and the HTTP service serves it only to
that address while it is the token's MAC's (docs/SECURITY.md, "Callbacks and seeds").
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable

from pxetui import store as dbstore
from pxetui import tokens
from pxetui.config import Config
from pxetui.menus import model, seeds

log = logging.getLogger("pxetui.dhcp.answer")

ANSWER_FILE = "answer.toml"
PROXMOX_ISO = "/proxmox.iso="  # the named initrd every Proxmox entry has (pxetui/iso/profiles.py)
# Seconds between looks at whether another process changed the database (a seed, an override,
# the menu stored by the UI or `pxetui seed`): that PRAGMA is a read transaction with its file
# locks, and the lease writer's own commits change data_version, so asking it per request cost
# a non-booting client's request 18 % of the DHCP loop (py-spy, bench/dhcp at 3,000/s).
RECHECK = 1.0


def is_proxmox(entry: model.Entry) -> bool:
    return any(i.startswith(PROXMOX_ISO) for i in entry.initrds)


def seed_key(conn: sqlite3.Connection, mac: str, known: _Known | None = None) -> str | None:
    """The `<mac-or-entry>` part of the answer URL for `mac`, or None when it gets no answer.
    `conn` has the seeds table (AnswerUrls makes it once, not per request); `known`, what
    was read of it while nothing changed (AnswerUrls keeps it)."""
    known = known or _Known.read(conn)
    if not known.stored:
        return None
    if (mac, ANSWER_FILE) in known.stored:
        return mac
    ov = known.overrides.get(mac)
    wanted = (ov["boot_once"] if ov is not None else None) or (ov["entry"] if ov is not None else None)
    return _answering_entry(known, wanted or known.menu().default)


def answer_from_boot_once(conn: sqlite3.Connection, mac: str) -> str | None:
    """The Proxmox entry `mac` boots once into, when that boot-once entry is what gives it its
    answer URL (the entry's answer.toml is stored, the MAC has none of its own); else None.

    The installer's DHCP client asks for option 250 after the kernel runs, so after the boot
    callback that spends a boot-once entry (pxetui/supervisor.py): such a boot-once is kept
    until the installer has fetched its answer, or the URL would no longer be given."""
    known = _Known.read(conn)
    if not known.stored or (mac, ANSWER_FILE) in known.stored:
        return None
    ov = known.overrides.get(mac)
    once = ov["boot_once"] if ov is not None else None
    return _answering_entry(known, once) if once and once != "local" else None


def _answering_entry(known: _Known, entry_id: str | None) -> str | None:
    """`entry_id` when it is a Proxmox entry with its answer.toml stored, else None."""
    entry = known.menu().get(entry_id) if entry_id else None
    if entry is None or not is_proxmox(entry) or ("entry", f"{entry.id}/{ANSWER_FILE}") not in known.stored:
        return None
    return entry.id


def is_answer_path(path: str | None) -> bool:
    """An HTTP transfer of an answer file: `seed/<mac-or-entry>/answer.toml` (tokens are not
    in transfer names, pxetui/http/routes.py)."""
    return path is not None and path.startswith("seed/") and path.endswith(f"/{ANSWER_FILE}")


class _Known:
    """The stored answer files, host overrides and menu as they stand: read once, and again
    only when the database changed (`version`), not for every DHCP request."""

    def __init__(self, conn: sqlite3.Connection, version: tuple[int, int], stored: set[tuple[str, str]],
                 overrides: dict[str, sqlite3.Row]) -> None:
        self.conn, self.version, self.stored, self.overrides = conn, version, stored, overrides
        self._menu: model.Menu | None = None

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> _Known:
        version = _version(conn)  # before the reads: a change during them is read again next time
        # One cheap query first: on a network where no answer.toml is stored nothing else is read.
        rows = conn.execute("SELECT scope, name FROM menu_seeds WHERE name = ? OR name LIKE ?",
                            (ANSWER_FILE, f"%/{ANSWER_FILE}")).fetchall()
        stored = {(str(r["scope"]), str(r["name"])) for r in rows}
        return cls(conn, version, stored, dbstore.host_overrides(conn) if stored else {})

    def menu(self) -> model.Menu:
        if self._menu is None:
            self._menu = model.load_menu(self.conn)
        return self._menu


def _version(conn: sqlite3.Connection) -> tuple[int, int]:
    """Changes when any connection commits (data_version: the others; total_changes: this one)."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes


class AnswerUrls:
    """Option 250's value for one client, from the state database (`url_for(mac, ip)`)."""

    def __init__(self, cfg: Config, conn: sqlite3.Connection,
                 mint: Callable[[str, str], str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.conn, self.clock = cfg, conn, clock
        seeds.ensure_schema(conn)  # once: url_for runs for every non-boot request in full mode
        self._known: _Known | None = None
        self._next_check = -math.inf
        store = tokens.for_config(cfg)
        self.mint = mint or (lambda mac, ip: store.issue(mac, "answer", ip))

    def url_for(self, mac: str, ip: str) -> str | None:
        """`http://<server>/seed/<token>/<mac-or-entry>/answer.toml`, or None. A database error
        or a token that cannot be stored costs this client its answer (the installer then
        stops and says so), never the reply: it is logged, and the address is still given."""
        try:
            key = seed_key(self.conn, mac, self._fresh())
            if key is None:
                return None
            token = self.mint(mac, ip)
        except (sqlite3.Error, tokens.TokenUnavailable, model.MenuError) as exc:
            log.error("no Proxmox answer URL for %s: %s", mac, exc)
            return None
        return f"{self.cfg.http_base_for(ip)}/seed/{token}/{key}/{ANSWER_FILE}"

    def _fresh(self) -> _Known:
        """What decides the URL: read again after a write on this connection at once (a
        boot-once spent here), after another process's within RECHECK seconds."""
        known, now = self._known, self.clock()
        if known is not None and known.version[1] == self.conn.total_changes and now < self._next_check:
            return known
        self._next_check = now + RECHECK
        if known is None or known.version != _version(self.conn):
            known = self._known = _Known.read(self.conn)
        return known
