"""Newton's rounding floor (backends/parallel_in_time/rounding_floor.py, harness/predict/
rounding_floor.py): Newton started at the model's sequential states counts what rounding alone
costs it; where that passes the law's count it is the prediction, in the solve's framework."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from backends.parallel_in_time.rounding_floor import FloorRun, floor_runs
from harness import registry
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import init_weights, load_weights
from harness.predict import laws as law_files
from harness.predict.counted import Counted
from harness.predict.model import Predictor
from harness.predict.rounding_floor import STALLED_RUN, Floor, newton_floor

TRAINED = Path(__file__).resolve().parents[1] / "results/trained"


def _trained(name: str):
    files = sorted(TRAINED.glob(f"model-{name}-*.npz"))
    if not files:
        pytest.skip("the trained example models are not in this checkout")
    return load_weights(files[0])


def test_a_floor_is_read_at_its_own_t_and_on_past_a_stalled_one():
    floor = Floor(1, (FloorRun(64, 3, 3, 2e-6), FloorRun(256, None, 40, 3e-6, "deadline")))
    assert floor.count(64) == 3
    assert floor.count(256) == 257  # still above tol after STALLED_RUN or more: T + 1
    assert floor.count(1024) == 1025  # past a stalled run: the floor only rises with T
    assert floor.count(128) is None  # past a run that ended in 3: nothing said
    assert floor.count(16) is None  # shorter than every run: nothing said
    cut_early = Floor(1, (FloorRun(64, None, STALLED_RUN - 1, 2e-6, "deadline"),))
    assert cut_early.count(64) is None and cut_early.count(256) is None
    slow = Floor(1, (FloorRun(64, STALLED_RUN + 4, STALLED_RUN + 4, 2e-6),))
    assert slow.count(64) == STALLED_RUN + 4 and slow.count(256) == 257
    # a run cut by the budget before it says anything reads the stalled shorter run, as a T
    # not run does; so does one that ended on a non-finite value
    stalled, cut = FloorRun(64, None, 65, 2e-6, "T + 1"), FloorRun(256, None, 3, 2e-6, "deadline")
    assert Floor(1, (stalled, cut)).count(256) == 257
    assert Floor(1, (cut,)).count(256) is None
    nan = FloorRun(256, None, 40, 2e-6, "non-finite")
    assert Floor(1, (nan,)).count(256) is None  # a NaN is no stall
    assert Floor(1, (stalled, nan)).count(256) == 257


def test_the_floor_decides_newton_over_the_law_and_over_quasi_newton_s_stall():
    laws, _ = law_files.load()
    spec = ModelSpec(cell=Cell.RNN, input_size=8, hidden_size=64, dtype="float32")
    quasi_stalled = Counted("quasi-newton", 1, {256: 156, 512: 314}, float64_count=159)
    assert quasi_stalled.stalled

    def newton(counted, floor, steps=256, max_iter=None):
        predictor = Predictor(spec, 1, -0.1, laws, None, counted, floor)  # type: ignore[arg-type]
        return predictor.iterations("newton", steps, 1e-6, max_iter)

    law, source = newton(None, None)
    assert source == "law" and law.iterations < 50
    high = Floor(1, (FloorRun(256, 200, 200, 2e-6),))
    assert newton(None, high)[0].iterations == 200
    assert newton(None, high)[1] == "rounding floor"
    assert newton(None, high, max_iter=100)[0].iterations is None  # past the limit: a reason
    assert "rounding floor" in newton(None, high, max_iter=100)[0].reason
    low = Floor(1, (FloorRun(256, 1, 1, 1e-7),))
    assert newton(quasi_stalled, low) == (law, "law")  # its own floor under tol decides
    assert newton(quasi_stalled, None)[0].iterations == 257  # no floor: quasi's stall, T + 1
    assert newton(quasi_stalled, Floor(1, ()))[0].iterations == 257
    # quasi-Newton is read from its own counts, never from Newton's floor
    assert (
        Predictor(spec, 1, -0.1, laws, None, None, high).iterations(  # type: ignore[arg-type]
            "quasi-newton", 256, 1e-6, None
        )[1]
        == "law"
    )


@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_a_contracting_model_s_floor_lies_under_tol(framework):
    if framework == "torch":
        pytest.importorskip("torch", reason="the floor run on torch's arrays")
    spec = ModelSpec(cell=Cell.GRU, input_size=8, hidden_size=16, dtype="float32")
    weights = init_weights(spec, seed=1)
    x = np.random.default_rng(0).standard_normal((128, 2, 8)).astype("float32")
    deadline = time.perf_counter() + 600
    runs = floor_runs(spec, weights.arrays, x, [32, 128], 1e-6, deadline, framework)
    assert [(r.steps, r.iterations, r.run) for r in runs] == [(32, 1, 1), (128, 1, 1)]
    assert all(0 < r.first_change < 1e-6 for r in runs)
    # in float64 the floor is ~1e-16 of the states: under any tol float32 could ask
    in64 = spec.replace(dtype="float64")
    (run,) = floor_runs(in64, weights.arrays, x, [128], 1e-12, deadline, framework)
    assert run.iterations == 1 and run.first_change < 1e-12


def test_a_run_stops_at_its_deadline_with_the_iterations_it_ran():
    spec = ModelSpec(cell=Cell.RNN, input_size=4, hidden_size=8, dtype="float32")
    weights = init_weights(spec, seed=0)
    x = np.random.default_rng(0).standard_normal((64, 1, 4)).astype("float32")
    # tol -1: no change is ever <= it: a run goes on to T + 1
    (run,) = floor_runs(spec, weights.arrays, x, [64], -1.0, time.perf_counter() + 600)
    assert (run.iterations, run.run, run.stopped) == (None, 65, "T + 1")
    assert floor_runs(spec, weights.arrays, x, [64], -1.0, time.perf_counter() - 1) == []
    # a long one (T + 1 = 8193 dense iterations take minutes) is cut at its deadline
    long = np.random.default_rng(0).standard_normal((8192, 1, 4)).astype("float32")
    started = time.perf_counter()
    (run,) = floor_runs(spec, weights.arrays, long, [8192], -1.0, started + 0.3)
    taken = time.perf_counter() - started
    assert run.stopped == "deadline" and 1 <= run.run < 8193 and run.iterations is None
    assert taken < 1.0  # past it by an iteration at most (a few ms here)
    # the sequential states are cut too: a deadline inside them leaves the length unrun
    huge = np.random.default_rng(0).standard_normal((200_000, 1, 4)).astype("float32")
    started = time.perf_counter()
    assert floor_runs(spec, weights.arrays, huge, [200_000], -1.0, started + 0.2) == []
    assert time.perf_counter() - started < 1.0


def test_lengths_are_taken_shortest_first_and_those_past_x_left_out():
    spec = ModelSpec(cell=Cell.GRU, input_size=4, hidden_size=8, dtype="float32")
    weights = init_weights(spec, seed=0)
    x = np.random.default_rng(0).standard_normal((96, 1, 4)).astype("float32")
    runs = floor_runs(spec, weights.arrays, x, [200, 64, 32], 1e-6, time.perf_counter() + 600)
    assert [r.steps for r in runs] == [32, 64]


def test_a_variant_cell_is_refused_not_run_as_the_plain_one():
    from harness.model.protocol import NotSupported

    spec = ModelSpec(cell=Cell.LSTM, input_size=4, hidden_size=8, peepholes=True)
    weights = init_weights(spec, seed=0)
    x = np.zeros((16, 1, 4), "float32")
    with pytest.raises(NotSupported):
        floor_runs(spec, weights.arrays, x, [16], 1e-6, time.perf_counter() + 600)


def test_no_run_holds_more_dense_jacobians_than_a_solve_would(monkeypatch):
    from backends.parallel_in_time import rounding_floor

    spec = ModelSpec(cell=Cell.RNN, input_size=4, hidden_size=8, dtype="float32")
    weights = init_weights(spec, seed=0)
    x = np.random.default_rng(0).standard_normal((64, 1, 4)).astype("float32")
    # 3 x T x B x H^2 x 4 bytes: 12 KiB at T = 16, 48 KiB at 64
    monkeypatch.setattr(rounding_floor, "DENSE_LIMIT_BYTES", 16 << 10)
    runs = floor_runs(spec, weights.arrays, x, [16, 64], 1e-6, time.perf_counter() + 600)
    assert [r.steps for r in runs] == [16]


def test_newton_floor_keeps_to_its_budget():
    weights = _trained("srnn_digits.keras")
    spec = weights.spec.replace(batch_first=False)
    x = np.random.default_rng(0).standard_normal((64, 1, spec.input_size))
    # 1 ms an iteration at T = 64, 16 ms at 256: STALLED_RUN of them fit 0.1 s at 64 only
    cost = lambda t: 1e-3 * (t / 64) ** 2  # noqa: E731
    floor = newton_floor(spec, weights, x, 1e-6, [64, 256], cost, budget_s=0.1)
    assert floor is not None and [r.steps for r in floor.runs] == [64]
    assert newton_floor(spec, weights, x, 1e-6, [64], lambda t: 10.0) is None


@pytest.mark.parametrize("steps", [64, 256])
def test_the_trained_simple_rnn_s_float32_newton_count_is_its_floor_s(steps):
    """The trained SimpleRNN (H = 64, LLE -0.10) in float32 on torch: the law says ~11
    iterations; rounding keeps the change above tol, and the solve takes nearly T. The floor
    run on torch's arrays lands within 2x of torch's solve at T = 64 and 256, the law does not."""
    torch = pytest.importorskip("torch", reason="the solve and floor run on torch")
    from backends.parallel_in_time.torch_newton import solve_model_torch

    weights = _trained("srnn_digits.keras")
    spec = weights.spec.replace(batch_first=False)
    x = np.random.default_rng(0).standard_normal((steps, 1, spec.input_size))
    # a budget no machine's speed decides
    floor = newton_floor(spec, weights, x, 1e-6, [steps], lambda t: 1e-4, "torch", budget_s=600)
    assert floor is not None and floor.runs[0].iterations is not None
    plain = spec.replace(head=None)
    params = {k: torch.from_numpy(np.array(weights[k], "float32")) for k in weights}
    params = {k: v for k, v in params.items() if not k.startswith("head")}
    xt = torch.from_numpy(x.astype("float32"))
    solved = solve_model_torch(plain, params, xt, "newton", 1e-6, steps + 1)
    assert solved.converged
    laws, _ = law_files.load()
    predictor = Predictor(spec, 1, -0.11, laws, None, None, floor)  # type: ignore[arg-type]
    found, source = predictor.iterations("newton", steps, 1e-6, None)
    law, _ = Predictor(spec, 1, -0.11, laws, None).iterations("newton", steps, 1e-6, None)  # type: ignore[arg-type]
    assert source == "rounding floor"
    assert abs(math.log(found.iterations / solved.iterations)) < math.log(2)
    assert abs(math.log(law.iterations / solved.iterations)) > math.log(2)


def test_the_floor_runs_through_the_registry_on_the_model_s_own_prefixes():
    """Runs at several T share one sequential pass: each equals a run on x cut to that T."""
    solver = registry.parallel_in_time()
    spec = ModelSpec(cell=Cell.LSTM, input_size=4, hidden_size=8, dtype="float32")
    params = dict(init_weights(spec, seed=3).arrays)
    params["l0.R"] = params["l0.R"] * 6  # near LLE = 0: a floor above a small tol
    x = np.random.default_rng(1).standard_normal((96, 1, 4)).astype("float32")
    far = time.perf_counter() + 600
    together = solver.floor_runs(spec, params, x, [32, 96], 1e-7, far)
    alone = [solver.floor_runs(spec, params, x[:t], [t], 1e-7, far)[0] for t in (32, 96)]
    assert together == alone
