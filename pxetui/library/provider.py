"""Virtual files for TFTP and HTTP: generated menus, installed boot loaders, imported ISOs.

  pxelinux.cfg/default          PXELINUX menu (BIOS)
  pxelinux.cfg/01-<mac>         per-machine menu, only for a MAC with a host override (its
                                default entry); any other MAC is "not found" at once, as
                                pxelinux probes ~14 names before `default` (docs/FIELD-NOTES.md)
  grub/grub.cfg, grub.cfg       GRUB menu (UEFI); grub/ is the signed network GRUB's prefix
  debian-installer/arm64/grub/grub.cfg   the arm64 menu, where Debian's arm64 netboot GRUB reads it
  boot.ipxe                     iPXE script for the asking client
  pxelinux.0, grubx64.efi, ...  boot loaders found by pxetui.loaders (and the arm64
                                installer's debian-installer/arm64/linux, initrd.gz)
  iso/<name>.iso                a whole imported image
  iso/<name>/<path>             one file inside it, served from its byte extent in the .iso
  iso/<name>/pxetui/<boot.cfg>  an ESXi image's boot.cfg rewritten for HTTP (pxetui.iso.esxi)

Every Source returned here carries its open fd (files.Source): boot loaders are opened once by
their real path, images by their pinned path (docs/SECURITY.md, "Files cannot be swapped under
us"). An image that is no longer the file imported is refused, with an Alert and a Log naming
it, and nothing more is served from it until it is imported again.

A real file under the served root wins over all of these (files.Resolver checks it first);
`effective_sources()` tells the UI which one is in effect. Menus are rendered per request with
the address the request came in on (`cfg.http_base`, `cfg.server_ip`), in the client's family
(an IPv6 client's URLs are `http://[server_ip6]`: menus.model.addresses).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass

from pxetui import archtypes, store, tokens
from pxetui.config import Config, normalize_mac
from pxetui.events import Alert, Event, Log
from pxetui.files import Client, FileLookupError, Forbidden, Provider, Resolver, Source, virtual
from pxetui.iso import esxi, library
from pxetui.iso.reader import IsoFile
from pxetui.loaders import Loaders, find_loaders
from pxetui.menus import model, render_grub, render_ipxe, render_pxelinux, seeds
from pxetui.menus.model import Menu
from pxetui.safeopen import FILE_FLAGS, PinMismatch

log = logging.getLogger("pxetui.library.provider")

PXELINUX_DEFAULT = "pxelinux.cfg/default"
# The arm64 netboot GRUB (debian-installer-12-netboot-arm64's grubaa64.efi) has prefix
# /debian-installer/arm64/grub: only arm64 clients read it, so it always gets the arm64 menu.
ARM64_GRUB_CFG = "debian-installer/arm64/grub/grub.cfg"
GRUB_CFGS = ("grub/grub.cfg", "grub.cfg", ARM64_GRUB_CFG)
IPXE_SCRIPT = "boot.ipxe"
GENERATED = (PXELINUX_DEFAULT, *GRUB_CFGS, IPXE_SCRIPT)
_RECHECK = 1.0  # seconds between checks that the state database changed


@dataclass
class _Iso:
    record: library.IsoRecord
    files: dict[str, IsoFile]
    lower: dict[str, str]
    problem: str | None  # set once the .iso is not the pinned file: serve nothing from it
    reported: bool = False  # the Alert for `problem` went out with a refusal (once per process)


class LibraryState:
    """The menu, host overrides and ISO index from the state DB, re-read when another process
    commits (`PRAGMA data_version`), at most once a second."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None
        self.version: int | None = None
        self.checked = 0.0
        self.menu = Menu()
        self.updated = 0.0
        self.isos: dict[str, _Iso] = {}
        self.overrides: dict[str, dict[str, str | None]] = {}

    def _connect(self) -> sqlite3.Connection | None:
        if self.conn is None:
            if not self.cfg.db_path.exists():
                return None  # nothing imported yet: do not create a state dir just to read it
            self.conn = store.connect(self.cfg.db_path)
        return self.conn

    def refresh(self, force: bool = False) -> LibraryState:
        with self.lock:
            now = time.monotonic()
            if not force and now - self.checked < _RECHECK:
                return self
            self.checked = now
            conn = self._connect()
            if conn is None:
                return self
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self.version and not force:
                return self
            self.version = version
            self._load(conn)
        return self

    def _load(self, conn: sqlite3.Connection) -> None:
        self.menu = model.load_menu(conn)
        self.updated = model.menu_updated(conn)
        self.overrides = {mac: {"entry": r["entry"], "boot_once": r["boot_once"]}
                          for mac, r in store.host_overrides(conn).items()}
        isos: dict[str, _Iso] = {}
        for rec in library.list_isos(conn, self.menu):  # the menu just loaded, not a second parse
            old = self.isos.get(rec.name)
            # Leases and overrides share the database: most changes are not the library's,
            # so a stored index already loaded is kept (it changes only with a new import).
            if old is not None and old.record.imported == rec.imported:
                # Also its problem: a swapped image stays refused until it is imported again,
                # even if the original comes back.
                files, lower, problem = old.files, old.lower, old.problem
            else:
                files = library.load_files(conn, rec.name)
                lower = {p.lower(): p for p in files}
                unpinned = rec.unpinned()
                problem = f"ISO {rec.name}: {unpinned}" if unpinned else None
            isos[rec.name] = _Iso(rec, files, lower, problem)
        self.isos = isos

    def per_mac_default(self, mac: str | None) -> str | None:
        if not mac:
            return None
        o = self.overrides.get(mac)
        if not o:
            return None
        return o.get("boot_once") or o.get("entry")


_STATES: dict[tuple[str, str, int], LibraryState] = {}
_STATES_LOCK = threading.Lock()


def state_for(cfg: Config) -> LibraryState:
    """One cached state per state dir (and address: menus are rendered for it)."""
    key = (str(cfg.db_path), cfg.server_ip, cfg.http.port)
    with _STATES_LOCK:
        st = _STATES.get(key)
        if st is None:
            st = _STATES[key] = LibraryState(cfg)
    return st.refresh()


class MenuProvider:
    def __init__(self, state: LibraryState) -> None:
        self.state = state

    def lookup(self, path: str, client: Client) -> Source | None:
        st = self.state.refresh()
        cfg = st.cfg
        # Every menu is rendered for the machine that asks, attributed by its address (a TFTP
        # request names no MAC): its per-MAC default and its per-boot tokens (pxetui.tokens).
        if path == PXELINUX_DEFAULT:
            owner, mint = tokens.for_request(cfg, client.ip, client.mac)
            default = st.per_mac_default(owner)
            text = tokens.rendered(lambda m: render_pxelinux.render(st.menu, cfg, default, m, client.ip), mint)
            return virtual(path, text.encode(), st.updated)
        if path.startswith("pxelinux.cfg/01-"):
            try:
                mac = normalize_mac(path[len("pxelinux.cfg/01-"):])
            except ValueError:
                return None
            default = st.per_mac_default(mac)
            if default is None:
                return None
            owner, mint = tokens.for_request(cfg, client.ip, mac)
            text = tokens.rendered(lambda m: render_pxelinux.render(st.menu, cfg, default, m, client.ip),
                                   mint if owner == mac else None)
            return virtual(path, text.encode(), st.updated)
        if path in GRUB_CFGS:
            kind = "arm64" if path == ARM64_GRUB_CFG else archtypes.menu_family(client.arch)
            arch = kind if kind in ("uefi32", "uefi64", "arm64") else "uefi64"
            owner, mint = tokens.for_request(cfg, client.ip, client.mac)
            default = st.per_mac_default(owner)
            text = tokens.rendered(lambda m: render_grub.render(st.menu, cfg, arch, default, m, client.ip), mint)
            return virtual(path, text.encode(), st.updated)
        if path == IPXE_SCRIPT:
            return virtual(path, ipxe_script(cfg, client.mac, client.arch, client.ip).encode())
        return None


class LoaderProvider:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        # Built here, at service start, if Debian's signed GRUB is missing: never in the middle
        # of a client's transfer.
        self.loaders: Loaders = find_loaders(state_dir=cfg.state_path / "cache", build_grub=True)

    def lookup(self, path: str, client: Client) -> Source | None:
        # Only the fixed names of pxetui.loaders (a few, like debian-installer/arm64/linux,
        # have a directory) and modules at the root: never a path the client made up.
        real = self.loaders.path(path)
        if real is None:
            return None
        # Chosen by the engine in system directories, not by the client: symlinks installed by
        # packages (shim's .signed -> .latest) are followed, but the file is opened once and
        # what is announced is the fstat of that fd.
        try:
            fd = os.open(real, FILE_FLAGS)
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return Source(name=path, size=st.st_size, mtime=st.st_mtime, path=real, origin="file", fd=fd)


class IsoProvider:
    def __init__(self, state: LibraryState) -> None:
        self.state = state

    def lookup(self, path: str, client: Client) -> Source | None:
        if not path.startswith("iso/"):
            return None
        st = self.state.refresh()
        rest = path[4:]
        if "/" not in rest:
            if not rest.endswith(".iso"):
                return None
            iso = st.isos.get(rest[:-4])
            if iso is None:
                return None
            rec = iso.record
            fd = self._open(iso, path)
            return Source(name=path, size=rec.size, mtime=rec.mtime, path=rec.path, origin="iso", fd=fd)
        name, inner = rest.split("/", 1)
        iso = st.isos.get(name)
        if iso is None:
            return None
        if iso.record.family == "esxi" and inner.startswith(f"{esxi.REWRITTEN_DIR}/"):
            return self._esxi_cfg(iso, path, inner[len(esxi.REWRITTEN_DIR) + 1:], client)
        f = iso.files.get(inner) or iso.files.get(iso.lower.get(inner.lower(), ""))
        if f is None or not f.contiguous:
            return None  # a file in non-adjacent runs cannot be one byte range (never seen in practice)
        fd = self._open(iso, path)
        return Source(name=path, size=f.size, mtime=iso.record.mtime, path=iso.record.path,
                      offset=f.offset, origin="iso", fd=fd)

    def _esxi_cfg(self, iso: _Iso, path: str, inner: str, client: Client) -> Source | None:
        """ESXi's boot.cfg with prefix= this server's tree for the image, in the client's
        family (pxetui.iso.esxi): read from the pinned .iso, rewritten per request."""
        if not esxi.is_boot_cfg(inner):
            return None
        f = iso.files.get(inner) or iso.files.get(iso.lower.get(inner.lower(), ""))
        if f is None or not f.contiguous or f.size > esxi.MAX_BOOT_CFG:
            return None
        fd = self._open(iso, path)
        try:
            data = os.pread(fd, f.size, f.offset)
        finally:
            os.close(fd)
        prefix = f"{self.state.cfg.http_base_for(client.ip)}/iso/{iso.record.name}"
        ks = self._esxi_kickstart(iso, inner, client)
        text = esxi.rewrite_boot_cfg(data.decode("utf-8", "replace"), prefix, ks)
        return virtual(path, text.encode(), iso.record.mtime)

    def _esxi_kickstart(self, iso: _Iso, inner: str, client: Client) -> str | None:
        """The seed URL of the machine's `ks.cfg`, else of the entry's (the BIOS or the UEFI one,
        by the boot.cfg asked for), with this boot's seed token; None when neither is stored or
        the asking machine cannot be attributed (then it installs interactively, as every
        family does without its token: docs/SECURITY.md)."""
        cfg = self.state.cfg
        owner, mint = tokens.for_request(cfg, client.ip, client.mac)
        if mint is None or owner is None or not cfg.db_path.exists():
            return None
        entry = f"{iso.record.name}-{'uefi' if inner.lower().startswith('efi/') else 'bios'}"
        conn = store.connect(cfg.db_path)
        try:
            key = (owner if seeds.get_seed(conn, owner, esxi.KICKSTART) is not None
                   else entry if seeds.get_seed(conn, None, f"{entry}/{esxi.KICKSTART}") is not None
                   else None)
        finally:
            conn.close()
        if key is None:
            return None
        try:
            token = mint("seed")
        except tokens.TokenUnavailable as exc:
            log.error("%s; %s gets ESXi's boot.cfg without its kickstart", exc, owner)
            return None
        return f"{cfg.http_base_for(client.ip)}/seed/{token}/{key}/{esxi.KICKSTART}"

    @staticmethod
    def _open(iso: _Iso, path: str) -> int:
        """The image, opened per request and checked against its pin on the fd. Measured:
        ~9 us an open, against ~6.5 us for a cached fd (dup, fstat, and an lstat of the path,
        without which a cached fd would never notice the swap). Forbidden once it is not the
        file imported; the first refusal carries the Alert and the Log for the server to emit."""
        rec = iso.record
        if iso.problem is None:
            try:
                fd, _ = rec.open()
            except PinMismatch as exc:
                iso.problem = (f"ISO {rec.name}: {exc.path} {exc.reason}; nothing is served from "
                               "it until it is imported again")
            else:
                return fd
        if iso.reported:
            raise Forbidden(path, iso.problem)
        iso.reported = True
        events: list[Event] = [
            Alert(key=f"iso-changed:{rec.name}", severity="error", message=iso.problem),
            Log(level_name="error", message=f"refused {path}: {iso.problem}"),
        ]
        raise Forbidden(path, iso.problem, events)


def virtual_providers(cfg: Config) -> list[Provider]:
    state = state_for(cfg)
    return [MenuProvider(state), LoaderProvider(cfg), IsoProvider(state)]


def ipxe_script(cfg: Config, mac: str | None, arch: int | None, client_ip: str | None) -> str:
    """The iPXE menu for one client: its architecture's entries, its per-MAC default."""
    st = state_for(cfg)
    base = cfg.http_base_for(client_ip)  # chained back over the family it came in on (docs/IPV6.md)
    if arch is None:
        # The script was fetched without `arch=`: ask again with iPXE's own build facts. The
        # setting survives the chain, so a server that still cannot tell gets the BIOS menu
        # instead of a loop. A failed fetch (the HTTP service restarting, a lost connection) is
        # tried once more after a pause: iPXE would otherwise stop at a prompt nobody sees.
        again = (f"chain --replace --autofree {base}/{IPXE_SCRIPT}?mac=${{net0/mac}}"
                 "&arch=${buildarch}&platform=${platform}")
        return "\n".join([
            "#!ipxe",
            "isset ${pxetui-asked} && goto menu ||",
            "set pxetui-asked 1",
            f"{again} || goto retry",
            ":retry",
            "echo pxetui: the boot menu did not load, trying again in 3 s",
            "sleep 3",
            f"{again} || goto menu",
            ":menu",
            "chain --replace --autofree "
            f"{base}/{IPXE_SCRIPT}?mac=${{net0/mac}}&arch=0",
            "",
        ])
    kind = archtypes.menu_family(arch)
    owner, mint = tokens.for_request(cfg, client_ip, mac)  # `mac` is a claim: see pxetui.tokens
    firmware, default = kind if kind != "unknown" else "bios", st.per_mac_default(owner)
    return tokens.rendered(lambda m: render_ipxe.render(st.menu, cfg, firmware, default, m, client_ip), mint)


def seed_file(cfg: Config, mac: str | None, name: str) -> bytes | None:
    if not cfg.db_path.exists():
        return None
    conn = store.connect(cfg.db_path)
    try:
        return seeds.get_seed(conn, mac, name)
    finally:
        conn.close()


def effective_sources(cfg: Config) -> dict[str, str]:
    """For each generated name: "file: <path>" when a real file in the root wins ("refused:
    <why>" when it wins but cannot be served), else "generated" (menus), "package: <path>"
    (boot loaders) or "missing: <what to install>"."""
    tftp = Resolver(cfg.tftp_root)
    http = Resolver(cfg.http_root)
    out: dict[str, str] = {}

    def real(res: Resolver, name: str) -> str | None:
        try:
            with res.resolve(name) as src:
                return f"file: {src.path}"
        except Forbidden as exc:  # a real file that wins but is refused: clients get an error
            return f"refused: {exc.reason}"
        except (FileLookupError, OSError):
            return None

    for name in GENERATED:
        res = http if name == IPXE_SCRIPT else tftp
        out[name] = real(res, name) or "generated"
    loaders = find_loaders(state_dir=cfg.state_path / "cache")
    for name, f in loaders.found.items():
        p = real(tftp, name)
        if p:
            out[name] = p
        elif f.path:
            out[name] = f"package: {f.path}"
        else:
            out[name] = f"missing: {f.remedy()}"
    tftp.close()
    http.close()
    return out
