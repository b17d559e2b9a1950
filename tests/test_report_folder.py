"""rnnbench report replaces its --out folder whole: a run killed at any point (kill -9 before
or during the swap) leaves the old report intact, the next run tidies what it left and writes
a whole new one; a folder holding anything else, or a file, is refused in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import atomic_folder
from harness.cli.main import main
from harness.output_paths import OutputPathError
from tests.synthetic_results import document, make_case, record, spread

ROOT = Path(__file__).resolve().parent.parent
OWN = (("report.md",), ("img",))

pytest.importorskip("matplotlib", reason="rnnbench report draws with matplotlib")
pytest.importorskip("scipy", reason="rnnbench report needs scipy")
pytest.importorskip("markdown_it", reason="rnnbench report renders with markdown-it-py")


@pytest.fixture(scope="module")
def results_file(tmp_path_factory) -> Path:
    """A small results file: torch-cpu LSTM forward over three sequence lengths."""
    shape = {"cell": "lstm", "batch": 1, "input_size": 8, "hidden": 8, "threads": 1}
    records = [
        record(make_case("torch-cpu", "forward", steps=T, **shape), spread(1e-5 * (5 + T)))
        for T in (1, 8, 64)
    ]
    path = tmp_path_factory.mktemp("inputs") / "r.json"
    path.write_text(json.dumps(document(records)))
    return path


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _killed_report(results: Path, out: Path, kill_at: str) -> int:
    """rnnbench report in a process of its own, killed (SIGKILL) with the new report half
    written ('write') or between the two renames of a swap where the names cannot be exchanged
    ('swap'); its exit status."""
    script = f"""
import os, signal
from harness import atomic_folder
from harness.analysis import html
from harness.cli.main import main

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if {kill_at!r} == "write":
    html.page = die
else:
    atomic_folder._exchange = lambda a, b: False
    renames = []
    real = os.rename
    def rename(a, b):
        renames.append(a)
        if len(renames) == 2:
            die()
        real(a, b)
    atomic_folder.os.rename = rename
main(["report", {str(results)!r}, "--out", {str(out)!r}])
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], env=env, timeout=300).returncode


def _beside(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.mark.parametrize("kill_at", ["write", "swap"])
def test_a_killed_report_leaves_the_old_one_whole_and_the_next_run_tidies(
    results_file, tmp_path, kill_at
):
    out = tmp_path / "report"
    assert main(["report", str(results_file), "--out", str(out)]) == 0
    before = _contents(out)
    assert {"report.md", "report.html", "findings.md"} <= set(before)
    assert _killed_report(results_file, out, kill_at) == -signal.SIGKILL
    if kill_at == "write":  # the old folder in place, the new one half written beside it
        assert _contents(out) == before
        assert [name.endswith(".new") for name in _beside(out)] == [True]
    else:  # the old folder set aside, the target gone for a moment
        assert not out.exists()
        assert any(name.endswith(".old") for name in _beside(out))
    assert main(["report", str(results_file), "--out", str(out)]) == 0
    after = _contents(out)
    assert set(after) == set(before) and after["report.md"] != before["report.md"]  # its stamp
    assert _beside(out) == []  # nothing of the killed run is left
    assert not [name for name in after if name.endswith(".tmp")]


def test_a_report_never_mixes_two_runs(results_file, tmp_path):
    """A plot the first run drew and the second did not is gone with the old folder."""
    out = tmp_path / "report"
    assert main(["report", str(results_file), "--out", str(out)]) == 0
    (out / "img" / "old_plot.png").write_bytes(b"\x89PNG old")
    (out / ".report.md.abc123.tmp").write_text("a temporary file a killed version left")
    assert main(["report", str(results_file), "--out", str(out)]) == 0
    assert not (out / "img" / "old_plot.png").exists()
    assert not (out / ".report.md.abc123.tmp").exists()
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("what", ["file", "other files", "a folder among the plots"])
def test_an_out_that_is_a_file_or_holds_other_files_is_one_line(
    results_file, tmp_path, capsys, what
):
    out = tmp_path / "out"
    if what == "file":
        out.write_text("not a folder")
        words = "it is not a folder (a file, a device or a pipe): allowed a folder or a new"
    elif what == "other files":
        out.mkdir()
        (out / "report.md").write_text("an old report")
        (out / "bench-quick.json").write_text("{}")
        words = "it holds 'bench-quick.json', which rnnbench does not write there"
    else:
        (out / "img" / "mine").mkdir(parents=True)
        words = "it holds 'img/mine', which rnnbench does not write there"
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main(["report", str(results_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rnnbench: error: cannot write --out {out}: {words}")
    assert err.count("\n") == 1
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing made or lost
    assert what != "file" or out.read_text() == "not a folder"


@pytest.mark.parametrize("exchange", [True, False])
def test_a_failure_inside_leaves_the_target_and_a_success_swaps_it(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(atomic_folder, "_exchange", lambda a, b: False)
    target = tmp_path / "rep"
    target.mkdir()
    (target / "report.md").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder.replaced_folder(target, "--out", *OWN) as new:
        (new / "report.md").write_text("half")
        raise RuntimeError("the analysis failed")
    assert (target / "report.md").read_text() == "old" and _beside(target) == []
    with atomic_folder.replaced_folder(target, "--out", *OWN) as new:
        (new / "report.md").write_text("new")
        (new / "img").mkdir()
    assert (target / "report.md").read_text() == "new" and (target / "img").is_dir()
    assert _beside(target) == []


def test_a_live_runs_fresh_folder_is_left_alone(tmp_path):
    target = tmp_path / "rep"
    live = tmp_path / f".rep.{os.getpid()}-abc.new"
    live.mkdir()
    atomic_folder.recover(target)
    assert live.exists()


def test_a_link_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    link = tmp_path / "link"
    with pytest.raises(OutputPathError, match="it is a link"):
        atomic_folder.check_replaced_folder(link, "--out", *OWN)
