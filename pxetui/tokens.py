"""Per-boot tokens for callback and seed URLs (docs/SECURITY.md, "Callbacks and seeds").

A token is 128 random bits (32 hex digits), minted when a menu or iPXE script is rendered for a
machine and written into its callback and seed URLs. It is bound to that machine's MAC, the
address it was rendered for and one purpose (`callback`, `seed`, or `answer`: a seed URL sent in
DHCP option 250, pxetui/dhcp/answer.py), and stored in the state
database, so the TFTP service (PXELINUX and GRUB menus) and the HTTP service (iPXE scripts)
mint tokens that the HTTP service checks. Random tokens in a table rather than an HMAC over a
secret: the "next boot" rule needs state anyway, and there is no key file to protect.

A token stops working when:
  - `http.token_ttl` seconds have passed since it was minted (default 4 h), or
  - the machine has booted again and used that boot's token: the first use of a token ends
    every older one of its machine and purpose. A render within REUSE_SECONDS of the last one,
    from the same address, is the same boot and gets the same token: menu.c32 reads the config
    file pxelinux already read, and a TFTP retransmission renders twice.
  - KEPT newer ones of its machine and purpose were minted and none used yet.
A render alone ends nothing: a TFTP read request is one UDP packet whose source anyone on the
segment can forge, so one every REUSE_SECONDS would otherwise void a machine's seed and callback
tokens while it installs (docs/SECURITY.md, "Callbacks and seeds").
Tokens are minted only for a MAC attributed to the requesting address (pxetui.attribution),
never for one a request merely claims.
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pxetui import attribution, store
from pxetui.config import Config
from pxetui.store import write_transaction

log = logging.getLogger("pxetui.tokens")

PURPOSES = ("callback", "seed", "answer")
REUSE_SECONDS = 30.0
KEPT = 16  # unused tokens kept per machine and purpose: 8 minutes of forged renders to push one out
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")

TOKENS_DDL = """
CREATE TABLE IF NOT EXISTS boot_tokens (
    token TEXT PRIMARY KEY,
    mac TEXT NOT NULL,
    purpose TEXT NOT NULL,    -- callback | seed
    ip TEXT NOT NULL,         -- the address the menu carrying it was rendered for
    issued REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS boot_tokens_mac ON boot_tokens(mac, purpose);
"""

# purpose -> token: handed to the menu renderers, called only when a URL needs one.
Mint = Callable[[str], str]


class TokenUnavailable(RuntimeError):
    """A token could not be stored (the state database is read-only or locked)."""


@dataclass(frozen=True)
class Grant:
    """What a valid token was minted for."""

    mac: str
    purpose: str
    ip: str
    issued: float
    expires: float


class TokenStore:
    def __init__(self, db_path: Path, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.db_path, self.ttl, self.clock = db_path, ttl, clock
        self.lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if not create and not self.db_path.exists():
                return None
            self._conn = store.connect(self.db_path)
            store.ensure_schema(self._conn, TOKENS_DDL)
        return self._conn

    def issue(self, mac: str, purpose: str, ip: str) -> str:
        """The token for this boot of `mac` (minted now, or the one of a render moments ago)."""
        if purpose not in PURPOSES:
            raise ValueError(f"token purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
        now = self.clock()
        with self.lock:
            try:
                return self._issue(mac, purpose, ip, now)
            except sqlite3.Error as exc:
                raise TokenUnavailable(f"cannot store a boot token in {self.db_path}: {exc}") from None

    def _issue(self, mac: str, purpose: str, ip: str, now: float) -> str:
        conn = self._connect(create=True)
        assert conn is not None
        # Read first: a repeated render (the same boot) takes no write lock.
        token = self._same_boot(conn, mac, purpose, ip, now)
        if token is not None:
            return token
        with write_transaction(conn):
            token = self._same_boot(conn, mac, purpose, ip, now)  # another service just minted
            if token is None:
                token = secrets.token_hex(16)
                conn.execute("DELETE FROM boot_tokens WHERE expires <= ?", (now,))
                conn.execute("DELETE FROM boot_tokens WHERE mac = ? AND purpose = ? AND token NOT IN"
                             " (SELECT token FROM boot_tokens WHERE mac = ? AND purpose = ?"
                             " ORDER BY issued DESC LIMIT ?)", (mac, purpose, mac, purpose, KEPT - 1))
                conn.execute("INSERT INTO boot_tokens(token, mac, purpose, ip, issued, expires)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (token, mac, purpose, ip, now, now + self.ttl))
        return token

    @staticmethod
    def _same_boot(conn: sqlite3.Connection, mac: str, purpose: str, ip: str, now: float) -> str | None:
        row = conn.execute("SELECT token, ip, issued, expires FROM boot_tokens WHERE mac = ? AND purpose = ?"
                           " ORDER BY issued DESC LIMIT 1", (mac, purpose)).fetchone()
        if row is None or row["ip"] != ip or row["expires"] <= now or not 0 <= now - row["issued"] < REUSE_SECONDS:
            return None
        return str(row["token"])

    def verify(self, token: str, purpose: str) -> Grant | None:
        """The grant of a current token for `purpose`; None for anything else (malformed,
        unknown, expired, superseded by the next boot, or minted for the other purpose)."""
        if not TOKEN_RE.match(token):
            return None
        with self.lock:
            try:
                conn = self._connect(create=False)
                if conn is None:
                    return None
                row = conn.execute("SELECT mac, purpose, ip, issued, expires FROM boot_tokens"
                                   " WHERE token = ? AND purpose = ? AND expires > ?",
                                   (token, purpose, self.clock())).fetchone()
            except sqlite3.Error:
                return None
            if row is not None:
                self._supersede(conn, row)
        if row is None:
            return None
        return Grant(str(row["mac"]), str(row["purpose"]), str(row["ip"]), float(row["issued"]),
                     float(row["expires"]))

    @staticmethod
    def _supersede(conn: sqlite3.Connection, row: sqlite3.Row) -> None:
        """The machine used this boot's token: its earlier boots' ones end (the module docstring).
        A failed write costs nothing but that: they still end by KEPT and the TTL."""
        args = (row["mac"], row["purpose"], row["issued"])
        try:
            if conn.execute("SELECT 1 FROM boot_tokens WHERE mac = ? AND purpose = ? AND issued < ?"
                            " LIMIT 1", args).fetchone() is None:
                return  # the usual case: no write lock taken
            with write_transaction(conn):
                conn.execute("DELETE FROM boot_tokens WHERE mac = ? AND purpose = ? AND issued < ?", args)
        except sqlite3.Error as exc:
            log.warning("earlier boot tokens of %s not ended: %s", row["mac"], exc)


_STORES: dict[tuple[str, float], TokenStore] = {}
_LOCK = threading.Lock()


def for_config(cfg: Config) -> TokenStore:
    key = (str(cfg.db_path), float(cfg.http.token_ttl))
    with _LOCK:
        st = _STORES.get(key)
        if st is None:
            st = _STORES[key] = TokenStore(cfg.db_path, cfg.http.token_ttl)
    return st


def for_request(cfg: Config, ip: str | None, claimed: str | None = None) -> tuple[str | None, Mint | None]:
    """Whose menu a request gets, and how to mint that machine's tokens: the MAC attributed to
    `ip` with a minter; else the MAC the request claims (its per-MAC default only) and no
    minter, so the menu carries no callback and no seed (docs/SECURITY.md)."""
    mac = attribution.for_config(cfg).mac_for(ip)
    if mac is None or ip is None:
        return claimed, None
    tokens, addr = for_config(cfg), ip

    def mint(purpose: str) -> str:
        return tokens.issue(mac, purpose, addr)
    return mac, mint


def rendered(render: Callable[[Mint | None], str], mint: Mint | None) -> str:
    """`render(mint)`; when a token cannot be stored, the menu without tokens (no seeds, no
    callback: the machine still boots, interactively) and an error in the service's log."""
    if mint is None:
        return render(None)
    try:
        return render(mint)
    except TokenUnavailable as exc:
        log.error("%s; this menu is rendered without seeds and callbacks", exc)
        return render(None)
