"""The report's predicted-against-measured part from a synthetic results file whose numbers are
known exactly: each case's error and the term that missed, the held-out tally, the break-even
T predicted against measured, and the verdicts from the measured interval beside the
predicted ones."""

from __future__ import annotations

import json
import math

import pytest

from harness import stats
from harness.analysis import measures, parallel_in_time
from harness.analysis import prediction as compare
from harness.bench.case import make_case
from harness.cli.main import main
from harness.json_values import JsonObject
from harness.records.prediction import PredictedSolve
from harness.records.store import machine_views
from tests.synthetic_results import document, record, spread

SHAPE = {"cell": "gru", "batch": 1, "input_size": 8, "hidden": 16, "threads": 1}
LOOP_PER_STEP = 10e-6
# T -> (measured solve seconds, predicted iteration seconds, predicted loop seconds, iterations
# predicted); the solve counts 10 iterations everywhere
CASES = {
    64: (1.28e-3, 0.128e-3, 0.64e-3, 10),  # measured 2x the loop; predicted 2x: exact
    256: (2.56e-3, 0.256e-3, 2.56e-3, 10),  # measured 1x [0.99, 1.01]; predicted 1x
    1024: (5.12e-3, 0.128e-3, 10.24e-3, 40),  # measured 0.5x; predicted 40 iterations: 0.5x
    4096: (20.48e-3, 2.048e-3, 40.96e-3, 10),  # measured 0.5x; the iteration 4x dearer: 0.5 -> 0.5
}


def predicted(steps: int, iteration_s: float, loop_s: float, iterations: int) -> JsonObject:
    solve = iterations * iteration_s
    return PredictedSolve(
        method="quasi-newton",
        steps=steps,
        iterations=iterations,
        work_multiplier=3.0,
        iteration_s=iteration_s,
        setup_s=0.0,
        solve_s=solve,
        step_loop_s=loop_s,
        ratio=solve / loop_s,
        verdict="wins" if solve < loop_s else "loses",
        break_even_steps=300.0,
    ).model_dump()


@pytest.fixture(scope="module")
def results_doc() -> JsonObject:
    records = []
    for steps, (solve_s, iteration_s, loop_s, iterations) in CASES.items():
        loop = record(make_case("torch-cpu", "forward", steps=steps, **SHAPE), spread(steps * 1e-5))
        solve = record(
            make_case("torch-cpu", "quasi-newton", steps=steps, **SHAPE), spread(solve_s)
        )
        solve["parallel_in_time"] = {
            "method": "quasi-newton",
            "tol": 1e-6,
            "max_iter": steps + 1,
            "lle": -0.5,
            "converged": True,
            "iterations": 10,
            "prediction": predicted(steps, iteration_s, loop_s, iterations),
        }
        records += [loop, solve]
    return document(records, "predict-box")


def analysed(doc: JsonObject) -> compare.PredictionAnalysis:
    from harness.records.results import ResultsDocument

    views = machine_views(ResultsDocument.model_validate(doc), "synthetic.json")
    result = measures.analyse(views)
    solves = parallel_in_time.analyse([], result.rows, result.penalties)
    assert solves is not None and solves.prediction is not None
    return solves.prediction


def test_errors_terms_and_tally(results_doc):
    found = analysed(results_doc)
    rows = {r.solve.steps: r for r in found.rows}
    assert rows[64].error == pytest.approx(1.0) and rows[64].missed is None
    assert rows[256].solve.verdict == "too close to call"  # [0.99, 1.01] holds 1
    assert rows[256].agrees is None
    # 1024: 40 predicted iterations of 0.128 ms = 5.12 ms against 10.24 ms: 0.5x, measured 0.5x
    assert rows[1024].error == pytest.approx(1.0)
    assert rows[1024].factors["iterations"].factor == pytest.approx(4.0)
    # 4096: predicted 10 x 2.048 ms = 20.48 ms over 40.96 ms = 0.5x, measured 0.5x: exact
    assert rows[4096].error == pytest.approx(1.0)
    assert rows[4096].solve.verdict == "wins" and rows[4096].agrees is True
    summary = found.summary
    assert summary is not None
    assert summary.cases == 4 and summary.within_2x == 1.0 and summary.met
    assert summary.median_abs_log_error == pytest.approx(0.0, abs=1e-9)
    assert (summary.verdicts_told, summary.verdicts_agree) == (3, 3)


def test_a_miss_names_its_term(results_doc):
    doc = json.loads(json.dumps(results_doc))
    for case in doc["cases"]:
        solve = case.get("parallel_in_time")
        if solve and case["case"]["steps"] == 4096:
            # predicted 3 iterations where 10 were counted: 0.15x predicted against 0.5x
            solve["prediction"] = predicted(4096, 2.048e-3, 40.96e-3, 3)
    rows = {r.solve.steps: r for r in analysed(doc).rows}
    assert rows[4096].error == pytest.approx(0.3)
    assert rows[4096].missed == "iterations (predicted 3, counted 10)"


def test_break_even_measured_and_predicted(results_doc):
    (series,) = analysed(results_doc).break_even
    # measured ratios 2, 1 (exactly at 1: not a win), 0.5, 0.5: the crossing lies between
    # T=256 (ratio 1.0) and T=1024 (0.5), log-linear: 256 exactly, where log ratio is 0
    assert series.measured == pytest.approx(256.0)
    assert series.predicted == 300.0 and series.ratio == pytest.approx(300 / 256)
    assert series.within is True
    assert compare.crossing([(16, 4.0), (256, 0.25)]) == pytest.approx(64.0)
    assert compare.crossing([(16, 0.5), (64, 0.4)]) == 16.0
    assert compare.crossing([(16, 0.5), (64, 1.5)]) is None


def test_the_predicted_break_even_is_the_median_of_each_case_s(results_doc):
    """Each case predicted its own from its own probe: one disturbed probe does not move the
    series' (the median), and every case's own is kept and judged; no break-even ranks above
    any T."""
    doc = json.loads(json.dumps(results_doc))
    solved = [c for c in doc["cases"] if c.get("parallel_in_time")]
    assert len(solved) == 4
    for case, own in zip(solved, [300.0, 290.0, 700.0, 310.0], strict=True):
        case["parallel_in_time"]["prediction"]["break_even_steps"] = own
    (series,) = analysed(doc).break_even
    assert series.predicted_each == (300.0, 290.0, 700.0, 310.0)  # shortest T first
    assert series.predicted == pytest.approx(math.sqrt(300 * 310))  # of four: the middle two
    assert series.within and series.within_each() == 3  # 700 / 256 is past 2x
    for case, own in zip(solved, [300.0, None, None, None], strict=True):
        case["parallel_in_time"]["prediction"]["break_even_steps"] = own
    (series,) = analysed(doc).break_even
    assert series.predicted is None and series.ratio is None and not series.within
    assert series.within_each() == 1  # "none" where one was measured is a miss of its own
    solved[0]["parallel_in_time"]["prediction"] = None  # a case without a prediction: left out
    (series,) = analysed(doc).break_even
    assert series.predicted_each == (None, None, None)


def test_a_break_even_below_every_t_timed_is_a_bound(results_doc):
    """Every T timed wins: the break-even lies at or below the shortest, so a prediction at or
    below twice that is within 2x, and one above it is not."""
    doc = json.loads(json.dumps(results_doc))
    for case in doc["cases"]:
        if case.get("parallel_in_time"):  # every solve a fifth of its loop (10 us a step)
            case["samples_s"] = spread(case["case"]["steps"] * 2e-6)
            case["stats"] = stats.summarize(case["samples_s"])
    for bound, predicted_T, within in [(64, 24.0, True), (64, 120.0, True), (64, 622.0, False)]:
        for case in doc["cases"]:
            if case.get("parallel_in_time"):
                case["parallel_in_time"]["prediction"]["break_even_steps"] = predicted_T
        (series,) = analysed(doc).break_even
        assert series.at_most and series.measured == bound
        assert series.within is within, predicted_T


def test_report_shows_the_table_and_the_plot(results_doc, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_doc))
    out = tmp_path / "report"
    assert main(["report", str(path), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "4 held-out cases: 100% within 2x of the measured ratio" in text
    assert (
        "| 64 | 16 | -0.500 | 10 / 10 | 2x | 2.00x [2.00, 2.00] | 1.00x | loses (loses) |" in text
    )
    assert (
        "| 1024 | 16 | -0.500 | 40 / 10 | 0.5x | 0.50x [0.50, 0.50] | 1.00x | wins (wins) |" in text
    )
    assert "Break-even T, predicted against measured (predicted: the median" in text
    assert "| 256 | 300 (300, 300, 300, 300) | 1.17x | yes |" in text
    assert (out / "img" / "parallel_in_time_prediction.png").exists()
