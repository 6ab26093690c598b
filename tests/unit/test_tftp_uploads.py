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
    with pytest.raises(Forbidden, match="outside the uploads root"):
        ups.open("evil/deep/er/x", "t1")
    assert list(outside.iterdir()) == []  # no directory was created through the link


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
