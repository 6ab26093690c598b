"""Uploads (WRQ) land in their own directory, complete or not at all, never through a symlink."""

from __future__ import annotations

import os

import pytest

from pxetui.files import Forbidden
from pxetui.tftp.uploads import Uploads


def test_complete_upload_is_linked_into_place(tmp_path):
    ups = Uploads(str(tmp_path / "up"))
    u = ups.open("dumps/crash.dump", "t1")
    u.write(0, memoryview(b"hello "))
    u.write(6, memoryview(b"world"))
    assert not (tmp_path / "up" / "dumps" / "crash.dump").exists()  # only a hidden part file so far
    u.commit()
    assert (tmp_path / "up" / "dumps" / "crash.dump").read_bytes() == b"hello world"
    assert sorted(p.name for p in (tmp_path / "up" / "dumps").iterdir()) == ["crash.dump"]


def test_existing_file_is_never_replaced(tmp_path):
    ups = Uploads(str(tmp_path / "up"))
    (tmp_path / "up" / "cfg").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        ups.open("cfg", "t1")
    a, b = ups.open("new", "a"), ups.open("new", "b")  # two clients racing for one name
    a.commit()
    with pytest.raises(FileExistsError):
        b.commit()
    assert sorted(os.listdir(tmp_path / "up")) == ["cfg", "new"]  # the loser's part file is gone


def test_discarded_upload_leaves_nothing(tmp_path):
    ups = Uploads(str(tmp_path / "up"))
    u = ups.open("half", "t1")
    u.write(0, memoryview(b"x" * 100))
    u.discard()
    assert os.listdir(tmp_path / "up") == []


def test_symlinked_directory_out_of_the_root_is_refused_and_nothing_is_made(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    ups = Uploads(str(tmp_path / "up"))
    (tmp_path / "up" / "evil").symlink_to(outside)
    with pytest.raises(Forbidden, match="'evil' is a symlink"):
        ups.open("evil/deep/er/x", "t1")
    assert list(outside.iterdir()) == []  # no directory was created through the link


def test_a_directory_swapped_for_a_symlink_after_the_first_upload_is_refused(tmp_path):
    # A local user who can write the uploads tree replaces a directory an earlier upload made
    # with a link elsewhere: the next upload must not follow it (docs/SECURITY.md).
    outside = tmp_path / "outside"
    outside.mkdir()
    ups = Uploads(str(tmp_path / "up"))
    ups.open("dumps/a", "t1").commit()
    (tmp_path / "up" / "dumps" / "a").unlink()
    (tmp_path / "up" / "dumps").rmdir()
    (tmp_path / "up" / "dumps").symlink_to(outside)
    with pytest.raises(Forbidden, match="'dumps' is a symlink"):
        ups.open("dumps/b", "t2")
    assert list(outside.iterdir()) == []


def test_a_symlink_in_place_of_the_file_is_never_written_through(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    ups = Uploads(str(tmp_path / "up"))
    (tmp_path / "up" / "x").symlink_to(target)
    with pytest.raises(FileExistsError):
        ups.open("x", "t1")
    assert target.read_bytes() == b"keep"


def test_a_file_in_the_way_of_a_directory_is_refused(tmp_path):
    ups = Uploads(str(tmp_path / "up"))
    (tmp_path / "up" / "f").write_bytes(b"")
    with pytest.raises(Forbidden, match="'f' is not a directory"):
        ups.open("f/x", "t1")


def test_uploads_hold_no_descriptor_after_commit_or_discard(tmp_path):
    ups = Uploads(str(tmp_path / "up"))
    before = len(os.listdir("/proc/self/fd"))
    for i in range(50):
        ups.open(f"d/{i}", "t").commit()
        ups.open(f"d/x{i}", "t").discard()
    assert len(os.listdir("/proc/self/fd")) == before


def test_absolute_name_lands_inside(tmp_path):
    ups = Uploads(str(tmp_path / "up"))
    ups.open("/etc/x", "t1").commit()  # TFTP clients often send absolute paths: root-relative
    assert (tmp_path / "up" / "etc" / "x").exists()


@pytest.mark.parametrize("name", ["../x", "a/../../x", "a\x00b", "a\nb"])
def test_hostile_names_are_refused(tmp_path, name):
    ups = Uploads(str(tmp_path / "up"))
    with pytest.raises(Forbidden):
        ups.open(name, "t1")
    assert os.listdir(tmp_path / "up") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["up"]
