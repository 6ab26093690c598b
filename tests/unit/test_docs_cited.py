"""The repository explains itself: every document a comment cites is in docs/, and nothing cites
the planning notes that live outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("pxetui", "screens", "tests", "bench", "scripts") for p in (ROOT / d).rglob("*")
           if p.suffix in (".py", ".c", ".sh") and p.is_file()]
CITED = re.compile(r"docs/([A-Za-z0-9_-]+\.md)")
# Spelled in two pieces so this file does not cite them itself.
OUTSIDE = re.compile(r"\b(?:DESIGN|REFERENCE)" + r"\.md\b")


def test_sources_are_found() -> None:
    assert len(SOURCES) > 100  # the globs above still match the tree


def test_every_cited_document_exists() -> None:
    cited = {(p.relative_to(ROOT), m) for p in SOURCES for m in CITED.findall(p.read_text(errors="replace"))}
    missing = sorted(f"{p}: docs/{m}" for p, m in cited if not (ROOT / "docs" / m).is_file())
    assert not missing, missing
    assert {m for _, m in cited} >= {"SECURITY.md", "FIELD-NOTES.md"}


def test_nothing_cites_notes_outside_the_repository() -> None:
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in SOURCES
                 for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert not offenders, offenders
