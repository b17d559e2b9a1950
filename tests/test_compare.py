"""rnnbench compare: the significance test by hand, and a CI gate that fails on an injected
regression and passes on noise."""

from __future__ import annotations

import copy
import json
import math

import pytest

from harness import stats
from harness.analysis.compare import Gate, GateError, compare_docs, format_comparison, mann_whitney
from harness.cli.main import main
from tests.synthetic_results import checked, example_doc, merged


def test_mann_whitney_exact_by_hand():
    # Fully separated samples of 3 and 3: U = 0, P(U <= 0) = 1 / C(6, 3) = 1/20; two-sided 0.1.
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert mann_whitney([1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14]) == pytest.approx(
        2 / math.comb(14, 7)
    )
    # U = 3; counts of U = 0..3 among the 20 orderings: 1 + 1 + 2 + 3 = 7; two-sided 14/20
    assert mann_whitney([1, 3, 5], [2, 4, 6]) == pytest.approx(0.7)


def test_mann_whitney_normal_approximation_with_ties():
    a, b = [1, 2, 2, 3] * 10, [2, 3, 3, 4] * 10
    # Hand: ranks over 80 values with ties; z = (|U - 800| - 0.5) / sigma
    p = mann_whitney(a, b)
    assert 0 < p < 1e-3
    assert mann_whitney([5.0] * 8, [5.0] * 8) == 1.0


def test_gate_parsing():
    assert Gate.parse("median:10%") == Gate("median", 0.10)
    assert Gate.parse("p90:2.5%") == Gate("p90", 0.025)
    for bad in ("median:10", "fastest:10%", "median", "median:-1%"):
        with pytest.raises(GateError, match="allowed STAT:N%"):
            Gate.parse(bad)


def _slow_down(doc, factor, which=lambda i: True):
    new = copy.deepcopy(doc)
    for index, record in enumerate(new["cases"]):
        if which(index):
            record["samples_s"] = [s * factor for s in record["samples_s"]]
            record["stats"] = stats.summarize(record["samples_s"])
    return new


def _compare(base, new, gate):
    return compare_docs(checked(base), checked(new), gate)


def test_an_injected_regression_fails_and_noise_does_not():
    base = example_doc()
    regressed = _slow_down(base, 1.25, which=lambda i: i == 0)
    result = _compare(base, regressed, Gate("median", 0.10))
    assert result.regressions == [base["cases"][0]["id"]]
    assert result.geomean == pytest.approx(1.25 ** (1 / len(base["cases"])))
    noise = _slow_down(base, 1.004)  # +0.4%: within the samples' own spread
    quiet = _compare(base, noise, Gate("median", 0.10))
    assert quiet.regressions == [] and all(r.verdict == "same" for r in quiet.rows)
    small = _compare(base, _slow_down(base, 1.05), Gate("median", 0.10))
    assert small.regressions == []  # significant but under the 10% threshold
    assert {r.verdict for r in small.rows} == {"slower"}


def test_other_machine_or_versions_are_flagged():
    base = example_doc()
    other = example_doc(machine="elsewhere")
    other["machines"]["elsewhere"]["environment"]["libraries"]["torch"] = "2.11.0"
    result = _compare(base, other, Gate("median", 0.10))
    assert "torch: 2.13.0 -> 2.11.0" in result.environment_differences
    assert "machine: test-machine -> elsewhere" in result.environment_differences
    assert len(result.rows) == len(base["cases"])  # one machine each: still compared


def _halves():
    """The example's cases split between two machines (a file times each case once)."""
    a, b = example_doc("cpu-a"), example_doc("cpu-b")
    half = len(a["cases"]) // 2
    a["cases"], b["cases"] = a["cases"][:half], b["cases"][half:]
    for record in b["cases"]:
        record["machine"] = "cpu-b"
    return a, b


def test_files_of_several_machines_compare_like_with_like():
    a, b = _halves()
    idle = example_doc("cpu-c")
    idle["cases"] = []  # a machine of NEW that BASE lacks
    base = merged(a, b)
    new = merged(a, _slow_down(b, 1.25), idle)
    result = _compare(base, new, Gate("median", 0.10))
    assert len(result.rows) == len(a["cases"]) + len(b["cases"])
    by_machine = {m: [r for r in result.rows if r.machine == m] for m in ("cpu-a", "cpu-b")}
    assert {r.verdict for r in by_machine["cpu-a"]} == {"same"}
    assert all(r.ratio == pytest.approx(1.25) for r in by_machine["cpu-b"])
    assert len(result.regressions) == len(b["cases"])
    assert result.machines_not_compared == ["cpu-c (only in NEW)"]
    assert result.only_in_base == result.timed_on_another_machine == []
    assert result.environment_differences == []
    text = format_comparison(result)
    assert "machines not compared (no like for like): cpu-c (only in NEW)" in text
    header = next(line for line in text.splitlines() if line.startswith("case "))
    assert header.split() == ["case", "base", "new", "new/base", "p", "verdict", "machine"]


def test_cli_exit_codes(tmp_path, capsys):
    base = example_doc()
    paths = {}
    for name, doc in (
        ("base", base),
        ("same", base),
        ("slow", _slow_down(base, 1.5, which=lambda i: i < 3)),
    ):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(doc))
    assert main(["compare", str(paths["base"]), str(paths["same"])]) == 0
    assert (
        main(
            [
                "compare",
                str(paths["base"]),
                str(paths["slow"]),
                "--fail-on",
                "median:10%",
                "--json",
                str(tmp_path / "c.json"),
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "3 regression(s)" in out and "REGRESSION" in out
    assert json.loads((tmp_path / "c.json").read_text())["regressions"]
    assert main(["compare", str(paths["base"]), str(tmp_path / "missing.json")]) == 2
    assert main(["compare", str(paths["base"]), str(paths["same"]), "--fail-on", "x"]) == 2


def test_a_case_timed_on_another_machine_is_named_not_compared():
    a, b = _halves()
    moved = a["cases"][0]
    base = merged(a, b)
    new_a, new_b = copy.deepcopy(a), copy.deepcopy(b)
    new_a["cases"] = new_a["cases"][1:]
    new_b["cases"] = [*new_b["cases"], {**copy.deepcopy(moved), "machine": "cpu-b"}]
    result = _compare(base, merged(new_a, new_b), Gate("median", 0.10))
    assert result.timed_on_another_machine == [moved["id"]]
    assert result.only_in_base == []
    assert "1 cases of BASE were timed on another machine in NEW" in format_comparison(result)


def test_a_10x_slowdown_is_flagged_whichever_part_of_the_file_was_edited(tmp_path, capsys):
    """Samples x10 with stats left alone: refused (the stats disagree); stats x10 with samples
    left alone: refused; samples x10 and stats gone or rederived: a regression, even at 3
    rounds, where no Mann-Whitney p can reach 0.05 (every sample is beyond every base one)."""
    base = example_doc()
    for record in base["cases"]:
        record["samples_s"] = record["samples_s"][:3]
        record["stats"] = stats.summarize(record["samples_s"])
    edits = {
        "samples-only": lambda r: r.update(samples_s=[10 * s for s in r["samples_s"]]),
        "stats-only": lambda r: r["stats"].update(median=10 * r["stats"]["median"]),
        "samples-no-stats": lambda r: r.update(
            samples_s=[10 * s for s in r["samples_s"]], stats=None
        ),
        "samples-and-stats": lambda r: r.update(
            samples_s=(s := [10 * x for x in r["samples_s"]]), stats=stats.summarize(s)
        ),
    }
    (tmp_path / "base.json").write_text(json.dumps(base))
    for name, edit in edits.items():
        new = copy.deepcopy(base)
        edit(new["cases"][0])
        (tmp_path / f"{name}.json").write_text(json.dumps(new))
        code = main(["compare", str(tmp_path / "base.json"), str(tmp_path / f"{name}.json")])
        out, err = capsys.readouterr()
        if name in ("samples-only", "stats-only"):
            assert code == 2 and "disagrees with its samples_s" in err, (name, err)
        else:
            assert code == 1 and "1 regression(s)" in out, (name, out)


def test_compare_output_is_readable(tmp_path, capsys):
    """Full ids (never cut), a legend of every verdict, and a clean one-line exit when the two
    files share nothing."""
    base = example_doc()
    (tmp_path / "a.json").write_text(json.dumps(base))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    for record in base["cases"]:
        assert record["id"] in out
    for verdict in ("REGRESSION", "faster", "slower", "quicker", "same"):
        assert f"  {verdict} " in out
    other = copy.deepcopy(base)
    other["cases"] = other["cases"][:1]
    base["cases"] = base["cases"][1:]
    (tmp_path / "b.json").write_text(json.dumps(base))
    (tmp_path / "c.json").write_text(json.dumps(other))
    assert main(["compare", str(tmp_path / "b.json"), str(tmp_path / "c.json")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "regression(s)" not in err and "verdict" not in err
    *why, last = err.strip().splitlines()
    assert "share no case" in last and why == [
        f"{len(base['cases'])} cases of BASE were not timed in NEW"
    ]
