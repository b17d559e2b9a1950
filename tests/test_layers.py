"""Folders that show the way: no import circle between modules, each package importing only
the packages its docstring allows (harness/*/__init__.py), nothing below the CLI importing it,
and no module over 400 lines. Read from the source (ast), so a function-level import counts, and
so does a module named in a string (importlib.import_module, the registry's entries)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
# package -> the packages it may import (besides itself, harness's top-level modules and
# harness/model/errors.py's leaf); each package's docstring says the same in words
ALLOWED = {
    "harness.files": {"harness.model"},
    "harness.model": {"harness.files"},
    "harness.machine": {"harness.model"},
    "harness.sweeps": {"harness.model", "harness.records", "harness.parity"},
    "harness.onnx": {"harness.model", "harness.files"},
    "harness.records": {"harness.bench", "harness.machine"},
    "harness.parity": {"harness.model", "harness.onnx", "harness.records"},
    "harness.model_file": {"harness.model", "harness.files", "harness.onnx", "harness.parity"},
    "harness.load": {"harness.records"},
    "harness.bench": {
        "harness.model",
        "harness.machine",
        "harness.records",
        "harness.parity",
        "harness.model_file",
        "harness.load",
        "harness.predict",
    },
    "harness.cluster": {"harness.bench", "harness.machine", "harness.records"},
    "harness.predict": {"harness.model", "harness.machine", "harness.sweeps", "harness.records"},
    "harness.analysis": {
        "harness.bench",
        "harness.machine",
        "harness.model",
        "harness.onnx",
        "harness.parity",
        "harness.records",
        "harness.sweeps",
        "harness.predict",
    },
    "backends": {
        "backends.parallel_in_time",
        "harness.model",
        "harness.files",
        "harness.onnx",
        "harness.model_file",
    },
    # harness.machine: the fused kernel sizes its blocks by the L2 cache it reads there
    "backends.parallel_in_time": {"backends", "harness.model", "harness.machine"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for base in ("harness", "backends"):
        for path in (ROOT / base).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "backends":
        return "backends.parallel_in_time" if parts[1:2] == ["parallel_in_time"] else "backends"
    if len(parts) > 2 or (len(parts) == 2 and (ROOT / "harness" / parts[1]).is_dir()):
        return f"harness.{parts[1]}"
    return "harness"


def _imports() -> dict[str, set[str]]:
    modules, graph = _modules(), defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif (named := _named_import(node, name)) in modules:
                targets = [named]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def _named_import(node: ast.AST, module: str) -> str | None:
    """A module imported by name at run time: importlib.import_module("backends.x") anywhere,
    and every "module" or "module:Class" string in the registry (its entries)."""
    if module == "harness.registry" and isinstance(node, ast.Constant):
        value = node.value
        return value.partition(":")[0] if isinstance(value, str) else None
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(module, trail):
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                loop = trail[trail.index(target) :] + [target]
                raise AssertionError(f"import circle: {' -> '.join(loop)}")
            if target not in state:
                visit(target, trail + [target])
        state[module] = 2

    for module in sorted(_modules()):
        if module not in state:
            visit(module, [module])


def test_each_package_imports_only_what_it_may():
    wrong = []
    for module, targets in _imports().items():
        source = _package(module)
        for target in targets:
            goal = _package(target)
            if goal in (source, "harness") or target == "harness.model.errors":
                continue
            if source == "harness":
                continue  # the top-level helpers (registry, stats, ...) and __main__
            if goal not in ALLOWED.get(source, set()) and source != "harness.cli":
                wrong.append(
                    f"{module} imports {target} ({source} may import "
                    f"{', '.join(sorted(ALLOWED.get(source, set()))) or 'nothing'})"
                )
    assert not wrong, "\n".join(wrong)


def test_nothing_below_the_cli_imports_it():
    below = [
        f"{module} imports {target}"
        for module, targets in _imports().items()
        for target in targets
        if target.startswith("harness.cli")
        and not module.startswith("harness.cli")
        and module != "harness.__main__"
    ]
    assert not below, below


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in _modules().values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these along their seams: {long}"
