"""The Python API and the pytest plugin: the pytest file that docs/own-model.md shows, taken from
the doc verbatim, run by pytest in a subprocess with the plugin registered as pip registers it
(the `pytest11` entry point pyproject.toml declares): the faithful export passes, the perturbed
one fails naming the tensor. The plugin imports nothing heavy at pytest's start; check_export
raises the command's one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "numpy", "pydantic")


def _entry_points() -> dict[str, str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with open(ROOT / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    return project.get("entry-points", {}).get("pytest11", {})


def test_the_plugin_is_a_pytest11_entry_point():
    assert _entry_points() == {"rnnbench": "harness.pytest_plugin"}


def test_importing_the_plugin_imports_nothing_heavy():
    code = (
        "import sys, harness.pytest_plugin; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    )
    assert shown.stdout.strip() == "[]", shown.stdout + shown.stderr


def _env(site: Path | None = None) -> dict[str, str]:
    """This checkout first on the path; `site`: a folder holding the plugin's entry point."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (ROOT, site) if p)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def _installed_entry_point(folder: Path) -> Path:
    """A distribution's metadata declaring pyproject.toml's pytest11 entry points, as pip
    writes it for an installed rnnbench (the shared test environment may predate them)."""
    info = folder / "rnnbench_plugin_check-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: rnnbench-plugin-check\nVersion: 0\n"
    )
    lines = [f"{name} = {target}" for name, target in _entry_points().items()]
    (info / "entry_points.txt").write_text("\n".join(["[pytest11]", *lines, ""]))
    return folder


def _documented_test_file() -> str:
    """The pytest file under docs/own-model.md's "In your CI", as written there."""
    text = (ROOT / "docs" / "own-model.md").read_text()
    section = text.split("\n## In your CI\n")[1].split("\n## ")[0]
    code = section.split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) <= 12 and "rnnbench_parity(" in code, code
    return code


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A user's project: the documented test file, and models/ holding a torch GRU and its
    faithful export (good) and the same GRU with one element of R moved in its export (bad)."""
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from tests import model_files as make

    folder = tmp_path_factory.mktemp("project")
    models = folder / "models"
    models.mkdir()
    net = make.torch_net("gru", I=3, H=4, head=0, seed=2)
    for name in ("good", "bad"):
        make.save_scripted(net, models / f"{name}.pt")
    make.export_onnx(net, models / "good.onnx")
    make.perturb_onnx(models / "good.onnx", models / "bad.onnx", "one-R")
    (folder / "test_parity.py").write_text(_documented_test_file())
    _installed_entry_point(folder / "site")
    return folder


def _pytest(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *extra, "test_parity.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        env=_env(folder / "site"),
        timeout=300,
    )


def test_the_documented_pytest_file_passes_a_faithful_export_and_fails_a_perturbed_one(project):
    run = _pytest(project)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "test_export_matches_its_source[good] PASSED" in out, out
    assert "test_export_matches_its_source[bad] FAILED" in out, out
    bad = project / "models"
    assert f"rnnbench parity of {bad / 'bad.pt'} against {bad / 'bad.onnx'}: " in out, out
    failure = out.split(f"{bad / 'bad.onnx'}: ")[1].splitlines()[0]
    count, first = failure.split("; first: ")
    assert int(count.split()[0]) >= 1 and count.endswith(("failure", "failures")), failure
    assert first.startswith("export-file gru-file-float32: export-file: weights l0.R gate "), first


def test_the_plugin_is_registered_once_by_its_entry_point(project):
    run = _pytest(project, "--trace-config", "--collect-only", "-q")
    registered = [line for line in run.stdout.splitlines() if "harness.pytest_plugin" in line]
    assert run.returncode == 0 and len(registered) == 1, run.stdout + run.stderr


def test_check_export_raises_the_commands_one_line_errors(tmp_path):
    from harness.model.errors import BadInput
    from harness.model.protocol import NotSupported
    from harness.model_file.api import check_export

    with pytest.raises(NotSupported, match="no such file: allowed ONNX") as info:
        check_export(tmp_path / "missing.onnx")
    assert "\n" not in str(info.value)
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    with pytest.raises(BadInput, match="unknown backend 'nope': allowed numpy"):
        check_export(tmp_path / "m.onnx", backends=["numpy", "nope"])
