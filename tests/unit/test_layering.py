"""Who may import whom (docs/ARCHITECTURE.md): the engine (pxetui/) never imports the UI
(screens/, textual), its modules import each other without cycles, and project modules are
imported plainly, where tools can follow them, not through importlib or try/except ImportError.

Read from the source with `ast`, so imports inside functions count as much as those at the top
of a module; each checker is also run on a made-up module to show it can fail."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "pxetui"
UI_PACKAGES = ("screens", "textual")
IMPORT_CALLS = {"import_module", "__import__", "find_spec"}  # importlib.*, builtins
# A compiled extension that may be missing (setup.py builds it with optional=True): the one
# project module that is optional by design; pxetui/tftp/pump.py falls back to Python.
OPTIONAL_MODULES = {"pxetui.tftp._pump"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ENGINE.rglob("*.py"))}


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def imports(source: str, name: str, is_package: bool = False) -> Iterator[tuple[str, int]]:
    """Every module `source` names in an import, anywhere in it (top level, functions, try
    blocks), with its line: `import a.b`, `from a import b` (as "a.b" and "a"), relative
    imports resolved against `name`, and string constants given to importlib.import_module,
    __import__ or find_spec."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
        elif isinstance(node, ast.Call) and _call_name(node) in IMPORT_CALLS and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value, node.lineno
            elif isinstance(arg, ast.JoinedStr):  # f"pxetui.x.{name}": the prefix is what we know
                head = arg.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    yield head.value.rstrip("."), node.lineno


def ui_imports(source: str, name: str) -> list[str]:
    return [f"{name}:{line} imports {target}" for target, line in imports(source, name)
            if target.split(".")[0] in UI_PACKAGES]


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """module -> {project module it imports: line}. `from a import b` is an edge to a.b when
    that is a module, else to a."""
    graph: dict[str, dict[str, int]] = {}
    for name, (source, is_package) in sources.items():
        edges = graph.setdefault(name, {})
        for target, line in imports(source, name, is_package):
            if target in sources and target != name:
                edges.setdefault(target, line)
    # `from a import b` also yielded "a": drop it where "a.b" is the module meant.
    for edges in graph.values():
        for target in [t for t in edges if any(o.startswith(t + ".") for o in edges)]:
            if sources[target][1]:  # a package named only on the way to its submodule
                del edges[target]
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)) + f" -> {cycle[-1]}"


def optional_project_imports(source: str, name: str) -> list[str]:
    """Project modules imported through importlib, or inside a try that catches ImportError."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in IMPORT_CALLS:
            found.append(f"{name}:{node.lineno} imports through {_call_name(node)}()")
        if not isinstance(node, ast.Try):
            continue
        caught = {n.id for h in node.handlers for n in ast.walk(h.type) if isinstance(n, ast.Name)} \
            if all(h.type is not None for h in node.handlers) else {"ImportError"}
        if not caught & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}:
            continue
        for stmt in node.body:
            for target, _ in imports(ast.unparse(stmt), name):
                if target.split(".")[0] == "pxetui" and target not in OPTIONAL_MODULES \
                        and not any(target.startswith(m + ".") or m.startswith(target + ".")
                                    for m in OPTIONAL_MODULES):
                    found.append(f"{name}:{stmt.lineno} imports {target} as if optional")
    return found


def _sources() -> dict[str, tuple[str, bool]]:
    return {n: (p.read_text(), p.name == "__init__.py") for n, p in engine_modules().items()}


# -- the rules, on the real engine ----------------------------------------------------


def test_the_engine_never_imports_the_ui():
    found = [hit for n, (src, _) in _sources().items() for hit in ui_imports(src, n)]
    assert len(engine_modules()) > 50  # the walk found the engine
    assert not found, "the engine imports the UI:\n" + "\n".join(found)


def test_the_engine_has_no_import_cycles():
    graph = import_graph(_sources())
    assert "pxetui.commands.import_" in graph["pxetui.cli"]  # the graph sees plain imports
    assert "pxetui.dhcp.service" in graph["pxetui.service"]  # and imports inside functions
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + describe(cycle, graph)


def test_project_modules_are_imported_plainly():
    found = [hit for n, (src, _) in _sources().items() for hit in optional_project_imports(src, n)]
    assert not found, "\n".join(found)


def test_only_the_composition_root_imports_both():
    root = (ROOT / "pxetui_app" / "__init__.py").read_text()
    named = {t.split(".")[0] for t, _ in imports(root, "pxetui_app", True)}
    assert {"pxetui", "screens"} <= named


# -- the checkers can fail --------------------------------------------------------------


def test_a_late_or_indirect_ui_import_is_caught():
    src = '''
import importlib

def later():
    from screens.run import run_ui
    return importlib.import_module("textual.app"), __import__("screens")
'''
    assert [h.split(" imports ")[1] for h in ui_imports(src, "pxetui.x")] == [
        "screens.run", "screens.run.run_ui", "textual.app", "screens"]
    assert ui_imports("import pxetui.control\nfrom pxetui import screensaver\n", "pxetui.x") == []


def test_a_cycle_through_a_function_level_import_is_caught_and_printed():
    sources = {
        "pxetui": ("", True),
        "pxetui.tftp": ("", True),
        "pxetui.tftp.service": ("from pxetui.tftp.workers import Workers\n", False),
        "pxetui.tftp.workers": ("def main():\n    from .service import build_resolver\n", False),
        "pxetui.other": ("import importlib\nM = importlib.import_module('pxetui.tftp.workers')\n", False),
    }
    graph = import_graph(sources)
    cycle = find_cycle(graph)
    assert cycle == ["pxetui.tftp.workers", "pxetui.tftp.service", "pxetui.tftp.workers"]
    assert describe(cycle, graph) == ("pxetui.tftp.workers (line 2) -> pxetui.tftp.service (line 1)"
                                      " -> pxetui.tftp.workers")
    assert "pxetui.tftp.workers" in graph["pxetui.other"]  # an importlib string is an edge too
    del sources["pxetui.tftp.workers"]
    assert find_cycle(import_graph(sources)) is None


def test_an_optional_project_import_is_caught():
    src = '''
try:
    from pxetui.library.provider import virtual_providers
except ModuleNotFoundError:
    virtual_providers = None
try:
    from pxetui.tftp import _pump
except ImportError:
    _pump = None
try:
    import uvloop
except ImportError:
    pass
'''
    assert optional_project_imports(src, "pxetui.x") == [
        "pxetui.x:3 imports pxetui.library.provider as if optional",
        "pxetui.x:3 imports pxetui.library.provider.virtual_providers as if optional"]
    assert optional_project_imports("import importlib\nimportlib.import_module(NAME)\n", "pxetui.x") == [
        "pxetui.x:2 imports through import_module()"]
