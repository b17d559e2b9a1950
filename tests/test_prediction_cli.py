"""`rnnbench parallel-in-time --predict` end to end: a prediction printed and written without
any solve but quasi-Newton's short counting probes, no convergence predicted for a chaotic model
and confirmed by running it, the one-line verdict a run ends with, and bad uses refused in one
line. Timings are printed, never
asserted: the prediction's own speed is measured by benchmarks/prediction_check.py."""

from __future__ import annotations

import json
import math

import pytest

from harness import registry
from harness.cli.main import main
from harness.predict import laws as law_files
from harness.predict.counted import Counted
from harness.records.prediction import Prediction
from harness.sweeps.iteration_law import predict
from tests.synthetic_law import law_file

SMALL = ("--cell", "rnn", "--hidden", "8", "--input", "4", "--dtype", "float32")
FAST = ("--framework", "torch", "--threads", "1")


@pytest.fixture(scope="module")
def law(tmp_path_factory):
    return str(law_file(tmp_path_factory.mktemp("law")))


@pytest.fixture
def no_solving(monkeypatch):
    """--predict runs no solve it predicts: only the counting probes (quasi-Newton's in the
    model's float32, and the longest in float64 too, at most half the longest T predicted,
    16384 here); the (method, dtype, length) of each is handed back."""
    solver = registry.parallel_in_time()
    counted: list[tuple[str, str, int]] = []
    real = solver.solve_model

    def probe_only(spec, params, x, method, *args, **kwargs):
        length = len(x)
        if length > 16384 // 2 or spec.head is not None:
            raise AssertionError(f"--predict solved {method} {spec.dtype} at T={length}")
        counted.append((method, spec.dtype, length))
        return real(spec, params, x, method, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("--predict made a timed solve")

    monkeypatch.setattr(solver, "solve_model", probe_only)
    monkeypatch.setattr(solver, "make_runner", refuse)
    return counted


def test_predict_prints_and_writes_without_solving(tmp_path, capsys, law, no_solving):
    pytest.importorskip("torch", reason="the prediction probes torch's solver and step loop")
    out = tmp_path / "prediction.json"
    argv = ["parallel-in-time", *SMALL, *FAST, "--steps", "64", "--predict", "--law", law]
    assert main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "without solving" in text and "converged in" not in text
    laws, source = law_files.load(law)
    for method in ("newton", "quasi-newton"):
        assert f"{method}: k = {laws[('rnn', method)].formula()}" in text
    record = json.loads(out.read_text())
    prediction = Prediction.model_validate(record["prediction"])
    assert prediction.law_source == source and source.endswith("at commit feedc0ffee")
    assert {s.steps for s in prediction.solves} == {16, 64, 256, 1024, 4096, 16384}
    assert {s.method for s in prediction.solves} == {"newton", "quasi-newton"}
    assert -1 < prediction.lle < 0
    # counting probes, the first of them times the rest; float64 at the longest sees a stall;
    # Newton's floor runs solve nothing (they start at the sequential states)
    quasi = [("quasi-newton", d, t) for d, t in [("float32", 128), ("float32", 256)]]
    quasi += [("quasi-newton", d, 512) for d in ("float32", "float64")]
    assert no_solving == quasi
    floor = prediction.rounding_floor
    assert floor is not None and floor.batch == 1 and floor.runs
    assert [r.steps for r in floor.runs] == sorted(r.steps for r in floor.runs)
    assert {r.steps for r in floor.runs} <= {16, 64, 256, 1024, 4096, 16384}
    assert all(r.iterations == 1 and r.first_change < 1e-6 for r in floor.runs)
    assert "newton from the model's sequential float32 states (its rounding floor" in text
    assert prediction.counted is not None and prediction.counted.method == "quasi-newton"
    counts = {c.steps: c.iterations for c in prediction.counted.counts}
    assert set(counts) == {256, 512}  # the two longest probes are kept
    assert all(k and 2 <= k <= t + 1 for t, k in counts.items())
    float64 = prediction.counted.float64_iterations
    assert float64 is not None and 2 <= float64 <= 513
    seen = Counted("quasi-newton", 1, counts, float64_count=float64)
    assert prediction.counted.stalled is seen.stalled
    found = ", ".join(f"{counts[t]} at T={t}" for t in (256, 512))
    assert f"iterations counted on the model (float32, 1 input columns): {found}; " in text
    assert f"float64 took {float64} at T=512" in text
    for solve in prediction.solves:
        # Newton: the law at the model's exponent, T and float32's tol 1e-6 (CLI limit 100);
        # quasi-Newton: the counts read on from 256 and 512 (at most T + 1, never below the
        # 256 count)
        if solve.method == "newton":
            law = laws[("rnn", "newton")]
            expected = predict(law, prediction.lle, solve.steps, 1e-6, 100).iterations
            assert (solve.iterations, solve.iterations_from) == (expected, "law")
        else:
            k = seen.extrapolate(solve.steps)
            assert (solve.iterations, solve.iterations_from) == (
                math.ceil(min(solve.steps + 1, k) - 1e-9),
                "counted",
            )
            assert solve.iterations >= min(solve.steps + 1, counts[256])
        assert solve.ratio == pytest.approx(solve.solve_s / solve.step_loop_s)
        assert solve.verdict == ("wins" if solve.ratio < 1 else "loses")
    for method in ("newton", "quasi-newton"):
        assert f"{method} at T=64: predicted to" in text


def test_chaotic_model_predicted_not_to_converge_and_it_does_not(tmp_path, capsys, law):
    pytest.importorskip("torch", reason="the prediction probes torch's solver and step loop")
    argv = ["parallel-in-time", *SMALL, *FAST, "--steps", "128", "--gain", "8", "--law", law]
    assert main([*argv, "--predict"]) == 0
    text = capsys.readouterr().out
    assert text.count("does not converge") >= 12  # both methods at every T of the table
    assert "quasi-newton at T=128: predicted not to converge (LLE +" in text
    # the run confirms it: no solve equal to the sequential run, exit 1
    code = main([*argv, "--method", "quasi-newton", "--max-iter", "200"])
    captured = capsys.readouterr()
    assert code == 1
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith("verdict: quasi-newton did not solve it")
    assert last.endswith("predicted does not converge")


def test_a_run_ends_with_its_verdict(tmp_path, capsys, law):
    pytest.importorskip("torch", reason="the verdict times torch's step loop")
    out = tmp_path / "solve.json"
    argv = ["parallel-in-time", *SMALL, *FAST, "--steps", "64", "--method", "quasi-newton"]
    assert main([*argv, "--law", law, "--json", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(out.read_text())
    timing = record["versus_step_loop"]
    assert timing["backend"] == "torch-cpu" and timing["rounds"] == len(timing["solve_s"]) >= 3
    ratio = timing["ratio_ci"]
    expected = "wins" if ratio[2] < 1 else "loses" if ratio[1] > 1 else "too close to call"
    assert timing["verdict"] == expected
    assert last.startswith("verdict: quasi-newton ") and "the step loop's time" in last
    assert f"predicted {record['prediction']['verdict']}" in last


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sweep", "default", "--json", "x.json"], "drop --predict"),
        (["--law", "nothere.json"], "no parallel-in-time sweep at nothere.json"),
        (["--threads", "0"], "--threads 0: allowed an integer >= 1"),
    ],
)
def test_bad_use_is_one_line_and_exit_2(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["parallel-in-time", "--predict", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
