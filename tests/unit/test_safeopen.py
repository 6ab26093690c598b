"""Opening beneath a root without following symlinks (openat2, and the O_NOFOLLOW walk used
where the kernel has none), pinned files, and the resolver's fd ownership.

Every symlink below the root is refused, also one that stays inside it: the safe default
(docs/SECURITY.md, "Files cannot be swapped under us")."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import require

from pxetui import safeopen
from pxetui.files import Forbidden, NotFound, Resolver
from pxetui.safeopen import Pin, PinMismatch, Refused, Root, open_pinned


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "openat2":
        require(safeopen.openat2.usable, "this kernel has no openat2 (Linux >= 5.6)")
    return str(request.param)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a\n")
    (root / "sub" / "b.txt").write_bytes(b"b\n")
    (root / "sub" / "deeper" / "c.txt").write_bytes(b"c\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret\n")
    (root / "link_out").symlink_to(outside / "secret.txt")
    (root / "link_in").symlink_to("sub/b.txt")
    (root / "link_abs_in").symlink_to(root / "a.txt")
    (root / "dir_out").symlink_to(outside)
    (root / "dir_in").symlink_to("sub")
    (root / "dangling").symlink_to("nowhere")
    (root / "sub" / "up").symlink_to("../../outside/secret.txt")
    return root


@pytest.fixture
def root(tree: Path, mode: str) -> Iterator[Root]:
    r = Root(tree, use_openat2=mode == "openat2")
    yield r
    r.close()


def read(opened: safeopen.Opened) -> bytes:
    try:
        return os.pread(opened.fd, 1 << 16, 0)
    finally:
        os.close(opened.fd)


def test_files_beneath_the_root_open_once_with_their_fstat(root: Root, tree: Path) -> None:
    for rel, data in (("a.txt", b"a\n"), ("sub/b.txt", b"b\n"), ("sub/deeper/c.txt", b"c\n")):
        op = root.open(rel)
        st = (tree / rel).stat()
        assert (op.st.st_ino, op.st.st_size, op.rel) == (st.st_ino, st.st_size, rel)
        assert read(op) == data


@pytest.mark.parametrize("rel", ["link_out", "link_in", "link_abs_in", "dir_out/secret.txt",
                                 "dir_in/b.txt", "dangling", "sub/up"])
def test_every_symlink_below_the_root_is_refused(root: Root, rel: str) -> None:
    with pytest.raises(Refused, match="symlink"):
        root.open(rel)


@pytest.mark.parametrize("rel", ["..", "../outside/secret.txt", "sub/../../outside/secret.txt",
                                 "sub/./b.txt", "", "sub//b.txt"])
def test_dotdot_and_empty_components_are_refused_even_unnormalised(root: Root, rel: str) -> None:
    with pytest.raises(Refused):
        root.open(rel)


def test_missing_and_not_a_directory(root: Root) -> None:
    with pytest.raises(FileNotFoundError):
        root.open("nope.txt")
    with pytest.raises(FileNotFoundError):
        root.open("nodir/b.txt")
    with pytest.raises(NotADirectoryError):
        root.open("a.txt/b.txt")


def test_the_root_itself_may_be_a_symlink_and_is_resolved_once(tree: Path, tmp_path: Path, mode: str) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(tree)
    r = Root(alias, use_openat2=mode == "openat2")
    try:
        assert r.path == str(tree)
        assert read(r.open("sub/b.txt")) == b"b\n"
        # The admin's link now names another directory: the root opened at start is served.
        alias.unlink()
        alias.symlink_to(tmp_path / "outside")
        assert read(r.open("a.txt")) == b"a\n"
        with pytest.raises(FileNotFoundError):
            r.open("secret.txt")
    finally:
        r.close()


def test_a_directory_swapped_for_a_symlink_before_its_open_is_refused(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk: `sub` becomes a symlink to outside between the lookup of the request and the
    open of that component. O_NOFOLLOW refuses it; nothing outside is opened."""
    real_open = safeopen._open
    swapped: list[str] = []

    def swap_then_open(name: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if name == "sub" and not swapped:
            os.rename(tree / "sub", tree / "sub.old")
            os.symlink(tree.parent / "outside", tree / "sub")
            swapped.append(name)
        return real_open(name, flags, mode, dir_fd=dir_fd)

    r = Root(tree, use_openat2=False)
    monkeypatch.setattr(safeopen, "_open", swap_then_open)
    try:
        with pytest.raises(Refused, match="symlink"):
            r.open("sub/secret.txt")
    finally:
        r.close()
    assert swapped == ["sub"]


def test_a_directory_swapped_after_its_open_serves_the_directory_that_was_opened(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swapped once `sub` is open: the file is opened relative to that directory's fd (the real
    one, renamed), never through the new symlink."""
    real_open = safeopen._open
    (tree.parent / "outside" / "b.txt").write_bytes(b"outside b\n")

    def open_then_swap(name: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        fd = real_open(name, flags, mode, dir_fd=dir_fd)
        if name == "sub":
            os.rename(tree / "sub", tree / "sub.old")
            os.symlink(tree.parent / "outside", tree / "sub")
        return fd

    r = Root(tree, use_openat2=False)
    monkeypatch.setattr(safeopen, "_open", open_then_swap)
    try:
        assert read(r.open("sub/b.txt")) == b"b\n"
    finally:
        r.close()


def test_without_openat2_in_the_kernel_the_walk_takes_over(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require(safeopen.openat2.usable, "this kernel has no openat2 (Linux >= 5.6)")
    calls: list[int] = []

    def enosys(*args: object) -> int:
        calls.append(1)
        ctypes.set_errno(errno.ENOSYS)
        return -1

    monkeypatch.setattr(safeopen.openat2, "_syscall", enosys)
    monkeypatch.setattr(safeopen.openat2, "usable", True)
    r = Root(tree)
    try:
        assert r.use_openat2
        assert read(r.open("sub/b.txt")) == b"b\n"
        assert not safeopen.openat2.usable and not r.use_openat2 and calls == [1]
        with pytest.raises(Refused, match="symlink"):
            r.open("dir_in/b.txt")
        assert read(r.open("a.txt")) == b"a\n"
        assert calls == [1]  # asked once, then never again
    finally:
        r.close()


def test_case_insensitive_match_never_through_a_symlink(tree: Path, mode: str) -> None:
    r = Root(tree, case_insensitive=True, use_openat2=mode == "openat2")
    try:
        op = r.open("SUB/Deeper/C.TXT")
        assert op.rel == "sub/deeper/c.txt" and read(op) == b"c\n"
        for rel in ("DIR_OUT/secret.txt", "Link_In", "dir_in/B.TXT", "Sub/Up"):
            with pytest.raises(Refused, match="symlink"):
                r.open(rel)
        with pytest.raises(FileNotFoundError):
            r.open("SUB/none.txt")
    finally:
        r.close()


# -- the resolver --------------------------------------------------------------------------


def test_resolver_maps_refusals_and_skips_what_is_not_a_file(tree: Path) -> None:
    os.mkfifo(tree / "fifo")  # opened O_NONBLOCK: a planted FIFO must not hang the service
    res = Resolver(tree)
    try:
        with res.resolve("sub\\b.txt") as src:  # Windows separators
            assert src.fd is not None and src.size == 2 and src.path == str(tree / "sub" / "b.txt")
        for rel in ("link_in", "dir_out/secret.txt", "link_out"):
            with pytest.raises(Forbidden, match="symlink"):
                res.resolve(rel)
        for rel in ("sub", "fifo", "nope", "a.txt/x", "x" * 300):
            with pytest.raises(NotFound):
                res.resolve(rel)
    finally:
        res.close()


def test_resolver_refuses_a_file_its_user_cannot_read(tree: Path) -> None:
    require(os.geteuid() == 0, "needs root to act as another user")
    (tree / "private").write_bytes(b"root only\n")
    (tree / "private").chmod(0o600)
    res = Resolver(tree)
    os.setegid(65534)
    os.seteuid(65534)  # as the unprivileged service user would be (docs/SECURITY.md)
    try:
        with pytest.raises(Forbidden, match="not readable"):
            res.resolve("private")
        with res.resolve("a.txt") as src:
            assert src.read(src.fd, 0, 10) == b"a\n"
    finally:
        os.seteuid(0)
        os.setegid(0)
        res.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_two_thousand_lookups_leak_no_descriptor(tree: Path) -> None:
    res = Resolver(tree, case_insensitive=True)
    try:
        before = _fds()
        for i in range(2000):
            rel = ("a.txt", "SUB/B.TXT", "link_out", "nope", "sub", "dir_in/b.txt", "sub/deeper/c.txt")[i % 7]
            try:
                src = res.resolve(rel)
            except (Forbidden, NotFound):
                continue
            if i % 2:
                src.close()  # answered without the file (HEAD, 304)
            else:
                os.close(src.take_fd())  # a transfer, which closes the fd when it ends
            with pytest.raises(ValueError):
                src.take_fd()
        after = _fds()
        assert after <= before + 1, (before, after)
    finally:
        res.close()


# -- pins ----------------------------------------------------------------------------------


def test_open_pinned_names_each_change(tmp_path: Path) -> None:
    f = tmp_path / "image.iso"
    f.write_bytes(b"\0" * 4096)
    pin = Pin.of(f.stat())
    fd, st = open_pinned(str(f), pin)
    os.close(fd)
    assert stat.S_ISREG(st.st_mode) and Pin.of(st) == pin

    def refused() -> str:
        with pytest.raises(PinMismatch) as info:
            open_pinned(str(f), pin)
        return info.value.reason

    os.utime(f, ns=(0, pin.mtime_ns + 1))
    assert "modified" in refused()
    os.utime(f, ns=(0, pin.mtime_ns))
    f.write_bytes(b"\0" * 4097)
    assert "changed size" in refused()
    f.unlink()
    assert "is gone" in refused()
    f.symlink_to("/etc/shadow")
    assert "symlink" in refused()
    f.unlink()
    f.mkdir()
    assert "no longer a regular file" in refused() or "replaced" in refused()
