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


class PrivilegeError(RuntimeError):
    """Dropping privileges failed or did not stick: the service must not go on serving."""


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
    permission in `want` (4 read, 2 write, 1 search) on the file, as the kernel decides it:
    owner bits alone for the owner, else a named-user ACL entry, else the group class, else
    other (acl(5), "access check algorithm")."""
    if ident.uid == 0:
        return True
    if ident.uid == st.st_uid:
        return (st.st_mode >> 6) & want == want
    acl = _acl(path)
    if acl is None:
        if ident.gid == st.st_gid:
            return (st.st_mode >> 3) & want == want
        return st.st_mode & want == want
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


def unreadable_part(path: str | Path, ident: Identity) -> str | None:
    """The first component of `path` that `ident` cannot get through: a directory it cannot
    search (+x), or the file itself it cannot read (+r; a directory also needs +x). None when
    it can read it. Symlinks are resolved first: the kernel checks their targets' directories."""
    real = os.path.realpath(path)
    parts = Path(real).parts
    current = "/"
    for i, part in enumerate(parts):
        current = os.path.join(current, part) if i else "/"
        try:
            st = os.stat(current)
        except OSError:
            return current
        last = i == len(parts) - 1
        if not last:
            if not may(current, st, ident, 1):
                return current
            continue
        want = 5 if stat.S_ISDIR(st.st_mode) else 4
        if not may(current, st, ident, want):
            return current
    return None


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
