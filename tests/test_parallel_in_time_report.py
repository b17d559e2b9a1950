"""How parallel can the recurrence be: the counted work and depth against the solver's own scan
and by hand, the sweep on a tiny grid (real solves), the analysis on made-up documents with
exactly known answers, and the report's section (present with the data, absent without)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from harness.analysis import measures, parallel_in_time
from harness.cli.main import main
from harness.records.parallel_in_time import SweepRow, dumps
from harness.sweeps import parallel_in_time as sweep
from harness.sweeps import parallel_in_time_work as counts
from tests.synthetic_parallel_in_time import NEWTON_WORK, bench_doc, sweep_doc
from tests.synthetic_results import example_doc, views

TINY = """
[sweep]
cells = ["gru", "lstm"]
hidden = [8]
steps = [1, 16, 128]
wide_hidden = []
gains = [1.0, 12.0]
gain_steps = 128
gain_hidden = 8
max_iter = {newton = 20, quasi-newton = 60}
dense_limit_mib = 1
"""


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 16, 33, 64])
def test_scan_counts_match_the_solver_scan(steps, monkeypatch):
    """The compositions and applications the odd-even scan of backends/parallel_in_time really
    performs, counted by wrapping its two operations, against counts.scan_counts."""
    from backends.parallel_in_time import scan

    counted = {"compose": 0, "apply": 0}

    def counting(name, operation):
        def wrapped(A, v, dense):
            counted[name] += A.shape[0]
            return operation(A, v, dense)

        return wrapped

    monkeypatch.setattr(scan, "compose_linear", counting("compose", scan.compose_linear))
    monkeypatch.setattr(scan, "apply_linear", counting("apply", scan.apply_linear))
    rng = np.random.default_rng(0)
    A, b = rng.uniform(0.1, 0.9, (steps, 3)), rng.standard_normal((steps, 3))
    expected = b.copy()
    for t in range(1, steps):
        expected[t] = A[t] * expected[t - 1] + b[t]
    np.testing.assert_allclose(scan.linear_scan(A, b.copy(), False), expected, rtol=1e-12)
    compositions, applications, rounds = counts.scan_counts(steps)
    assert (counted["compose"], counted["apply"]) == (compositions, applications)
    if steps >= 2 and steps & (steps - 1) == 0:
        assert rounds == 2 * int(math.log2(steps)) - 1


def test_work_and_depth_by_hand():
    """GRU, B=1, T=4, I=1, H=N=2: scan (2 compositions, 4 applications, 3 rounds). Sequential
    2*4*3*2*(1+2) = 144; projection 48. Dense iteration 4*(24 + 24 + 8) + 2*16 + 4*8 = 288;
    diagonal 4*(24 + 12 + 4) + 2*2 + 4*4 = 180."""
    dense = counts.work("newton", "gru", 1, 4, 1, 2, 3)
    assert dense["work_per_iteration"] == 2.0
    assert dense["work_multiplier"] == pytest.approx((48 + 3 * 288) / 144, rel=1e-15)
    assert (dense["depth_per_iteration"], dense["depth"], dense["sequential_depth"]) == (5, 15, 4)
    quasi = counts.work("quasi-newton", "gru", 1, 4, 1, 2, None)
    assert quasi["work_per_iteration"] == 180 / 144
    assert quasi["work_multiplier"] is None and quasi["depth"] is None
    # the LSTM's state is concat(h, c): N = 2H in the scan, G = 4 in the products
    assert counts.iteration_flops("newton", "lstm", 1, 2, 1) == 2 * (8 + 8 + 8) + 1 * 2 * 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "tiny.toml").write_text(TINY)
    out = folder / "parallel-in-time.json"
    assert main(["parallel-in-time", "--sweep", str(folder / "tiny.toml"), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_tiny_sweep_rows(tiny):
    assert tiny["kind"] == "rnnbench-parallel-in-time" and tiny["schema_version"] == 3
    assert tiny["environment"]["git"]["commit"] == tiny["commit"]  # None outside a git checkout
    rows = tiny["rows"]
    assert len(rows) == len(sweep.load_grid_text(TINY).points()) == 2 * 3 * 2 + 2 * 2 * 2
    for row in rows:
        assert set(SweepRow.model_fields) == set(row)  # every field written, null or not
        assert row["converged"] == (row["iterations"] is not None) or row["status"] == "skipped"
        if row["converged"]:
            # first-k-exact: T updates and one that confirms always suffice
            assert 1 <= row["iterations"] <= row["steps"] + 1
            assert row["parity_passed"] and row["max_abs_error"] < 1e-9
            work = counts.work(row["method"], row["cell"], 2, row["steps"], 8, 8, row["iterations"])
            assert row["work_multiplier"] == pytest.approx(work["work_multiplier"], rel=1e-12)
            assert row["depth"] == row["iterations"] * counts.depth_per_iteration(row["steps"])
            # every change recorded, the last the first under tol
            assert len(row["residuals"]) == row["iterations"] and row["residuals"][-1] <= 1e-12
        else:
            assert row["reason"] and row["work_multiplier"] is None
    chaotic = [r for r in rows if r["lle"] > 0]
    assert chaotic and not any(r["converged"] for r in chaotic)  # max_iter < T here
    # LSTM N=16: 3 * 128 * 2 * 16^2 * 8 bytes = 1.5 MiB of dense Jacobians > 1 MiB
    (skipped,) = {r["reason"] for r in rows if r["status"] == "skipped"}
    assert "dense_limit_mib = 1" in skipped and "T=128" in skipped
    assert all(r["iterations"] <= 2 for r in rows if r["steps"] == 1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sweep", "nothere.toml", "--json", "x.json"], "cannot read it"),
        (["--sweep", "default"], "--sweep needs --json"),
        (["--sweep", "default", "--json", "x.json", "--cell", "gru"], "drop --cell"),
        (["--sweep", "default", "--json", "x.json", "--hidden", "64"], "drop --hidden"),
        (["--sweep", "bad.toml", "--json", "x.json"], "unknown keys ['hiden']"),
        (["--sweep", "cells.toml", "--json", "x.json"], "cells = ['elman']"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("[sweep]\nhiden = [32]\n")
    (tmp_path / "cells.toml").write_text('[sweep]\ncells = ["elman"]\n')
    assert main(["parallel-in-time", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.json").exists()


def test_analysis_of_made_up_documents():
    bench = views(bench_doc())
    result = measures.analyse(bench)
    solves = parallel_in_time.analyse([sweep_doc()], result.rows, result.penalties)
    assert solves is not None
    (timed,) = solves.timed
    assert timed.time_ratio_ci == (2.0, 2.0, 2.0)  # 20 ms / 10 ms, paired round by round
    assert timed.work_multiplier == NEWTON_WORK
    assert timed.parallelism_found_ci == (NEWTON_WORK / 2,) * 3
    assert timed.headroom_ci == (4.0, 4.0, 4.0)  # the step loop / its product: 10 / 2.5 ms
    assert timed.work.depth == 5 * (2 + 11)  # T=64: 2*6 - 1 scan rounds
    assert "cannot pay" in parallel_in_time.headroom(NEWTON_WORK, timed.headroom_ci)
    assert parallel_in_time.headroom(3.9, timed.headroom_ci) == "penalty above the work multiplier"
    assert "reaches" in parallel_in_time.headroom(4.0, (4.0, 3.5, 4.5))
    # the verdict is the measured interval's alone: 2x [2, 2] loses, whatever the penalty
    assert timed.verdict == "loses" and timed.prediction is None
    newton, quasi = solves.by_steps
    assert [p.iterations for p in quasi.points] == [2, 16, 22]
    summary, *texts = [f.text for f in solves.findings]
    assert "at commit 0123456789, default init): at T=256, against the step loop's 256" in summary
    assert "newton 5 iterations, 54.5x the work, depth 85 rounds" in summary
    assert "quasi-newton 22 iterations, 19x the work, depth 374 rounds" in summary
    assert "iterations at T = 1: 2, 16: 5, 256: 5." in texts[0]
    assert (
        "does not converge within 100 iterations from LLE +0.05 (gain 6; 2 of 5 gains)"
        in (texts[2])
    )
    assert (
        "at LLE -0.01 (gain 3) its change fell under tol after 969 iterations while still off "
        "the sequential run (max |error| 5.0e-11)" in texts[2]
    )
    assert "up to 5 at LLE -0.50 (gain 1)" in texts[2]
    assert "**2.00x [2.00, 2.00]** the step loop's time for **59.6x** its work" in texts[3]
    assert "29.8x [29.8, 29.8] the step loop's FLOP rate" in texts[3]
    assert "Recurrence penalty there 4.00x [4.00, 4.00]" in texts[3]
    assert not any(f.unstable for f in solves.findings)


def test_no_parallel_in_time_data_no_section():
    result = measures.analyse(views(example_doc()))
    assert parallel_in_time.analyse([], result.rows, result.penalties) is None


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel-in-time-report")
    bench, swept = folder / "bench.json", folder / "parallel-in-time.json"
    bench.write_text(json.dumps(bench_doc()))
    swept.write_text(dumps(sweep_doc()))
    assert main(["report", str(bench), str(swept), "--out", str(folder / "with")]) == 0
    old = folder / "old.json"  # no Newton timing, no sweep: an old report
    old.write_text(json.dumps(example_doc()))
    assert main(["report", str(old), "--out", str(folder / "without")]) == 0
    return folder


def test_report_renders_the_section(reports):
    text = (reports / "with" / "report.md").read_text()
    assert "## Parallel in time: how parallel can this recurrence be" in text
    assert "the next section measures it" in text
    for name in ("iterations_vs_T", "iterations_vs_lle", "work_depth", "speed"):
        assert f"(img/parallel_in_time_{name}.png)" in text
        assert (reports / "with" / "img" / f"parallel_in_time_{name}.png").read_bytes()[
            :4
        ] == b"\x89PNG"
    assert "| sweep-box | gru | quasi-newton | 32 | 2 | 16 | 22 |" in text  # iterations vs T
    row = "| 2.00x [2.00, 2.00] | 59.6x | 29.781x [29.781, 29.781] | loses | not predicted | 4.00x"
    assert row in text and "room for a win" not in text
    assert "| sweep-box | gru | newton | 32 | 256 | 6 | +0.050 | no (" in text  # the gain table
    assert "| 3 | -0.010 | 969, off the sequential run | 1.05e+04x | 5.0e-11 |" in text
    assert "Sweeps: sweep-box, commit 0123456789, 12 s" in text
    findings = text.split("## Findings")[1].split("\n## ")[0]
    assert "break-even needs more than 59.6x" in findings


def test_report_without_parallel_in_time_data(reports):
    text = (reports / "without" / "report.md").read_text()
    assert "## Parallel in time" not in text and "parallel_in_time_" not in text
    assert "no parallel-in-time sweep or timing among these inputs measures it" in text
    assert not list((reports / "without" / "img").glob("parallel_in_time_*"))


def test_report_refuses_a_sweep_of_another_schema(tmp_path, capsys):
    bench, sweep = tmp_path / "bench.json", tmp_path / "parallel-in-time.json"
    bench.write_text(json.dumps(example_doc()))
    doc = json.loads(dumps(sweep_doc()))
    doc["schema_version"] = 4
    sweep.write_text(json.dumps(doc))
    assert main(["report", str(bench), str(sweep), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"schema_version 4: this rnnbench reads 1, 2, 3", err) and err.count("\n") == 1
