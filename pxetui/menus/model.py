"""The boot menu model: one menu, rendered to PXELINUX, GRUB and iPXE.

Paths in entries are served paths relative to the TFTP/HTTP root (`iso/<name>/casper/vmlinuz`).
Arguments are templates: `{http}` (cfg.http_base) and `{server}` (cfg.server_ip) are filled in
per request, so one stored menu works on every listening address (issue 6, point 2), in the
family the client came over: an IPv6 client gets `http://[addr]` and our IPv6 address
(docs/IPV6.md "TFTP and HTTP").
`{callback}` is this boot's callback URL (`<http>/callback/<token>`; append `/<stage>`), and
seed URLs (`{http}/seed/<entry>/...`) get this boot's seed token: both only in a menu rendered
for one attributed machine, see pxetui.tokens and docs/SECURITY.md "Callbacks and seeds".
Without a token `{callback}` is empty and an entry's seed arguments are left out.

Entry kinds:
  linux    kernel + initrds + arguments (any Linux-boot-protocol image: memtest86+ too)
  efi      an EFI application chained as is (GRUB `chainloader`, iPXE `chain`)
  iso      the whole image (iPXE `sanboot`, PXELINUX `memdisk`): El Torito images we cannot
           take apart
  wimboot  Windows/WinPE through iPXE + wimboot, initrds named `<name>=<path>`
  local    boot from local disk
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pxetui import store
from pxetui.archtypes import MENU_FAMILIES
from pxetui.config import Config
from pxetui.menus import logargs
from pxetui.store import write_transaction

KINDS = ("linux", "efi", "iso", "wimboot", "local")
LOADERS = ("pxelinux", "grub", "ipxe")
# Firmware kinds a menu can be rendered for (option 93 -> kind: pxetui.archtypes.menu_family).
ARCHS = MENU_FAMILIES
LOCAL_ID = "local"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TEMPLATE = re.compile(r"\{(http|server|callback)\}")
_SEED_URL = "{http}/seed/"

# purpose ("callback" | "seed") -> a per-boot token (pxetui.tokens.Mint; not imported here: the
# model stays free of the state database).
Mint = Callable[[str], str]


class MenuError(ValueError):
    """A menu or entry that cannot be stored or rendered; the message names the field."""


def slug(text: str, fallback: str = "entry") -> str:
    """A safe entry id / ISO name: letters, digits, `._-`."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:64]
    return s if s and s[0].isalnum() else (fallback + ("-" + s if s else ""))[:64]


@dataclass
class Entry:
    id: str
    label: str
    kind: str = "linux"
    kernel: str = ""
    initrds: list[str] = field(default_factory=list)
    args: str = ""
    archs: list[str] = field(default_factory=lambda: ["bios", "uefi64"])
    source_iso: str | None = None
    notes: str = ""  # shown to the user: what to check, what is missing
    needs_review: bool = False  # an "unknown" entry the user should complete by hand
    seed_args: str = ""  # added to args when a seed (autoinstall/preseed/kickstart) is stored
    seeded: bool = False
    # Log arguments for the `logs` service (pxetui/menus/logargs.py): None follows
    # logs.menu_args, True/False is this entry's own choice.
    send_logs: bool | None = None
    # The boot loaders that can start it (pxelinux, grub, ipxe); empty: every loader whose
    # kind fits. ESXi's mboot and Proxmox's ISO-as-named-initrd need iPXE (docs/FIELD-NOTES.md).
    loaders: list[str] = field(default_factory=list)

    def check(self) -> list[str]:
        problems = []
        if not _ID_RE.match(self.id):
            problems.append(f"entry {self.id!r}: id must be 1..64 of letters, digits, '_.-'")
        if self.kind not in KINDS:
            problems.append(f"entry {self.id}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind in ("linux", "efi", "iso", "wimboot") and not self.kernel:
            problems.append(f"entry {self.id}: {self.kind} entry has no kernel/image")
        bad = [a for a in self.archs if a not in ARCHS]
        if bad:
            problems.append(f"entry {self.id}: unknown arch(s) {', '.join(bad)}; use {', '.join(ARCHS)}")
        if any(c in self.label for c in "\r\n"):
            problems.append(f"entry {self.id}: label has a line break")
        if any(c in self.args for c in "\r\n"):
            problems.append(f"entry {self.id}: arguments have a line break")
        bad_loaders = [x for x in self.loaders if x not in LOADERS]
        if bad_loaders:
            problems.append(f"entry {self.id}: unknown loader(s) {', '.join(bad_loaders)}; use {', '.join(LOADERS)}")
        if self.send_logs not in (None, True, False):
            problems.append(f"entry {self.id}: send_logs {self.send_logs!r} is not true, false or unset")
        return problems

    def full_args(self) -> str:
        """`args` with the seed arguments when seeded, before any `---`: d-i copies what
        follows it into the installed system's boot loader, and a seed URL (with its token)
        has no business there."""
        if not (self.seeded and self.seed_args):
            return self.args
        words = self.args.split()
        if "---" in words:
            i = words.index("---")
            return " ".join([*words[:i], self.seed_args, *words[i:]])
        return " ".join(a for a in (self.args, self.seed_args) if a)

    def boot_args(self, cfg: Config, mint: Mint | None = None, client_ip: str | None = None) -> str:
        """The expanded command line for one client: with its seed arguments only when the
        client's tokens can be minted (a shared menu must not carry a working seed URL)."""
        args = expand(self.full_args() if mint is not None else self.args, cfg, mint, client_ip)
        family = logargs.family_of(self.kind, self.kernel, self.args, self.seed_args)
        return logargs.add_log_args(args, family, cfg, client_ip, self.send_logs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def local_entry() -> Entry:
    return Entry(id=LOCAL_ID, label="Boot from local disk", kind="local",
                 archs=["bios", "uefi32", "uefi64", "arm64"])


@dataclass
class Menu:
    title: str = "pxetui boot menu"
    entries: list[Entry] = field(default_factory=lambda: [local_entry()])
    default: str = LOCAL_ID
    timeout: int = 10  # seconds; 0 = wait for the user
    serial: str = ""  # e.g. "0 115200": also draw the menu on that serial port

    def get(self, entry_id: str) -> Entry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def for_arch(self, arch: str) -> list[Entry]:
        return [e for e in self.entries if arch in e.archs]

    def for_loader(self, arch: str, kinds: tuple[str, ...], default: str | None = None,
                   loader: str = "") -> tuple[list[Entry], str]:
        """What one boot loader shows a firmware: the entries for `arch` whose kind it can boot,
        and the entry to start: `default` (a per-MAC override) when it is among them, else
        `default_for` among them. The one selection every renderer makes."""
        entries = [e for e in self.for_arch(arch) if e.kind in kinds
                   and (not loader or not e.loaders or loader in e.loaders)]
        chosen = default if default in {e.id for e in entries} else self.default_for(arch, entries)
        return entries, chosen

    def default_for(self, arch: str, among: list[Entry] | None = None) -> str:
        """The default entry if that firmware (and loader: `among`) can start it; else its
        sibling there (same ISO and label: memtest86+ has a BIOS and a UEFI entry); else local
        disk. A default the loader cannot show (wimboot under PXELINUX) must not be named, or
        the loader boots a label that is not in its file."""
        pool = self.for_arch(arch) if among is None else among
        e = self.get(self.default)
        if e is None:
            return LOCAL_ID
        if any(o.id == e.id for o in pool):
            return e.id
        twin = next((o for o in pool if o.label == e.label and o.source_iso == e.source_iso), None)
        return twin.id if twin is not None else LOCAL_ID

    def unique_id(self, want: str) -> str:
        base = slug(want)
        taken = {e.id for e in self.entries}
        if base not in taken:
            return base
        for n in range(2, 10000):
            cand = f"{base[:58]}-{n}"
            if cand not in taken:
                return cand
        raise MenuError(f"too many entries named like {base!r}")

    def add(self, entry: Entry) -> Entry:
        """Append (before the local-disk entry, which stays last); the id is made unique."""
        entry.id = self.unique_id(entry.id)
        problems = entry.check()
        if problems:
            raise MenuError("; ".join(problems))
        pos = next((i for i, e in enumerate(self.entries) if e.kind == "local"), len(self.entries))
        self.entries.insert(pos, entry)
        return entry

    def remove(self, entry_id: str) -> None:
        if entry_id == LOCAL_ID:
            raise MenuError("the local-disk entry cannot be removed")
        self.entries = [e for e in self.entries if e.id != entry_id]
        if self.default == entry_id:
            self.default = LOCAL_ID

    def check(self) -> list[str]:
        problems = [p for e in self.entries for p in e.check()]
        ids = [e.id for e in self.entries]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            problems.append(f"duplicate entry id(s): {', '.join(dup)}")
        if self.get(self.default) is None:
            problems.append(f"default: no entry {self.default!r}")
        if not 0 <= self.timeout <= 3600:
            problems.append(f"timeout: {self.timeout} is outside 0..3600 seconds")
        if not any(e.kind == "local" for e in self.entries):
            problems.append("no boot-from-local-disk entry")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Menu:
        m = cls(title=str(d.get("title", cls.title)), entries=[], default=str(d.get("default", LOCAL_ID)),
                timeout=int(d.get("timeout", 10)), serial=str(d.get("serial", "")))
        m.entries = [Entry.from_dict(e) for e in d.get("entries", [])]
        if not any(e.kind == "local" for e in m.entries):
            m.entries.append(local_entry())
        return m


def addresses(cfg: Config, client_ip: str | None) -> tuple[str, str]:
    """(HTTP base URL, server address) in the family `client_ip` came over: a client that
    reached us over IPv6 may have no IPv4 at all (docs/IPV6.md)."""
    http = cfg.http_base_for(client_ip)
    if http == cfg.http_base:
        return http, cfg.server_ip
    return http, cfg.server_ip6


def named_initrd(spec: str) -> tuple[str, str]:
    """(path in the initramfs, served path) of a Linux entry's initrd: `/proxmox.iso=iso/pve.iso`
    puts the file at /proxmox.iso (iPXE wraps it in a cpio header); a plain path is passed as is."""
    if spec.startswith("/") and "=" in spec:
        dest, _, path = spec.partition("=")
        return dest, path
    return "", spec


def served_initrd(spec: str, kind: str) -> str:
    """The served path (or URL template) of an entry's initrd spec: wimboot's `name=path` and a
    Linux entry's `/dest=path` name the file they fetch after the `=`."""
    if kind == "wimboot":
        return spec.partition("=")[2] or spec
    return named_initrd(spec)[1]


def expand(template: str, cfg: Config, mint: Mint | None = None, client_ip: str | None = None) -> str:
    """Fill `{http}` / `{server}` for the address this request came in on (and the family of
    `client_ip`), and `{callback}` and seed URLs with this boot's tokens (minted only if the
    template needs them)."""
    if mint is not None and _SEED_URL in template:
        template = template.replace(_SEED_URL, f"{_SEED_URL}{mint('seed')}/")
    http, server = addresses(cfg, client_ip)

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "callback":
            return f"{http}/callback/{mint('callback')}" if mint is not None else ""
        return http if name == "http" else server
    return _TEMPLATE.sub(value, template)


# -- storage (SQLite in the state dir; one transaction with the ISO library) ----------------

MENU_DDL = """
CREATE TABLE IF NOT EXISTS menu (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data TEXT NOT NULL,           -- Menu as JSON
    updated REAL NOT NULL
);
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    store.ensure_schema(conn, MENU_DDL)


def load_menu(conn: sqlite3.Connection) -> Menu:
    ensure_schema(conn)
    row = conn.execute("SELECT data FROM menu WHERE id = 1").fetchone()
    if row is None:
        return Menu()
    try:
        return Menu.from_dict(json.loads(row[0]))
    except (ValueError, TypeError) as exc:
        raise MenuError(f"stored menu is unreadable: {exc}") from None


def menu_updated(conn: sqlite3.Connection) -> float:
    ensure_schema(conn)
    row = conn.execute("SELECT updated FROM menu WHERE id = 1").fetchone()
    return float(row[0]) if row else 0.0


def save_menu(conn: sqlite3.Connection, menu: Menu) -> None:
    """Store the menu; the caller owns the transaction (so an ISO import is all or nothing)."""
    problems = menu.check()
    if problems:
        raise MenuError("; ".join(problems))
    ensure_schema(conn)
    conn.execute("INSERT OR REPLACE INTO menu(id, data, updated) VALUES (1, ?, ?)",
                 (json.dumps(menu.to_dict()), time.time()))


def update_menu(conn: sqlite3.Connection, change: Callable[[Menu], None]) -> Menu:
    """Load, change and store the menu in one transaction (the UI's editor, `menu set`);
    a MenuError from `change` or from validation leaves the stored menu as it was."""
    ensure_schema(conn)
    with write_transaction(conn):
        menu = load_menu(conn)
        change(menu)
        save_menu(conn, menu)
    return menu
