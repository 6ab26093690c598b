"""Least privilege: who the services run as, dropping to it, and what that identity can read.

Sockets are opened as root; then each service process becomes the unprivileged service user
(`security.user`, default `pxetui`; `nobody` when that user does not exist) with no
capabilities left and no way to gain any (no_new_privs). See docs/SECURITY.md, "Least privilege".
Capability and prctl calls go through ctypes: the stdlib has neither, and no dependency is worth it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import grp
import logging
import os
import pwd
import signal
import stat
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from pxetui.config import Config

log = logging.getLogger("pxetui.privileges")

FALLBACK_USER = "nobody"
FALLBACK_GROUPS = ("nogroup", "nobody")

# <linux/prctl.h>, <linux/capability.h>
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522


class PrivilegeError(OSError):
    """Dropping privileges failed or did not stick: the service must not go on serving (an
    OSError, so service hosts report it as "cannot start", like a failed bind)."""


@dataclass(frozen=True)
class Identity:
    name: str
    uid: int
    gid: int


def service_identity(cfg: Config) -> Identity | None:
    """The identity services drop to; None when there is nothing to drop (not root, or
    `security.user = "root"`, which is logged as a warning every time)."""
    if os.geteuid() != 0:
        return None
    name = cfg.security.user
    if name == "root":
        log.warning("security.user is root: services keep every privilege (docs/SECURITY.md)")
        return None
    try:
        pw = pwd.getpwnam(name)
        return Identity(pw.pw_name, pw.pw_uid, pw.pw_gid)
    except KeyError:
        pass
    try:
        pw = pwd.getpwnam(FALLBACK_USER)
    except KeyError:
        raise PrivilegeError(f"security.user: neither {name!r} nor {FALLBACK_USER!r} exists; create "
                             f"{name!r} (scripts/setup.sh does) or name an existing user") from None
    gid = pw.pw_gid
    for group in FALLBACK_GROUPS:
        with contextlib.suppress(KeyError):
            gid = grp.getgrnam(group).gr_gid
            break
    log.info("security.user %r does not exist: services run as %s", name, FALLBACK_USER)
    return Identity(pw.pw_name, pw.pw_uid, gid)


# -- prctl / capset through ctypes ------------------------------------------------------------

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    c = _c()
    c.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    c.prctl.restype = ctypes.c_int
    res = int(c.prctl(option, arg2, arg3, arg4, arg5))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return res


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _capset_none() -> None:
    """Empty effective, permitted and inheritable sets of this thread (capset(2), version 3)."""
    hdr = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _c().capset(ctypes.byref(hdr), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40  # CAP_CHECKPOINT_RESTORE, the last one as of Linux 5.9


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel to send `sig` when the parent dies (PR_SET_PDEATHSIG), then close the race:
    if the parent already died before the call, getppid() no longer names it, so exit now.
    The setting is cleared by setuid/setgid: call again after drop_privileges (prctl(2))."""
    _prctl(PR_SET_PDEATHSIG, sig)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def status_fields(pid: int | str = "self") -> dict[str, str]:
    """/proc/PID/status as a dict (Uid, Gid, CapEff, CapPrm, NoNewPrivs, ...)."""
    out: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def drop_privileges(ident: Identity) -> None:
    """Become `ident` for good: no supplementary groups, every uid/gid, no capabilities in any
    set (bounding included), no_new_privs. Raises PrivilegeError when any of it did not stick."""
    try:
        _prctl(PR_SET_KEEPCAPS, 0)
        # The bounding set needs CAP_SETPCAP, so it goes first; with it empty, nothing this
        # process or a child ever execs can regain a capability.
        for cap in range(_last_cap() + 1):
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: a capability this kernel does not have
                    raise
        os.setgroups([])
        os.setresgid(ident.gid, ident.gid, ident.gid)
        os.setresuid(ident.uid, ident.uid, ident.uid)
        # The uid change already emptied permitted/effective (capabilities(7)); make it explicit.
        _capset_none()
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as exc:
        raise PrivilegeError(f"cannot drop privileges to {ident.name}: {exc}") from exc
    _verify(ident)


def _verify(ident: Identity) -> None:
    problems = []
    if os.getresuid() != (ident.uid,) * 3:
        problems.append(f"uids {os.getresuid()}")
    if os.getresgid() != (ident.gid,) * 3:
        problems.append(f"gids {os.getresgid()}")
    if os.getgroups() not in ([], [ident.gid]):
        problems.append(f"groups {os.getgroups()}")
    try:
        os.setuid(0)
        problems.append("setuid(0) succeeded")
    except PermissionError:
        pass
    st = status_fields()
    for key in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
        if int(st.get(key, "0"), 16) != 0:
            problems.append(f"{key} {st[key]}")
    if st.get("NoNewPrivs") != "1":
        problems.append("no_new_privs not set")
    if problems:
        raise PrivilegeError(f"privileges not dropped to {ident.name}: {', '.join(problems)}")


# -- what an identity can read ----------------------------------------------------------------

# <linux/posix_acl.h> tags and the xattr layout (<linux/posix_acl_xattr.h>)
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 16, 32
_ACL_XATTR = "system.posix_acl_access"


def _acl(path: str) -> list[tuple[int, int, int]] | None:
    """POSIX ACL entries (tag, perm, id), or None when the file has only its mode bits."""
    try:
        raw = os.getxattr(path, _ACL_XATTR, follow_symlinks=False)
    except OSError:
        return None
    if len(raw) < 4 or (len(raw) - 4) % 8:
        return None
    return [struct.unpack_from("<HHI", raw, off) for off in range(4, len(raw), 8)]


def may(path: str, st: os.stat_result, ident: Identity, want: int) -> bool:
    """Whether `ident` (uid, primary gid only: services drop supplementary groups) has every
    permission in `want` (4 read, 2 write, 1 search) on the file, as Linux decides it
    (fs/namei.c acl_permission_check): owner bits alone for the owner; else the POSIX ACL, but
    only while its mask (the mode's group bits) is not empty; else the group bits for the
    owning group, else other. Not modelled: LSMs (AppArmor, SELinux), mount options."""
    if ident.uid == 0:
        return True
    if ident.uid == st.st_uid:
        return (st.st_mode >> 6) & want == want
    acl = _acl(path) if st.st_mode & 0o070 else None
    if acl is not None:
        mask = next((p for t, p, _ in acl if t == ACL_MASK), 7)
        for tag, perm, qid in acl:
            if tag == ACL_USER and qid == ident.uid:
                return perm & mask & want == want
        groups = [p for t, p, q in acl
                  if (t == ACL_GROUP_OBJ and st.st_gid == ident.gid) or (t == ACL_GROUP and q == ident.gid)]
        if groups:
            return any(p & mask & want == want for p in groups)
        other = next((p for t, p, _ in acl if t == ACL_OTHER), st.st_mode & 7)
        return other & want == want
    if ident.gid == st.st_gid:
        return (st.st_mode >> 3) & want == want
    return st.st_mode & want == want


def _first_denied(path: str | Path, ident: Identity, want_last: int | None = None) -> str | None:
    """The first component of `path` that `ident` cannot get through: a directory on the way it
    cannot search (+x), or the path itself lacking `want_last` (default: +r for a file, +rx for
    a directory). None when nothing stops it. Symlinks are resolved first: the kernel checks
    their targets' directories."""
    real = os.path.realpath(path)
    parts = Path(real).parts
    current = "/"
    for i, part in enumerate(parts):
        current = os.path.join(current, part) if i else "/"
        try:
            st = os.stat(current)
        except OSError:
            return current
        if i < len(parts) - 1:
            if not may(current, st, ident, 1):
                return current
            continue
        want = want_last if want_last is not None else (5 if stat.S_ISDIR(st.st_mode) else 4)
        if not may(current, st, ident, want):
            return current
    return None


def unreadable_part(path: str | Path, ident: Identity) -> str | None:
    """Where `ident` is stopped on its way to reading `path` (None: it can read it)."""
    return _first_denied(path, ident)


def readable_by(path: str | Path, ident: Identity) -> bool:
    """Can `ident` open `path` for reading: every directory on the way searchable, the file
    readable (mode bits and POSIX ACLs; not LSMs such as AppArmor or SELinux)."""
    return unreadable_part(path, ident) is None


def how_to_grant(path: str | Path, ident: Identity) -> str:
    """One line naming what `ident` cannot get through and the fixes."""
    part = unreadable_part(path, ident) or str(path)
    verb = "search" if Path(part) != Path(os.path.realpath(path)) else "read"
    bit = "x" if verb == "search" else ("rx" if os.path.isdir(part) else "r")
    return (f"{path}: the service user {ident.name} cannot {verb} {part}; fix with "
            f"`chmod o+{bit} {part}` or `setfacl -m u:{ident.name}:{bit} {part}`, "
            f"or keep it in a directory {ident.name} can traverse")


# -- the state directory ----------------------------------------------------------------------

PRIVATE_FILES = ("pxetui.db",)  # seeds live in its menu_seeds table (pxetui/menus/seeds.py)


def secure_state_dir(cfg: Config, ident: Identity | None) -> None:
    """State dir 0700 and, when services drop to `ident`, owned by it all the way down (they
    write leases, pcaps, uploads and built loaders there); the database 0600.

    Runs as root over a directory an earlier (compromised) service could have written to, so
    nothing is followed: symlinks and non-regular files are left alone, and a regular file with
    more than one link (maybe a hard link to a root file) is not chowned."""
    top = cfg.state_path
    top.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, 0o700)
        for name in PRIVATE_FILES + tuple(f"{f}-{s}" for f in PRIVATE_FILES for s in ("wal", "shm")):
            try:
                ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
            except OSError:
                continue  # absent (or a symlink: not ours to touch)
            try:
                if stat.S_ISREG(os.fstat(ffd).st_mode):
                    os.fchmod(ffd, 0o600)
            finally:
                os.close(ffd)
    finally:
        os.close(fd)
    if ident is not None:
        chown_tree(top, ident)


def chown_tree(top: Path, ident: Identity) -> list[str]:
    """chown -R without following anything; returns what it left alone (and why)."""
    skipped: list[str] = []
    for _dirpath, _dirs, files, dfd in os.fwalk(top, follow_symlinks=False):
        os.fchown(dfd, ident.uid, ident.gid)
        for name in files:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISSOCK(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    continue  # the control socket stays root's; a link's owner means nothing here
                if not stat.S_ISREG(st.st_mode):
                    skipped.append(f"{name}: not a regular file")
                    continue
                ffd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dfd)
            except OSError:
                continue  # gone or changed under us: nothing to give away
            try:
                fst = os.fstat(ffd)
                if fst.st_nlink > 1:
                    skipped.append(f"{name}: {fst.st_nlink} hard links")
                elif (fst.st_uid, fst.st_gid) != (ident.uid, ident.gid):
                    os.fchown(ffd, ident.uid, ident.gid)
            finally:
                os.close(ffd)
    for s in skipped:
        log.warning("state dir: not chowned to %s: %s", ident.name, s)
    return skipped


def hand_over_empty_dir(path: str | Path, ident: Identity) -> bool:
    """chown an empty, root-owned, real directory (e.g. the TFTP uploads directory the service
    just created) to `ident`, which must write there. A directory with anything in it is the
    admin's to grant: nothing of theirs is given away."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if st.st_uid != 0 or os.listdir(fd):
            return False
        os.fchown(fd, ident.uid, ident.gid)
        return True
    finally:
        os.close(fd)


def writable_by(path: str | Path, ident: Identity) -> bool:
    """Can `ident` create files in directory `path` (every directory on the way searchable,
    the directory itself writable and searchable)."""
    return _first_denied(path, ident, 3) is None


def drop_for_service(cfg: Config, name: str, parent: int | None = None) -> Identity | None:
    """What a service process does once its sockets are open: hand what it made as root in the
    state directory (a GRUB image, a new database) to the service user, drop to that user, and
    re-arm the parent-death signal (a uid change clears it, prctl(2)). None: nothing dropped."""
    ident = service_identity(cfg)
    if ident is None:
        return None
    secure_state_dir(cfg, ident)
    if name == "tftp" and cfg.tftp.uploads_dir:
        hand_over_empty_dir(cfg.tftp.uploads_dir, ident)
    drop_privileges(ident)
    if parent is not None:
        die_with_parent(signal.SIGTERM, parent)
    return ident


def make_served_dir(path: str | Path) -> None:
    """Create a missing TFTP/HTTP root (and its missing parents) 0755: its files are served to
    anyone on the LAN anyway, and the unprivileged services must get through (umask is 077)."""
    p = Path(path)
    missing = []
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir()
            os.chmod(d, 0o755)


def code_paths() -> list[Path]:
    """Where pxetui's code and the Python it runs on live (stdlib, site-packages)."""
    import sysconfig

    import pxetui

    paths = {Path(pxetui.__file__).resolve().parent}
    for key in ("stdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(Path(sysconfig.get_paths()[key]))
    return sorted(p for p in paths if p.exists())


def code_problems(ident: Identity) -> list[str]:
    """Services import modules lazily after they dropped root: pxetui's code and the Python
    libraries it uses must be readable by the service user, or a service dies mid-request."""
    return [f"pxetui's code: {how_to_grant(p, ident)}" for p in code_paths() if not readable_by(p, ident)]


def grant_search(directory: str | Path, ident: Identity) -> None:
    """Add a POSIX ACL entry `u:<ident>:x` to `directory` (what `setfacl -m u:NAME:x` does,
    without needing the acl package): search only, for the service user only, no listing."""
    path = str(directory)
    st = os.stat(path)
    acl = _acl(path)
    if acl is None:  # the mode bits as the three base entries (acl(5))
        m = st.st_mode
        acl = [(ACL_USER_OBJ, (m >> 6) & 7, 0xFFFFFFFF), (ACL_GROUP_OBJ, (m >> 3) & 7, 0xFFFFFFFF),
               (ACL_OTHER, m & 7, 0xFFFFFFFF)]
    entries = {(t, q): p for t, p, q in acl if t != ACL_MASK}
    entries[(ACL_USER, ident.uid)] = entries.get((ACL_USER, ident.uid), 0) | 1
    group_class = [p for (t, _), p in entries.items() if t in (ACL_USER, ACL_GROUP_OBJ, ACL_GROUP)]
    mask = 0
    for p in group_class:
        mask |= p
    entries[(ACL_MASK, 0xFFFFFFFF)] = mask
    raw = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", t, p, q) for (t, q), p in sorted(entries.items()))
    os.setxattr(path, _ACL_XATTR, raw, follow_symlinks=False)


def grant_code(ident: Identity) -> list[str]:
    """Let `ident` search every directory that stops it from reading pxetui's code (a checkout
    or Python under /root, say): used by scripts/setup.sh. Returns the directories changed."""
    changed = []
    for _ in range(64):  # each pass unblocks one directory; paths are not that deep
        blocked = None
        for p in code_paths():
            part = unreadable_part(p, ident)
            if part is not None and os.path.isdir(part) and os.path.realpath(part) != os.path.realpath(p):
                blocked = part
                break
        if blocked is None:
            break
        try:
            grant_search(blocked, ident)
            changed.append(f"{blocked} (ACL u:{ident.name}:x)")
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            allow_search(blocked)  # no ACLs on this file system: search for everyone, no listing
            changed.append(f"{blocked} (chmod o+x: its file system takes no ACLs)")
    return changed


def _main(argv: list[str]) -> int:
    """`python -m pxetui.privileges grant-code USER`: scripts/setup.sh's step (as root)."""
    if len(argv) != 2 or argv[0] != "grant-code":
        print("usage: python -m pxetui.privileges grant-code USER", file=sys.stderr)
        return 2
    try:
        pw = pwd.getpwnam(argv[1])
    except KeyError:
        print(f"no user {argv[1]!r}", file=sys.stderr)
        return 1
    ident = Identity(pw.pw_name, pw.pw_uid, pw.pw_gid)
    for d in grant_code(ident):
        print(f"granted {ident.name} search on {d}: pxetui's code or Python lives below it")
    problems = code_problems(ident)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))


def allow_search(directory: str | Path) -> None:
    """o+x on a directory of ours (search, no listing): the services get through to what is
    below it that they may read."""
    os.chmod(directory, os.stat(directory).st_mode & 0o7777 | 0o001)


def share_tree(top: str | Path) -> None:
    """Make served content (the lab's boot files, a test ISO) readable by anyone: o+rx on
    directories, o+r on files, nothing followed. For content that is public by nature: a TFTP
    and HTTP server hands it to every host on the LAN anyway."""
    if not os.path.isdir(top):
        if os.path.isfile(top) and not os.path.islink(top):
            os.chmod(top, os.stat(top).st_mode & 0o7777 | 0o004)
        return
    for _dirpath, _dirs, files, dfd in os.fwalk(top, follow_symlinks=False):
        os.fchmod(dfd, os.fstat(dfd).st_mode & 0o7777 | 0o005)
        for name in files:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
                try:
                    os.fchmod(fd, os.fstat(fd).st_mode & 0o7777 | 0o004)
                finally:
                    os.close(fd)


def drop_for_worker(cfg: Config, parent: int) -> None:
    """A TFTP worker process, its socket bound: the same drop as its service (which hands the
    state dir over in its own ready()). Also what makes PR_SET_PDEATHSIG work for it at all:
    the kernel checks kill permission from the dying parent, and an unprivileged service
    cannot signal a root worker."""
    ident = service_identity(cfg)
    if ident is None:
        return
    drop_privileges(ident)
    die_with_parent(signal.SIGTERM, parent)
