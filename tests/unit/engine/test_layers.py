"""The layering rule, checked on every module's imports (read with ``ast``, nothing imported):

    tools/   ->  engine/  ->  datasets/, video_focalnet/, vita_clip/  ->  common/

A package may import itself and the layers below it, never one above; the three model and data
packages import none of each other, only ``common`` (the bottom: safe loading, atomic writes,
``unwrap_model``), which imports no project package; nothing in the library imports tests/. No
module-level import circle exists between the project's modules either. The one exception, listed
below, is the benchmark harness building a reference port from a checkout's tests/ inside a
function. Every kind of import counts: ``import x``, ``from x import y``, relative imports,
imports inside functions, and ``importlib.import_module("x")`` with a literal name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TESTS = "tests"
# package -> the project packages it may import (itself included)
ALLOWED = {
    "common": {"common"},
    "datasets": {"datasets", "common"},
    "video_focalnet": {"video_focalnet", "common"},
    "vita_clip": {"vita_clip", "common"},
    "engine": {"engine", "datasets", "video_focalnet", "vita_clip", "common"},
    "tools": {"tools", "engine", "datasets", "video_focalnet", "vita_clip", "common"},
}
PROJECT = set(ALLOWED) | {TESTS}
# (importing module, imported module): allowed only inside a function (imported lazily, so the
# module also works where tests/ does not exist)
LAZY_EXCEPTIONS = {
    ("tools.workflows.benchmark.models", "tests.reference_vfn"),
    ("tools.workflows.benchmark.models", "tests.reference_vita"),
}


def module_name(path: Path) -> tuple[str, bool]:
    """Dotted name of a file under the repository, and whether it is a package __init__."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in ``source``."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            lazy = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                     ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(child, module, is_package)
                # `from pkg import sub` may name a submodule: record both forms
                found.append((target, child.lineno, in_function))
                found.extend((f"{target}.{alias.name}", child.lineno, in_function)
                             for alias in child.names if alias.name != "*")
            elif (isinstance(child, ast.Call) and child.args
                  and isinstance(child.args[0], ast.Constant)
                  and isinstance(child.args[0].value, str)
                  and ((isinstance(child.func, ast.Attribute)
                        and child.func.attr == "import_module")
                       or (isinstance(child.func, ast.Name)
                           and child.func.id in ("import_module", "__import__")))):
                found.append((child.args[0].value, child.lineno, in_function))
            visit(child, lazy)

    visit(ast.parse(source), False)
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import in ``source`` (the text of ``module``) that breaks the layering rule."""
    layer = module.split(".")[0]
    allowed = ALLOWED[layer]
    bad = set()
    for target, line, in_function in imports_of(source, module, is_package):
        top = target.split(".")[0]
        if top not in PROJECT or top in allowed:
            continue
        if in_function and any(module == m and (target == t or target.startswith(t + "."))
                               for m, t in LAZY_EXCEPTIONS):
            continue
        bad.add((line, target))
    # `from engine.config import get_cfg` records engine.config and engine.config.get_cfg:
    # report the module once
    kept = sorted((line, target) for line, target in bad
                  if not any(line == l2 and target.startswith(t2 + ".") for l2, t2 in bad))
    return [f"{module}:{line} imports {target} ({layer} may import only "
            f"{', '.join(sorted(allowed))})" for line, target in kept]


def library_files() -> list[Path]:
    files = []
    for package in ALLOWED:
        files += [p for p in sorted((REPO / package).rglob("*.py")) if "__pycache__" not in p.parts]
    return files


def test_every_package_exists_and_is_read():
    files = library_files()
    for package in ALLOWED:
        assert any(module_name(p)[0].split(".")[0] == package for p in files), package
    assert len(files) >= 40


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_only_go_down(path):
    module, is_package = module_name(path)
    assert violations(path.read_text(encoding="utf-8"), module, is_package) == []


# ---------------------------------------------------------------------------------------------
# The checker finds what it must (a test that cannot fail proves nothing)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module, is_package, source, expected", [
    ("datasets.build", False, "from engine.config import ConfigError\n", "engine.config"),
    ("datasets.build", False, "import engine\n", "engine"),
    ("datasets.build", False, "from ..engine import config\n", "engine"),
    ("datasets", True, "from ..vita_clip import tokenizer\n", "vita_clip"),
    ("video_focalnet.model", False, "def f():\n    from vita_clip.build import x\n",
     "vita_clip.build"),
    ("vita_clip.cache", False, "import importlib\nimportlib.import_module('engine.checkpoint')\n",
     "engine.checkpoint"),
    ("engine.experiments", False, "def cost():\n    from tools.flops import count_gflops\n",
     "tools.flops"),
    ("engine.benchmark", False, "def f():\n    from tests.reference_vfn import VideoFocalNet\n",
     "tests.reference_vfn"),
    # the harness may build reference ports lazily, but not at import time
    ("tools.workflows.benchmark.models", False,
     "from tests.reference_vita import reference_from_model\n",
     "tests.reference_vita"),
    ("tools.workflows.ablation", False, "def f():\n    import tests.conftest\n", "tests.conftest"),
    ("common.fileio", False, "from datasets.annotations import numbered_lines\n",
     "datasets.annotations"),
])
def test_checker_detects_planted_bad_imports(module, is_package, source, expected):
    found = violations(source, module, is_package)
    assert any(f" imports {expected} (" in v for v in found), found


@pytest.mark.parametrize("module, source", [
    ("engine.trainer", "from datasets import build_loader\nfrom .build import build_model\n"),
    ("datasets.build", "from .annotations import read_class_names\nimport torch\n"),
    ("tools.workflows.benchmark.models",
     "def ref():\n    from tests.reference_vfn import VideoFocalNet\n"),
    ("tools.flops", "from engine.flops import count_gflops\nimport video_focalnet\n"),
])
def test_checker_accepts_downward_imports(module, source):
    assert violations(source, module) == []


def test_relative_imports_resolve_against_the_package():
    assert [t for t, _, _ in imports_of("from .fileio import x\n", "datasets.build")][:1] == \
        ["datasets.fileio"]
    assert [t for t, _, _ in imports_of("from . import fileio\n", "datasets", True)][:1] == \
        ["datasets"]
    assert [t for t, _, _ in imports_of("from ..engine import y\n", "tools.workflows.ablation")
            ][:1] == ["tools.engine"]
    assert [t for t, _, _ in imports_of("from ...engine import y\n", "tools.workflows.ablation")
            ][:1] == ["engine"]


# ---------------------------------------------------------------------------------------------
# No import circle: the module-level imports between project modules form no cycle (the import
# order of the package cannot matter). Imports inside functions are left out: they run once
# every module exists.
# ---------------------------------------------------------------------------------------------
def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports at module level."""
    files = {module_name(p)[0]: p for p in library_files()}
    graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for target, _, lazy in imports_of(path.read_text(encoding="utf-8"), module, is_package):
            if not lazy and target in files and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circle():
    # a package __init__ importing its own submodules is how a package is built, not a circle:
    # only edges into a package's __init__ from its own submodules are left out
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in import_graph().items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"engine.build": {"engine.checkpoint"},
                       "engine.checkpoint": {"engine.build"}}) == \
        ["engine.build", "engine.checkpoint", "engine.build"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
