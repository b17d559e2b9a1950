"""Newton's method in time (backends/parallel_in_time): Jacobians, parity with the sequential
reference, convergence, the Lyapunov exponent, torch, adjoint gradients."""

from __future__ import annotations

import numpy as np
import pytest

from backends import numpy_ref
from backends.parallel_in_time import (
    ParallelResult,
    lyapunov_spectrum,
    make_runner,
    model_gradients,
    model_lyapunov,
    solve_model,
)
from backends.parallel_in_time import newton as newton_module
from backends.parallel_in_time.jacobians import input_projection, step
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import init_weights
from harness.parity.checks import compare

CELLS = ("rnn", "gru", "lstm")
METHODS = ("newton", "quasi-newton")


def _model(cell, H=6, I=4, layers=1, bidirectional=False, seed=1, dtype="float64", **extra):
    spec = ModelSpec(
        cell, I, H, num_layers=layers, bidirectional=bidirectional, dtype=dtype, **extra
    )
    return spec, dict(init_weights(spec, seed))


def _data(spec, T, B, seed=0, states=True):
    rng = np.random.default_rng(seed)
    shape = (B, T, spec.input_size) if spec.batch_first else (T, B, spec.input_size)
    x = rng.standard_normal(shape)
    LD = spec.num_layers * spec.num_directions
    h0 = 0.5 * rng.standard_normal((LD, B, spec.hidden_size)) if states else None
    c0 = 0.5 * rng.standard_normal((LD, B, spec.hidden_size)) if states else None
    return x, h0, (c0 if spec.cell is Cell.LSTM else None)


def _normal_rnn(H, gain, T, B=2, I=32, seed=0):
    """A tanh RNN with R ~ N(0, gain^2 / H), the classic route from order to chaos."""
    spec, params = _model("rnn", H=H, I=I, seed=seed)
    rng = np.random.default_rng(seed + 10)
    params["l0.R"] = rng.standard_normal((1, H, H)) * gain / np.sqrt(H)
    return spec, params, rng.standard_normal((T, B, I))


@pytest.mark.parametrize("cell", CELLS)
def test_jacobians_match_central_differences(cell):
    spec, params = _model(cell, H=5, I=3)
    H, N = 5, 10 if cell == "lstm" else 5
    rng = np.random.default_rng(2)
    xw = input_projection(
        Cell(cell),
        rng.standard_normal((3, 2, 3)),
        params["l0.W"][0],
        params["l0.Wb"][0],
        params["l0.Rb"][0],
    )
    R, Rb = params["l0.R"][0] * 2.0, params["l0.Rb"][0]
    s_prev = rng.standard_normal((3, 2, N))
    f, J = step(Cell(cell), xw, R, Rb, s_prev, "dense")
    eps = 1e-6
    numeric = np.empty_like(J)
    for j in range(N):
        delta = np.zeros(N)
        delta[j] = eps
        plus = step(Cell(cell), xw, R, Rb, s_prev + delta, None)[0]
        minus = step(Cell(cell), xw, R, Rb, s_prev - delta, None)[0]
        numeric[..., j] = (plus - minus) / (2 * eps)
    assert f.shape == (3, 2, N) and J.shape == (3, 2, N, N)
    np.testing.assert_allclose(J, numeric, atol=1e-8)
    assert np.abs(J).max() > 0.1  # not trivially zero
    _, diagonal = step(Cell(cell), xw, R, Rb, s_prev, "diagonal")
    np.testing.assert_array_equal(diagonal, np.diagonal(J, axis1=-2, axis2=-1))
    if cell == "lstm":  # d c_t / d c_{t-1} = diag(f): the forget gate, in (0, 1)
        assert (diagonal[..., H:] > 0).all() and (diagonal[..., H:] < 1).all()


CONFIGS = [
    {"layers": 1, "bidirectional": False},
    {"layers": 2, "bidirectional": True},
    {"layers": 2, "bidirectional": False, "batch_first": True},
]


@pytest.mark.parametrize("config", CONFIGS, ids=["L1", "L2-bi", "L2-batch-first"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cell", CELLS)
def test_equals_the_sequential_reference_in_float64(cell, method, config):
    spec, params = _model(cell, **config)
    x, h0, c0 = _data(spec, T=40, B=3)
    result = solve_model(spec, params, x, method, tol=1e-13, max_iter=300, h0=h0, c0=c0)
    reference = numpy_ref.forward(spec, params, x, h0=h0, c0=c0)
    assert result.converged and result.reason is None, result.reason
    assert result.iterations == max(s.iterations for s in result.solves)
    assert len(result.solves) == spec.num_layers * spec.num_directions
    for name, expected in reference.as_dict().items():
        got = getattr(result.outputs, name)
        assert compare(name, expected, got, "float64").passed
        assert np.abs(got - expected).max() < 1e-10
    residuals = result.residuals
    assert residuals[-1] <= 1e-13 < residuals[0] and len(residuals) == result.solves[0].iterations


@pytest.mark.parametrize("cell", CELLS)
def test_exact_newton_needs_a_handful_of_iterations_at_default_init(cell):
    spec, params = _model(cell, H=16, I=8)
    x, _, _ = _data(spec, T=400, B=2, states=False)
    exact = solve_model(spec, params, x, "newton", tol=1e-10, max_iter=50)
    quasi = solve_model(spec, params, x, "quasi-newton", tol=1e-10, max_iter=500)
    assert exact.converged and 3 <= exact.iterations <= 6
    assert quasi.converged and exact.iterations < quasi.iterations < 60
    residuals = exact.residuals  # quadratic: each change at most ~ the square of the last
    pairs = zip(residuals[1:-1], residuals[2:], strict=True)
    assert all(later < 10 * earlier**2 for earlier, later in pairs)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cell", CELLS)
def test_after_k_iterations_the_first_k_states_are_exact(cell, method):
    spec, params = _model(cell, H=6)
    x, h0, c0 = _data(spec, T=30, B=2)
    reference = numpy_ref.forward(spec, params, x, h0=h0, c0=c0).y
    for k in (1, 2, 5):
        result = solve_model(spec, params, x, method, tol=0.0, max_iter=k, h0=h0, c0=c0)
        assert not result.converged and result.iterations is None
        assert f"max_iter = {k}" in result.reason and len(result.residuals) == k
        np.testing.assert_allclose(result.outputs.y[:k], reference[:k], rtol=0, atol=1e-13)
        if k == 1:  # while the last state is still far off
            assert np.abs(result.outputs.y[-1] - reference[-1]).max() > 1e-3


def test_lyapunov_spectrum_of_a_linear_recurrence():
    rng = np.random.default_rng(5)
    N = 6
    Q = np.linalg.qr(rng.standard_normal((N, N)))[0]
    a = np.array([0.9, -0.95, 0.5, 0.3, -0.2, 0.05])
    A = Q @ np.diag(a) @ Q.T
    J = np.broadcast_to(A, (3000, 2, N, N))
    largest = lyapunov_spectrum([J[:1000], J[1000:]], num=1)
    assert largest.shape == (2, 1)
    np.testing.assert_allclose(largest, np.log(0.95), atol=1e-3)
    spectrum = lyapunov_spectrum([J], num=N).mean(axis=0)
    np.testing.assert_allclose(spectrum, np.sort(np.log(np.abs(a)))[::-1], atol=2e-3)


def test_lyapunov_exponent_of_a_model_that_is_a_linear_recurrence():
    """A tanh RNN with W = 0, zero biases and h0 = 0 stays at h = 0, where J_t = R exactly."""
    H = 8
    spec, params = _model("rnn", H=H)
    params = {k: np.zeros_like(v) for k, v in params.items()}
    rng = np.random.default_rng(7)
    Q = np.linalg.qr(rng.standard_normal((H, H)))[0]
    a = np.array([1.2, -0.8, 0.7, 0.5, 0.4, -0.3, 0.2, 0.1])
    params["l0.R"] = (Q @ np.diag(a) @ Q.T)[None]
    x = rng.standard_normal((4000, 2, spec.input_size))
    estimate = model_lyapunov(spec, params, x)
    assert abs(estimate.lle - np.log(1.2)) < 1e-3
    assert estimate.layer == 0 and estimate.direction == "forward" and estimate.steps == 4000


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_lyapunov_exponent_rises_with_the_recurrent_gain(cell):
    spec, params = _model(cell, H=16, I=4)
    x, _, _ = _data(spec, T=600, B=2, states=False)
    exponents = []
    for gain in (1.0, 3.0, 8.0):
        scaled = {**params, "l0.R": params["l0.R"] * gain}
        exponents.append(model_lyapunov(spec, scaled, x).lle)
    assert exponents[0] < -0.2  # the default init is contracting
    assert exponents[0] < exponents[1] < exponents[2]
    reverse = model_lyapunov(
        spec.replace(bidirectional=True),
        _model(cell, H=16, I=4, bidirectional=True)[1],
        x,
        direction=1,
    )
    assert reverse.direction == "reverse" and reverse.lle < 0


def test_gain_sweep_iterations_grow_with_the_exponent_and_chaos_never_converges():
    rows = []
    for gain in (0.5, 1.5, 3.0):
        spec, params, x = _normal_rnn(32, gain, T=300)
        lle = model_lyapunov(spec, params, x).lle
        exact = solve_model(spec, params, x, "newton", tol=1e-8, max_iter=60)
        quasi = solve_model(spec, params, x, "quasi-newton", tol=1e-8, max_iter=150)
        rows.append((lle, exact, quasi))
    (lle_low, exact_low, quasi_low), (lle_mid, exact_mid, _), (lle_high, *chaotic) = rows
    assert lle_low < -0.5 and -0.4 < lle_mid < 0 and lle_high > 0.1
    assert exact_low.converged and exact_mid.converged and quasi_low.converged
    assert exact_low.iterations < exact_mid.iterations
    for result in chaotic:  # LLE > 0: max_iter < T, never a claimed convergence
        assert not result.converged and result.iterations is None and result.reason


def test_a_non_finite_value_is_not_converged():
    spec, params = _model("gru")
    x, _, _ = _data(spec, T=20, B=2, states=False)
    x[7, 1, 0] = np.nan
    result = solve_model(spec, params, x, "newton", tol=1e-10, max_iter=50)
    assert not result.converged and result.iterations is None
    assert "non-finite value at iteration 1" in result.reason
    # overflow: exact Newton on a chaotic float32 RNN multiplies ~2000 expanding Jacobians
    spec, params, x = _normal_rnn(32, 3.0, T=2000)
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    result = solve_model(
        spec.replace(dtype="float32"),
        params32,
        x.astype(np.float32),
        "newton",
        tol=1e-6,
        max_iter=20,
    )
    assert not result.converged and "non-finite" in result.reason


def test_result_is_validated():
    with pytest.raises(ValueError, match="converged = True needs iterations"):
        ParallelResult(True, None, (), None, "newton", 1e-6, 10)
    with pytest.raises(ValueError, match="method = 'deer'"):
        ParallelResult(False, None, (), None, "deer", 1e-6, 10, reason="x")
    with pytest.raises(ValueError, match="max_iter = 0"):
        solve_model(*_model("rnn"), np.zeros((3, 1, 4)), max_iter=0)


def test_dense_jacobians_past_the_memory_limit_are_refused(monkeypatch):
    monkeypatch.setattr(newton_module, "DENSE_LIMIT_BYTES", 1000)
    spec, params = _model("lstm")
    with pytest.raises(NotSupported, match="use quasi-newton"):
        solve_model(spec, params, np.zeros((50, 2, 4)), "newton")


@pytest.mark.parametrize("cell", CELLS)
def test_torch_equals_numpy_on_cpu(cell):
    spec, params = _model(cell, layers=2, bidirectional=True)
    x, h0, c0 = _data(spec, T=50, B=3)
    for method in METHODS:
        runs = {}
        for framework in ("numpy", "torch"):
            run, fetch = make_runner(spec, params, x, method, 1e-12, 400, "cpu", framework, h0, c0)
            runs[framework] = fetch(run())
        (numpy_out, numpy_iters), (torch_out, torch_iters) = runs["numpy"], runs["torch"]
        assert numpy_iters == torch_iters and numpy_iters is not None
        for name, value in numpy_out.as_dict().items():
            assert getattr(torch_out, name).dtype == np.float64
            np.testing.assert_allclose(getattr(torch_out, name), value, rtol=0, atol=1e-13)


def test_torch_float32_matches_the_float64_reference():
    spec, params = _model("gru", H=16, dtype="float32")
    x, _, _ = _data(spec, T=200, B=4, states=False)
    run, fetch = make_runner(spec, params, x, "quasi-newton", 1e-6, 200, "cpu", "torch")
    outputs, iterations = fetch(run())
    reference = numpy_ref.forward(spec.replace(dtype="float64"), params, x)
    assert iterations is not None and outputs.y.dtype == np.float32
    assert compare("y", reference.y, outputs.y, "float32").passed


def test_torch_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA device visible to torch {torch.__version__}")
    spec, params = _model("lstm", H=16)
    x, h0, c0 = _data(spec, T=100, B=2)
    expected = solve_model(spec, params, x, "newton", 1e-12, 50, h0, c0)
    run, fetch = make_runner(spec, params, x, "newton", 1e-12, 50, "cuda", "torch", h0, c0)
    outputs, iterations = fetch(run())
    assert iterations == expected.iterations
    np.testing.assert_allclose(outputs.y, expected.outputs.y, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS[:2], ids=["L1", "L2-bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_adjoint_gradients_equal_bptt(cell, config):
    spec, params = _model(cell, **config)
    x, h0, c0 = _data(spec, T=25, B=3)
    out, tape = numpy_ref.forward_with_tape(spec, params, x, None, h0, c0)
    rng = np.random.default_rng(9)
    dy, dh_n = rng.standard_normal(out.y.shape), rng.standard_normal(out.h_n.shape)
    dc_n = rng.standard_normal(out.h_n.shape) if cell == "lstm" else None
    expected = numpy_ref.backward(params, tape, dy, dh_n, dc_n)
    got = model_gradients(spec, params, x, dy, dh_n, dc_n, h0, c0)
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert compare(f"grad:{name}", value, got[name], "float64").passed, name


def test_fastest_seconds_takes_an_unlimited_budget_and_counts_iterations_per_call(monkeypatch):
    from backends.parallel_in_time import fastest_seconds, iteration_call, quasi_solvers

    calls = []
    best = fastest_seconds({"noop": lambda: calls.append(1)}, 3)  # budget_s: inf by default
    assert len(calls) == 4 and 0 <= best["noop"] < 1  # one warm-up call, then 3 rounds
    made = quasi_solvers.make_solver
    counted = []

    def counting(*args):
        solver = made(*args)
        iteration = solver.iteration
        solver.iteration = lambda: counted.append(1) or iteration()
        return solver

    monkeypatch.setattr(quasi_solvers, "make_solver", counting)
    spec, params = _model("gru", H=8)
    call = iteration_call(spec, params, "quasi-newton", 1, 16, "torch", "cpu", iterations=4)
    call()
    assert len(counted) == 4  # four iterations back to back in one timed call
