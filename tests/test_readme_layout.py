"""README.md's layout section is the folders as they are: every folder it lists exists, every
Python package under harness/ and backends/ is listed; and every repository path the README or a
docs/ page names in backticks exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layout_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def _listed() -> set[str]:
    return {m.group(1).rstrip("/") for m in re.finditer(r"(?m)^([\w./]+/)", _layout_block())}


def _packages() -> set[str]:
    found = set()
    for top in ("harness", "backends"):
        for module in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in module.parts:
                found.add(str(module.parent.relative_to(ROOT)))
    return found


def test_every_listed_folder_exists():
    missing = sorted(p for p in _listed() if not (ROOT / p).is_dir())
    assert not missing, f"README's layout lists folders that do not exist: {missing}"


def test_every_package_is_listed():
    unlisted = sorted(_packages() - _listed())
    assert not unlisted, f"README's layout leaves out: {unlisted}"


def test_the_layout_check_can_fail(tmp_path):
    """A folder the block does not name is caught: the comparison is of real sets."""
    assert "harness/bench" in _listed() and "harness/bench" in _packages()
    assert "harness/no_such_package" not in _listed()


PATH = re.compile(r"`((?:harness|backends|benchmarks|results|tests|docs|\.ci)/[\w./*-]*)`")


def test_paths_named_in_the_docs_exist():
    stale = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for path in PATH.findall(page.read_text(encoding="utf-8")):
            if not list(ROOT.glob(path.rstrip("/"))):
                stale.append(f"{page.name}: {path}")
    assert not stale, f"paths that do not exist: {stale}"
