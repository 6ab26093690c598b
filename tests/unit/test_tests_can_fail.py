"""Tests that can fail (issue 15): a scan of tests/ with `ast` for tests that check nothing.

A test checks something when it (or a helper it calls, followed through tests/ modules) has an
`assert`, raises AssertionError, or calls `pytest.raises`/`fail`/`warns`. Helpers from outside
tests/ that assert for the caller go in ASSERTING_HELPERS, a short list kept on purpose (empty
today: every helper that asserts lives in tests/, where the scan finds it).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
FILES = sorted(TESTS.rglob("*.py"))

# Callables defined outside tests/ whose call is a check (they assert for the caller).
ASSERTING_HELPERS: frozenset[str] = frozenset()
PYTEST_CHECKS = {"raises", "fail", "warns"}
# Every skip goes through netns.require, which fails instead under CI=true (no silent skips).
SKIPS = {"skip", "skipif", "importorskip", "xfail"}
SKIP_HOME = ("netns.py", "require")
BROAD = {"Exception", "BaseException", "AssertionError"}

Func = ast.FunctionDef | ast.AsyncFunctionDef


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


MODULES: dict[str, ast.Module] = {p.stem: parse(p) for p in FILES}
PATHS: dict[str, Path] = {p.stem: p for p in FILES}


def own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `fn`'s own body: nested defs are yielded but not entered (they run only
    when called, and a call is followed by name)."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, Func | ast.Lambda | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))


def module_defs(stem: str) -> dict[str, Func]:
    return {n.name: n for n in MODULES[stem].body if isinstance(n, Func)}


def imported(stem: str) -> dict[str, tuple[str, str]]:
    """Names a module imports from other tests/ modules: local name -> (module, name)."""
    out: dict[str, tuple[str, str]] = {}
    for node in MODULES[stem].body:
        if isinstance(node, ast.ImportFrom) and node.module in MODULES:
            for alias in node.names:
                out[alias.asname or alias.name] = (node.module, alias.name)
    return out


def is_check(node: ast.AST) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Raise) and node.exc is not None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(exc, ast.Name) and exc.id == "AssertionError"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        owner = node.func.value
        return isinstance(owner, ast.Name) and owner.id == "pytest" and node.func.attr in PYTEST_CHECKS
    return False


def resolve(stem: str, fn: Func, name: str) -> tuple[str, Func] | None:
    nested = {n.name: n for n in own_nodes(fn) if isinstance(n, Func)}
    if name in nested:
        return stem, nested[name]
    if name in module_defs(stem):
        return stem, module_defs(stem)[name]
    if name in imported(stem):
        other, real = imported(stem)[name]
        found = module_defs(other).get(real)
        return (other, found) if found else None
    return None


def checks(stem: str, fn: Func, seen: frozenset[int] = frozenset()) -> bool:
    """Whether running `fn` runs a check: its own, or one in a tests/ helper it calls."""
    if id(fn) in seen:
        return False
    for node in own_nodes(fn):
        if is_check(node):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ASSERTING_HELPERS:
                return True
            target = resolve(stem, fn, node.func.id)
            if target and checks(*target, seen | {id(fn)}):
                return True
    return False


def all_tests() -> Iterator[tuple[str, Func]]:
    for stem, mod in MODULES.items():
        if not stem.startswith("test_"):
            continue
        for node in mod.body:
            if isinstance(node, Func) and node.name.startswith("test"):
                yield stem, node
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                yield from ((stem, m) for m in node.body if isinstance(m, Func) and m.name.startswith("test"))


def where(stem: str, node: ast.AST) -> str:
    return f"{PATHS[stem].relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"


def has_example(fn: Func) -> bool:
    """A hypothesis test with an explicit @example: the example is what drives its branch."""
    for dec in fn.decorator_list:
        f = dec.func if isinstance(dec, ast.Call) else dec
        if (isinstance(f, ast.Name) and f.id == "example") or (isinstance(f, ast.Attribute) and f.attr == "example"):
            return True
    return False


def unconditional_check(stem: str, fn: Func) -> bool:
    """Whether some check runs on every path that does not fail: one outside branches, or one
    in every branch (if and else; each except and the try's else). A loop body counts."""

    def runs_check(node: ast.AST) -> bool:
        for n in (node, *own_nodes(node)):
            if is_check(n):
                return True
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
                target = resolve(stem, fn, n.func.id)
                if n.func.id in ASSERTING_HELPERS or (target and checks(*target)):
                    return True
        return False

    def walk(stmts: list[ast.stmt]) -> bool:
        for s in stmts:
            if isinstance(s, ast.If):
                found = runs_check(s.test) or (walk(s.body) and walk(s.orelse))
            elif isinstance(s, ast.Try | ast.TryStar):
                found = walk(s.body) or walk(s.finalbody) or bool(
                    s.orelse and walk(s.orelse) and all(walk(h.body) for h in s.handlers))
            elif isinstance(s, ast.For | ast.AsyncFor):
                found = runs_check(s.iter) or walk(s.body)
            elif isinstance(s, ast.While):
                found = runs_check(s.test) or walk(s.body)
            elif isinstance(s, ast.With | ast.AsyncWith):
                found = any(runs_check(i.context_expr) for i in s.items) or walk(s.body)
            elif isinstance(s, ast.Match | Func | ast.ClassDef):
                found = False
            else:
                found = runs_check(s)
            if found:
                return True
        return False

    return walk(fn.body)


def test_the_scan_sees_the_tests_and_follows_helpers() -> None:
    found = {(stem, fn.name) for stem, fn in all_tests()}
    assert len(found) > 500 and ("test_snapshots", "test_screen") in found  # the globs still match
    # Helpers are found by module name: one file per name (conftest.py is imported by none).
    stems = [p.stem for p in FILES if p.stem != "conftest"]
    assert len(stems) == len(set(stems))
    # Its own probes: a helper that asserts is followed, across modules too.
    probe = ast.parse("from netns import wait_for\ndef helper():\n    assert 1 == 2\n"
                      "def test_a():\n    helper()\ndef test_b():\n    wait_for(lambda: 1)\n"
                      "def test_c():\n    print('checks nothing')\n")
    MODULES["test_probe_"] = probe
    PATHS["test_probe_"] = TESTS / "unit" / "test_probe_.py"
    try:
        by_name = {n.name: n for n in probe.body if isinstance(n, Func)}
        assert checks("test_probe_", by_name["test_a"]) and checks("test_probe_", by_name["test_b"])
        assert not checks("test_probe_", by_name["test_c"])
    finally:
        del MODULES["test_probe_"], PATHS["test_probe_"]


def test_the_rules_catch_what_they_name() -> None:
    swallowed = ast.parse("try:\n    assert f()\nexcept Exception:\n    pass\n").body[0]
    reraised = ast.parse("try:\n    assert f()\nexcept BaseException:\n    log()\n    raise\n").body[0]
    assert isinstance(swallowed, ast.Try) and swallows(swallowed.handlers[0])
    assert isinstance(reraised, ast.Try) and not swallows(reraised.handlers[0])
    restated = ast.parse("(DATA, OACK) == (3, -6)", mode="eval").body
    measured = ast.parse("encode(DATA) == (3, 6)", mode="eval").body
    assert isinstance(restated, ast.Compare) and isinstance(measured, ast.Compare)
    assert all(static(e, {"DATA", "OACK"}) for e in (restated.left, *restated.comparators))
    assert not static(measured.left, {"DATA", "encode"})
    branchy = ast.parse("def test_x():\n    for a in f():\n        if a:\n            assert g()\n").body[0]
    both = ast.parse("def test_y():\n    try:\n        f()\n    except E:\n        assert 1\n"
                     "    else:\n        assert 2\n").body[0]
    assert isinstance(branchy, Func) and isinstance(both, Func)
    assert not unconditional_check("test_tests_can_fail", branchy)
    assert unconditional_check("test_tests_can_fail", both)


def test_every_test_checks_something() -> None:
    offenders = [f"{where(s, fn)} {fn.name}" for s, fn in all_tests() if not checks(s, fn)]
    assert not offenders, "tests that assert nothing:\n" + "\n".join(offenders)


def test_every_check_is_not_only_in_a_branch_that_may_not_run() -> None:
    offenders = [f"{where(s, fn)} {fn.name}" for s, fn in all_tests()
                 if checks(s, fn) and not has_example(fn) and not unconditional_check(s, fn)]
    assert not offenders, "tests whose every check sits in an if or except branch:\n" + "\n".join(offenders)


def static(node: ast.expr, names: set[str]) -> bool:
    """An expression fixed before the test runs: literals and the module's own constants."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(static(e, names) for e in node.elts)
    if isinstance(node, ast.UnaryOp):
        return static(node.operand, names)
    if isinstance(node, ast.BinOp):
        return static(node.left, names) and static(node.right, names)
    return False


def module_names(mod: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in mod.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_no_assert_restates_a_constant() -> None:
    """`assert True`, or a constant compared with a literal (the opcode test that was here)."""
    offenders = []
    for stem, mod in MODULES.items():
        names = module_names(mod)
        for node in ast.walk(mod):
            if not isinstance(node, ast.Assert):
                continue
            t = node.test
            if isinstance(t, ast.Constant) or (isinstance(t, ast.Compare)
                                               and all(static(e, names) for e in (t.left, *t.comparators))):
                offenders.append(f"{where(stem, node)} assert {ast.unparse(t)}")
    assert not offenders, "\n".join(offenders)


def swallows(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    kinds = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    broad = caught is None or any(isinstance(k, ast.Name) and k.id in BROAD for k in kinds)
    return broad and not any(isinstance(n, ast.Raise) for n in ast.walk(handler))


def test_no_broad_except_swallows_a_check() -> None:
    offenders = []
    for stem, mod in MODULES.items():
        for node in ast.walk(mod):
            if isinstance(node, ast.Try) and any(is_check(n) for s in node.body for n in ast.walk(s)):
                offenders += [where(stem, h) for h in node.handlers if swallows(h)]
    assert not offenders, "a broad except around an assert hides its failure:\n" + "\n".join(offenders)


def test_every_skip_goes_through_require() -> None:
    """tests/netns.py's require() skips locally and fails under CI=true; anything else that
    skips (pytest.skip, skipif, importorskip, xfail) would skip silently in CI."""
    offenders = []
    for stem, mod in MODULES.items():
        home = {id(n) for f in mod.body if isinstance(f, Func) and (PATHS[stem].name, f.name) == SKIP_HOME
                for n in ast.walk(f)}
        for node in ast.walk(mod):
            if isinstance(node, ast.Attribute) and node.attr in SKIPS and id(node) not in home:
                offenders.append(f"{where(stem, node)} {ast.unparse(node)}")
    assert not offenders, "\n".join(offenders)
    assert (TESTS / SKIP_HOME[0]).is_file()


def test_an_empty_parametrization_fails_collection(tmp_path: Path) -> None:
    """pytest's default skips a parametrize that collects no case; this project's config
    (pyproject.toml, empty_parameter_set_mark) makes that an error."""
    probe = tmp_path / "test_empty_probe.py"
    probe.write_text("import pytest\n\n\n@pytest.mark.parametrize('x', [])\n"
                     "def test_nothing(x):\n    assert x\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-c", str(ROOT / "pyproject.toml"),
                          "--rootdir", str(tmp_path), str(probe)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode != 0 and "empty parameter set" in (run.stdout + run.stderr).lower(), run.stdout
