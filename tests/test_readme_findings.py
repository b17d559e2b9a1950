"""README.md's findings block is what `rnnbench report --readme` writes from the committed
results files that tox's `report` env names: a figure in it that no code produces fails here."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from harness.analysis import readme
from harness.analysis.report import findings_block

ROOT = Path(__file__).resolve().parent.parent


def report_inputs() -> list[str]:
    """The results files and folders in tox.ini's [testenv:report] command, as written there."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    words = shlex.split(tox["testenv:report"]["commands"].replace("{posargs}", ""))
    after = words[words.index("report") + 1 :]
    return after[: next(i for i, w in enumerate(after) if w.startswith("--"))]


def test_readme_block_is_regenerated_from_the_committed_results(monkeypatch):
    monkeypatch.chdir(ROOT)
    paths = report_inputs()
    assert "results/cpu-2core/bench-full.json" in paths
    generated = findings_block(paths)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    current = text.split(readme.BEGIN)[1].split(readme.END)[0].strip()
    assert current == generated.strip(), (
        "README.md's findings block is stale: run `rnnbench report "
        + " ".join(paths)
        + " --out out/report --readme README.md`"
    )


def test_only_the_text_between_the_markers_is_replaced(tmp_path):
    text = f"# t\n\nbefore\n{readme.BEGIN}\n- old\n{readme.END}\nafter\n"
    assert readme.replace_block(text, "- new\n") == (
        f"# t\n\nbefore\n{readme.BEGIN}\n- new\n{readme.END}\nafter\n"
    )
    for broken in ("no markers", f"{readme.END}\n{readme.BEGIN}", f"{readme.BEGIN}" * 2):
        with pytest.raises(readme.ReadmeError):
            readme.replace_block(broken, "- new")
    path = tmp_path / "README.md"
    path.write_text(text)
    assert readme.rewrite(path, "- new") and not readme.rewrite(path, "- new")


def test_noise_between_two_runs_by_hand():
    from harness import stats
    from tests.synthetic_results import example_doc, views

    first, second = example_doc(), example_doc()
    for record in second["cases"]:  # every case 10% slower in the second run
        record["samples_s"] = [1.1 * s for s in record["samples_s"]]
        record["stats"] = stats.summarize(record["samples_s"])
    statement = readme.noise(views(first, second))
    cases = sum(r["status"] == "ok" for r in first["cases"])
    assert f"the {cases} cases both timed moved by a median ratio of 1.100" in statement
    assert "median deviation from 1 10.0%, largest 10.0%" in statement
    # 7 rounds evenly over +-1%: IQR / median = 1% for every case
    assert "IQR over its median is median 1.0%, 90th percentile 1.0%" in statement


def test_the_committed_example_report_opens_with_the_answer():
    """results/report is what a newcomer opens: its first section is the answer, and the README
    block is at most 10 lines."""
    text = (ROOT / "results" / "report" / "report.md").read_text(encoding="utf-8")
    first = next(line for line in text.splitlines() if line.startswith("## "))
    assert first.startswith("## The answer on "), first
    page = (ROOT / "results" / "report" / "report.html").read_text(encoding="utf-8")
    assert page.index("<h2 id='the-answer-on-") < page.index("<h2 id='contents'>")
    readme_text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme_text.split(readme.BEGIN)[1].split(readme.END)[0].strip()
    assert 2 <= len(block.splitlines()) <= readme.MAX_LINES
