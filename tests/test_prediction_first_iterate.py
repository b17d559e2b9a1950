"""What a solve does before its first iterate settles, predicted before it runs: the first
iterate's growth at s = 0 (backends/parallel_in_time/first_iterate.py) against the dtype's range
(a non-finite value at iteration 1, confirmed by the solve). Newton's rounding floor has its
own tests (test_prediction_rounding_floor.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from backends.parallel_in_time.first_iterate import FirstIterateGrowth, first_iterate_growth
from harness import registry
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import CanonicalWeights, init_weights
from harness.predict import laws as law_files
from harness.predict.model import Predictor

TRAINED = Path(__file__).resolve().parents[1] / "results/trained"


def _linear_at_zero(R: np.ndarray, dtype: str = "float64", cell: str = "rnn") -> CanonicalWeights:
    """An RNN whose step at s = 0 is J = R exactly (no input weight, no bias: tanh'(0) = 1)."""
    H = R.shape[0]
    spec = ModelSpec(cell=Cell(cell), input_size=2, hidden_size=H, dtype=dtype)
    weights = init_weights(spec, seed=0)
    arrays = {k: np.zeros_like(v) for k, v in weights.arrays.items()}
    arrays["l0.R"] = R[None].astype(dtype)
    return CanonicalWeights(spec, arrays)


def _applied(steps: int) -> np.ndarray:
    """Within the first t steps the scan applies J_1 .. J_{t-1} (never J_0): t - 1 of them."""
    return np.maximum(np.arange(steps + 1) - 1, 0)


def test_growth_at_zero_is_the_log_of_the_products():
    """J_t = a Q (Q orthogonal): Newton's products grow by a^(t-1) exactly within t steps;
    quasi-Newton's by the largest running product of |a Q_ii|, over any span."""
    H, a = 6, 1.5
    Q = np.linalg.qr(np.random.default_rng(3).standard_normal((H, H)))[0]
    weights = _linear_at_zero(a * Q)
    x = np.zeros((40, 2, 2))
    growth = first_iterate_growth(weights.spec, weights.arrays, x)
    assert growth.steps == 40
    assert growth.per_step["dense"] == pytest.approx(math.log(a), rel=1e-12)
    np.testing.assert_allclose(growth.spans["dense"], _applied(40) * math.log(a), rtol=1e-10)
    logs = np.log(np.abs(a * np.diag(Q)))
    best = max(logs.max(), 0.0)  # a shrinking component's best span is empty: log 1
    np.testing.assert_allclose(growth.spans["diagonal"], _applied(40) * best, atol=1e-12)
    # past the input's 40 steps: on at the measured rate
    assert growth.log_growth("dense", 100) == pytest.approx(99 * math.log(a))
    assert growth.log_growth("dense", 10) == pytest.approx(9 * math.log(a))
    assert FirstIterateGrowth.log_limit("float32") == pytest.approx(math.log(3.4028235e38))


def test_a_span_ends_where_its_product_shrinks_or_is_zero_and_the_next_is_counted():
    """R = diag(2, 0.5): growth by 2 a step, except at step 10 (an input saturates tanh, its
    derivative exactly 0: the products through it are 0) and steps 20-24 (a smaller input
    takes tanh' to 1/8, a factor 1/4 a step). The largest span: steps 25-39, 15 x log 2 (steps
    1-9 give 9, 11-19 give 9, and 11-39 through the dip give 19 - 10 = 9); the rate a step is
    the mean of the logs, a zero held at log(tiny)."""
    R = np.diag([2.0, 0.5])
    weights = _linear_at_zero(R)
    arrays = dict(weights.arrays)
    arrays["l0.W"] = np.eye(2)[None]  # z = x, no bias
    x = np.zeros((40, 1, 2))
    x[10] = 1e3
    dip = math.atanh(math.sqrt(1 - 1 / 8))  # tanh'(dip) = 1/8
    x[20:25] = dip
    growth = first_iterate_growth(weights.spec, arrays, x)
    # the diagonal exactly; the pushed vector within the steps it takes to align with the
    # growing direction (from its seeded start, and again from the fresh one after step 10)
    for mode, within in (("diagonal", 1e-9), ("dense", 1.0)):
        spans = np.asarray(growth.spans[mode]) / math.log(2)
        assert spans[10] == pytest.approx(9, abs=within)  # J_1 .. J_9
        assert spans[20] == pytest.approx(9, abs=within)  # steps 11-19 tie, never through 10
        assert spans[-1] == pytest.approx(15, abs=within)
    tiny = math.log(np.finfo(np.float64).tiny)
    expected = (33 * math.log(2) + 5 * math.log(1 / 4) + tiny) / 39
    assert growth.per_step["diagonal"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_predicted_overflow_at_iteration_1_happens_and_one_predicted_finite_does_not(cell):
    """Newton in float32 on a model whose Jacobians at s = 0 grow: predicted to pass float32's
    largest value at iteration 1 exactly where the solve's first change is not finite. The
    length at which the predicted growth crosses the limit is read from the prediction; the
    solve is run at 0.7 and 1.3 times it."""
    spec = ModelSpec(cell=Cell(cell), input_size=4, hidden_size=16, dtype="float32")
    weights = init_weights(spec, seed=2)
    arrays = dict(weights.arrays)
    arrays["l0.R"] = arrays["l0.R"] * {"rnn": 3.0, "gru": 6.0, "lstm": 8.0}[cell]
    x = np.random.default_rng(0).standard_normal((1024, 1, 4))
    growth = first_iterate_growth(spec, arrays, x)
    limit = growth.log_limit("float32")
    crossing = next(t for t in range(1, 1025) if growth.log_growth("dense", t) > limit)
    assert 20 < crossing < 700, "the seeded model must cross within the input"
    solver = registry.parallel_in_time()
    for steps in (int(0.7 * crossing), int(1.3 * crossing)):
        expected = growth.log_growth("dense", steps) > limit
        params = {k: v.astype("float32") for k, v in arrays.items()}
        with np.errstate(all="ignore"):
            result = solver.solve_model(
                spec, params, x[:steps].astype("float32"), "newton", 1e-6, 1
            )
        first_change = result.solves[0].residuals[0]
        assert (not math.isfinite(first_change)) is expected, (steps, first_change)
        assert expected is (steps > crossing)


def test_quasi_newton_s_first_iterate_overflows_where_the_diagonal_products_pass_the_range():
    """The fused quasi-Newton kernel on R = 1.4 I plus a small random part (its diagonal
    products grow about 1.4 a step at s = 0): its first float32 change is not finite exactly
    where the diagonal's predicted growth passes float32's largest value."""
    H = 8
    spec = ModelSpec(cell=Cell.RNN, input_size=4, hidden_size=H, dtype="float32")
    rng = np.random.default_rng(5)
    arrays = dict(init_weights(spec, seed=5).arrays)
    arrays["l0.R"] = (1.4 * np.eye(H) + 0.05 * rng.standard_normal((H, H)))[None]
    arrays["l0.W"] = 0.1 * arrays["l0.W"]
    x = rng.standard_normal((1024, 1, 4))
    growth = first_iterate_growth(spec, arrays, x)
    limit = growth.log_limit("float32")
    crossing = next(t for t in range(1, 1025) if growth.log_growth("diagonal", t) > limit)
    assert 100 < crossing < 700
    solver = registry.parallel_in_time()
    for steps in (int(0.8 * crossing), int(1.2 * crossing)):
        params = {k: np.asarray(v, "float32") for k, v in arrays.items()}
        with np.errstate(all="ignore"):
            result = solver.solve_model(
                spec, params, x[:steps].astype("float32"), "quasi-newton", 1e-6, 1
            )
        first_change = result.solves[0].residuals[0]
        assert (not math.isfinite(first_change)) is (steps > crossing), (steps, first_change)


def test_the_predictor_says_which_term_stops_a_solve():
    """An exponent >= 0 is the reason first; past it, a predicted overflow ends the solve with
    its reason and source; a growth inside the range leaves the law."""
    laws, _ = law_files.load()
    spec = ModelSpec(cell=Cell.RNN, input_size=8, hidden_size=64, dtype="float32")
    growth = FirstIterateGrowth(
        100, {"dense": tuple(0.5 * t for t in range(101)), "diagonal": (0.0,) * 101}, {}
    )
    growth = FirstIterateGrowth(100, growth.spans, {"dense": 0.5, "diagonal": -1.0})
    predictor = Predictor(spec, 1, -0.2, laws, costs=None, growth=growth)  # type: ignore[arg-type]
    found, source = predictor.iterations("newton", 200, 1e-6, None)  # 100 > 88.7
    assert (found.iterations, source) == (None, "first iterate")
    assert "non-finite value at iteration 1" in found.reason and "e^100" in found.reason
    found, source = predictor.iterations("newton", 160, 1e-6, None)  # 80 < 88.7
    assert found.iterations is not None and source == "law"
    found, source = predictor.iterations("quasi-newton", 4096, 1e-6, None)
    assert found.iterations is not None and source == "law"
    chaotic = Predictor(spec, 1, 0.1, laws, costs=None, growth=growth)  # type: ignore[arg-type]
    found, source = chaotic.iterations("newton", 200, 1e-6, None)
    assert source == "law" and "LLE" in found.reason
    in_float64 = Predictor(spec.replace(dtype="float64"), 1, -0.2, laws, None, growth=growth)  # type: ignore[arg-type]
    assert in_float64.iterations("newton", 200, 1e-6, None)[1] == "law"


def test_a_bench_solve_that_fails_records_its_prediction_and_the_report_says_it_agreed(tmp_path):
    """A newton case whose first float32 iterate overflows (R x 3, as the gain ladder's): the
    case fails, never timed, and its record holds the prediction made at build, "does not
    converge" from the first iterate; the report's cases not timed say it agreed."""
    pytest.importorskip("torch", reason="the case runs torch's solver")
    from harness.analysis.machine_sections import _predicted
    from harness.bench import workload
    from harness.bench.case import model_case
    from harness.model.weights import save_weights
    from harness.records.prediction import PredictedSolve
    from harness.records.results import CaseRecord

    spec = ModelSpec(cell=Cell.RNN, input_size=4, hidden_size=16)
    seeded = init_weights(spec, seed=2)
    weights = CanonicalWeights(spec, {**seeded.arrays, "l0.R": 3 * seeded.arrays["l0.R"]})
    save_weights(weights, tmp_path / "m.npz")
    case = model_case("torch-cpu", "newton", spec, "m.npz", str(tmp_path / "m.npz"), "", 1, 512, 1)
    backend, _ = workload.open_backend(case)
    built = workload.build(case, backend)
    assert [c.passed for c in built.checks] == [False]
    assert "non-finite value at iteration 1" in built.checks[0].message
    predicted = built.record["parallel_in_time"]["prediction"]
    assert predicted is not None and predicted["iterations"] is None
    assert predicted["iterations_from"] == "first iterate" and predicted["steps"] == 512
    assert "predicted" in built.notes
    row = CaseRecord.model_validate(
        {"id": "x", "case": case.as_dict(), "status": "failed", **built.record}
    )
    assert _predicted(row).startswith("; predicted before it ran: does not converge (a non-fin")
    assert _predicted(row).endswith(": agrees")
    said_converges = {**predicted, "iterations": 7, "reason": None, "iterations_from": "law"}
    said_converges |= {"work_multiplier": 1.0, "solve_s": 1.0, "ratio": 2.0, "verdict": "loses"}
    wrong = row.model_copy(
        update={
            "parallel_in_time": row.parallel_in_time.model_copy(
                update={"prediction": PredictedSolve.model_validate(said_converges)}
            )
        }
    )
    assert _predicted(wrong) == "; predicted before it ran: converges in 7 iterations: disagrees"
