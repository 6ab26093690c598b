"""`pxetui doctor --self-test`: fetch from the running engine what each architecture would get,
as a client on the wire does, and say what failed in plain words.

No DHCP exchange: which file each architecture gets is the boot policy's answer
(pxetui/dhcp/policy.py, the one the DHCP service gives), read from the same config. Boot files
come over TFTP (tftpget.py), the iPXE script and the default menu entry's kernel and initrds over
HTTP. The engine never imports screens/: the UI runs `run()` in a worker."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pxetui import archtypes
from pxetui.config import Config
from pxetui.control import is_live, socket_path
from pxetui.dhcp.policy import BootPolicy, ClientFacts, is_url
from pxetui.doctor import tftpget
from pxetui.menus.model import LOCAL_ID, expand, load_menu, served_initrd
from pxetui.tftp.options import HEADERS

# The clients asked for: (kind, option 93, vendor class, iPXE).
CLIENTS: tuple[tuple[str, int | None, str | None, bool], ...] = (
    ("bios", 0, archtypes.PXE_CLIENT, False),
    ("uefi64", 7, archtypes.PXE_CLIENT, False),
    ("uefi32", 6, archtypes.PXE_CLIENT, False),
    ("arm64", 11, archtypes.PXE_CLIENT, False),
    (archtypes.HTTP_KIND, 16, archtypes.HTTP_CLIENT, False),
    ("ipxe", 7, archtypes.PXE_CLIENT, True),
)
WINDOWSIZE = 8
HTTP_TIMEOUT = 30.0
HTTP_CHUNK = 1 << 16
ISO_BYTES = 16 << 20  # an `iso` entry's image can be gigabytes: its first 16 MiB show it is served


@dataclass
class Fetch:
    what: str  # "bios boot file", "iPXE script", "kernel of entry X", ...
    url: str
    ok: bool
    size: int = 0
    seconds: float = 0.0
    detail: str = ""  # negotiated options, or partial
    error: str = ""  # plain words

    @property
    def mbps(self) -> float:
        return self.size / self.seconds / 1e6 if self.seconds > 0 else 0.0


@dataclass
class Report:
    server: str
    fetches: list[Fetch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not tried, and why
    problem: str = ""  # why nothing could be tried

    @property
    def ok(self) -> bool:
        return not self.problem and all(f.ok for f in self.fetches)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        for f, out in zip(self.fetches, d["fetches"], strict=True):
            out["mb_per_s"] = round(f.mbps, 2)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        """The `--json` document back as a report (the UI runs the self-test as a command)."""
        keys = set(Fetch.__dataclass_fields__)
        return cls(str(d.get("server", "")), [Fetch(**{k: v for k, v in f.items() if k in keys})
                                              for f in d.get("fetches", [])],
                   list(d.get("notes", [])), str(d.get("problem", "")))

    def lines(self) -> list[str]:
        out = [f"self-test against {self.server}" if self.server else "self-test"]
        if self.problem:
            out.append(f"  FAILED: {self.problem}")
        for f in self.fetches:
            if f.ok:
                out.append(f"  ok      {f.what}: {f.url}  {f.size:,} bytes in {f.seconds:.2f} s "
                           f"({f.mbps:.1f} MB/s){'  ' + f.detail if f.detail else ''}")
            else:
                out.append(f"  FAILED  {f.what}: {f.error}")
        out += [f"  note    {n}" for n in self.notes]
        out.append("everything a client needs was served" if self.ok else "some clients cannot boot: see FAILED above")
        return out


def _tftp(server: str, kind: str, name: str, blksize: int, root: Path) -> Fetch:
    url = f"tftp://{server}/{name}"
    try:
        got = tftpget.fetch(server, name, blksize=blksize, windowsize=WINDOWSIZE)
    except (tftpget.TftpFailed, OSError) as exc:
        err = str(exc)
        if "error 1" in err:  # RFC 1350 error 1: file not found
            err += (f". The {kind} boot file {name} is neither in the TFTP root {root} nor among the "
                    f"installed loaders: install it (pxetui doctor lists the loaders) or set dhcp.boot_files.{kind}")
        return Fetch(f"{kind} boot file", url, False, error=err)
    return Fetch(f"{kind} boot file", url, True, got.size, got.seconds,
                 f"blksize {got.blksize}, windowsize {got.windowsize}")


def _http(what: str, url: str, limit: int | None = None) -> Fetch:
    req = urllib.request.Request(url, headers={"User-Agent": "pxetui-self-test"})
    if limit:
        req.add_header("Range", f"bytes=0-{limit - 1}")
    t0 = time.monotonic()
    size = 0
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:  # noqa: S310 - our own server
            while chunk := r.read(HTTP_CHUNK):
                size += len(chunk)
    except urllib.error.HTTPError as exc:
        words = {404: "the server has no such file", 403: "the server refused it",
                 503: "the server is busy (too many connections)"}.get(exc.code, "the server failed it")
        return Fetch(what, url, False, error=f"{url}: HTTP {exc.code} {exc.reason}: {words}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Fetch(what, url, False, error=f"{url}: cannot fetch ({reason}): is the engine's HTTP "
                     "service running, or does a firewall drop its port? (pxetui doctor)")
    partial = f"first {size:,} bytes" if limit else ""
    return Fetch(what, url, True, size, time.monotonic() - t0, partial)


def _entry_urls(cfg: Config) -> tuple[list[tuple[str, str, int | None]], str]:
    """(what, url, byte limit) of the default entry's files, or why there are none."""
    if not cfg.db_path.exists():
        return [], "no menu yet (nothing imported): no kernel to fetch"
    from pxetui.iso.library import connect

    conn = connect(cfg)
    try:
        menu = load_menu(conn)
    finally:
        conn.close()
    e = menu.get(menu.default)
    if e is None or e.id == LOCAL_ID or e.kind == "local":
        return [], "the menu's default entry boots from the local disk: no kernel to fetch"

    def url(path: str) -> str:
        return expand(path, cfg) if "://" in path else f"{cfg.http_base}/{path.lstrip('/')}"
    if e.kind == "iso":
        return [(f"image of entry {e.id}", url(e.kernel), ISO_BYTES)], ""
    out: list[tuple[str, str, int | None]] = [(f"kernel of entry {e.id}", url(e.kernel), None)] if e.kernel else []
    for spec in e.initrds:
        out.append((f"initrd of entry {e.id}", url(served_initrd(spec, e.kind)), None))
    return out, ""


def run(cfg: Config, server: str | None = None) -> Report:
    """`cfg` as `pxetui serve` resolved it (server_ip, mtu); `server` to test another address."""
    server = server or cfg.server_ip
    report = Report(server)
    if not is_live(socket_path(cfg.state_dir)):
        report.problem = (f"the engine is not running (no live control socket in {cfg.state_dir}): "
                          "start it with pxetui serve, or pass the same --state-dir")
        return report
    policy = BootPolicy(cfg, proxy=cfg.dhcp.mode == "proxy")
    blksize = max(512, min(1468, cfg.mtu - HEADERS))
    seen: set[str] = set()
    for kind, arch, vendor, ipxe in CLIENTS:
        choice, _ = policy.decide(ClientFacts("00:00:00:00:00:00", arch, vendor, ipxe))
        name = choice.boot_file
        if not name:
            report.notes.append(f"{kind}: no boot file ({choice.reason})")
            continue
        # A default the root does not hold may still be served from the installed loaders
        # (pxetui/loaders.py); when it is not, that architecture was never set up: a note.
        guessed = kind not in cfg.dhcp.boot_files and "not found" in choice.reason
        if name in seen:
            continue
        seen.add(name)
        if is_url(name):
            what = "iPXE script" if kind == "ipxe" else f"{kind} boot file"
            got = _http(what, name)
        else:
            got = _tftp(server, kind, name.lstrip("/"), blksize, cfg.tftp_root)
        if guessed and not got.ok:
            report.notes.append(f"{kind}: nothing to serve ({choice.reason}, and no installed loader); "
                                f"{kind} clients will not boot unless you install one or set dhcp.boot_files.{kind}")
        else:
            report.fetches.append(got)
    files, why = _entry_urls(cfg)
    if why:
        report.notes.append(why)
    for what, url, limit in files:
        report.fetches.append(_http(what, url, limit))
    return report
