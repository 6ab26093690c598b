"""`pxetui watch` prints a line per change, at most --rate a second; the rest are counted."""

from __future__ import annotations

import io

import pytest

from pxetui.commands import watch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_over_the_rate_lines_are_counted_and_said_once_the_second_is_over() -> None:
    out, clock = io.StringIO(), Clock()
    lines = watch.Lines(3, out, clock)
    for i in range(10):
        lines(f"line {i}")
    lines.tick()  # the same second: nothing to say yet
    assert out.getvalue().splitlines() == ["line 0", "line 1", "line 2"]
    clock.now = 101.2
    lines.tick()  # the watch loop's once-a-second turn
    lines("line 10")
    assert out.getvalue().splitlines()[3:] == [
        "... 7 lines not shown in that second (--rate 3/s; the tables have them)", "line 10"]
    assert lines.held == 0


def test_the_next_line_says_what_the_last_second_held_back() -> None:
    out, clock = io.StringIO(), Clock()
    lines = watch.Lines(1, out, clock)
    lines("a")
    lines("b")
    clock.now = 101.0
    lines("c")
    assert out.getvalue().splitlines() == [
        "a", "... 1 lines not shown in that second (--rate 1/s; the tables have them)", "c"]


def test_rate_zero_shows_everything() -> None:
    out = io.StringIO()
    lines = watch.Lines(0, out, Clock())
    for i in range(1000):
        lines(str(i))
    lines.tick()
    assert len(out.getvalue().splitlines()) == 1000


@pytest.mark.parametrize("bad", ["-1", "x", "1.5", "2000000"])
def test_a_bad_rate_is_refused_by_name(bad: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="lines a second"):
        watch._rate(bad)
