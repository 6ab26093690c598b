"""pxetui.stages: the one boot stage order the tracker, the UI and the lab tests share."""

from __future__ import annotations

from pxetui.stages import NEW, PROGRESS, STAGES, rank


def test_progress_grows_with_each_stage_to_done() -> None:
    assert list(PROGRESS) == list(STAGES)
    values = [PROGRESS[s] for s in STAGES]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert 0 < values[0] and values[-1] == 1.0


def test_rank_puts_new_first_and_verdicts_after_the_stages() -> None:
    ranked = sorted(["failed", *reversed(STAGES), NEW, "stuck"], key=lambda s: (rank(s), s))
    assert ranked == [NEW, *STAGES, "failed", "stuck"]
