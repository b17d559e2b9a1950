"""The fused quasi-Newton iterations (backends/parallel_in_time/fused_quasi.py with its C kernel,
and torch_quasi.py, the GPU's form) against newton.iterate, the array-namespace iteration they
replace; the kernel's build, cache and fallbacks."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from backends.parallel_in_time import fused_quasi, quasi_solvers
from backends.parallel_in_time.jacobians import input_projection
from backends.parallel_in_time.native import build
from backends.parallel_in_time.newton import iterate, solve_model
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import init_weights

GATES = {Cell.RNN: 1, Cell.GRU: 3, Cell.LSTM: 4}
ITERATIONS = 8


def _kernels():
    kernels = build.load()
    if isinstance(kernels, str):
        pytest.skip(kernels)
    return kernels


def _recurrence(cell: Cell, dtype: str, H=7, T=40, B=3, I=5, seed=0):
    rng = np.random.default_rng(seed)
    G, N = GATES[cell], (2 * H if cell is Cell.LSTM else H)
    W = rng.standard_normal((G * H, I)) * 0.5
    R = rng.standard_normal((G * H, H)) * (0.7 / np.sqrt(H))  # contracting: it converges
    Wb, Rb = rng.standard_normal(G * H) * 0.2, rng.standard_normal(G * H) * 0.2
    x, s0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, N)) * 0.3
    W, R, Wb, Rb, x, s0 = (a.astype(dtype) for a in (W, R, Wb, Rb, x, s0))
    return input_projection(cell, x, W, Wb, Rb), R, Rb, s0


def _generic(cell, xw, R, Rb, s0):
    S = np.zeros((xw.shape[0], xw.shape[1], s0.shape[-1]), xw.dtype)
    states, (_, _, residuals, _) = iterate(cell, xw, R, Rb, s0, S, "diagonal", 0.0, ITERATIONS)
    return states, residuals


def _run(solver):
    residuals = [solver.iteration() for _ in range(ITERATIONS)]
    return np.array(np.asarray(solver.states()), copy=True), residuals


def _as(framework: str, arrays):
    if framework == "numpy":
        return arrays
    torch = pytest.importorskip("torch")
    return [torch.from_numpy(np.array(a)) for a in arrays]


TOLERANCE = {"float64": 1e-13, "float32": 2e-5}


def _over_threads(count, call, framework="torch"):
    """call() over `count` threads: torch's (the kernel takes torch's OpenMP pool; skipped where
    it was built without OpenMP), or on NumPy arrays the kernel's own pool, sized as the BLAS's
    threads are (here said to be `count`); restored after."""
    if framework == "numpy":
        _kernels()
        original = fused_quasi.blas_threads
        fused_quasi.blas_threads = lambda: count
        try:
            return call()
        finally:
            fused_quasi.blas_threads = original
    torch = pytest.importorskip("torch")
    if not _kernels().threaded:
        pytest.skip("the kernel was built without OpenMP: one thread")
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        return call()
    finally:
        torch.set_num_threads(threads)


# the kernel over several threads: torch's OpenMP pool, and on NumPy arrays its own pool (the
# product made by the kernel: fused_quasi.own_product_bytes)
THREADED = ["torch", "numpy"]


# (H, B): H = 1, 3 and 7 are narrower than a tile (one partial tile, masked where the target
# has masked loads); H = 20 and 40 are whole tiles and the last tile's width again, overlapping
# them (a tile is the target's vector register: 2, 4 or 8 float64 lanes, 4, 8 or 16 float32,
# with SSE, AVX, AVX-512); B = 1 carries a tile's states along the steps in registers, B = 3 goes
# step by step or in spans, two whole tiles at a time where there are two (the RNN)
SHAPES = {
    "one-unit": (1, 3),
    "three-units": (3, 1),
    "narrow": (7, 3),
    "tiles": (20, 3),
    "pairs": (40, 3),
    "tiles-one-row": (20, 1),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", list(Cell))
def test_fused_kernel_iterates_as_newton_iterate(cell, dtype, framework, shape):
    _kernels()
    H, B = SHAPES[shape]
    arrays = _recurrence(cell, dtype, H=H, B=B)
    expected, expected_residuals = _generic(cell, *arrays)
    got, residuals = _run(fused_quasi.FusedQuasiNewton(cell, *_as(framework, arrays)))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[dtype])
    # a residual near the dtype's rounding of states near 1 is that rounding (float32: 1e-5
    # and less; float64, where a small model converges to the last bit: 1e-13 and less)
    rtol, atol = (1e-3, 1e-6) if dtype == "float32" else (1e-9, 1e-13)
    # the generic iteration stops at a change of exactly 0; rounding may leave the kernel's an
    # ulp off it for an iteration or two more (tanh is the kernel's own)
    n = len(expected_residuals)
    np.testing.assert_allclose(residuals[:n], expected_residuals, rtol=rtol, atol=atol)
    assert len(residuals) == n or (expected_residuals[-1] == 0 and max(residuals[n:]) <= atol)
    assert residuals[-1] < residuals[0] / 10  # it converges: the comparison is not of noise


SPLITS = {
    # (H, B, block_bytes): a block of 40 steps is split in 3 runs of steps (the third's carry
    # made from the second's), at B = 1 and B = 5, and at B = 24 with rows of h under 256 bytes;
    # with 8 rows a thread or more and longer rows, by rows; blocks of one step, by units or by
    # rows
    "runs": (7, 1, None),
    "runs-of-rows": (7, 5, None),
    "runs-of-short-rows": (7, 24, None),
    "many-rows": (40, 24, None),
    "units": (70, 1, 1),
    "rows": (7, 5, 1),
}


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("framework", THREADED)
def test_threads_split_the_kernel_and_change_nothing(framework, cell, split):
    """Over 3 threads (torch's, or the kernel's own pool on NumPy arrays): a block of 40 steps
    with few rows or short ones by runs of steps (the first from the true state, the others from
    zero, then fixed up), with 24 rows of 40 units by rows; blocks of one step by units (70
    float64 units: runs of 32, 32 and 6; on the pool one part) or by rows (1, 2 and 2; on the
    pool one part). Each thread (each part, on the pool) keeps its own running max."""
    H, B, block_bytes = SPLITS[split]
    arrays = _recurrence(cell, "float64", H=H, B=B)
    expected, expected_residuals = _generic(cell, *arrays)

    def solve():
        solver = fused_quasi.FusedQuasiNewton(cell, *_as(framework, arrays), block_bytes)
        return solver, _run(solver)

    solver, (got, residuals) = _over_threads(3, solve, framework)
    assert tuple(solver.mx.shape) == (3, arrays[3].shape[-1])
    assert len(solver.blocks) == (1 if block_bytes is None else 40)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE["float64"])
    np.testing.assert_allclose(residuals, expected_residuals, rtol=1e-9)


@pytest.mark.parametrize("framework", THREADED)
def test_runs_of_steps_over_threads_hold_in_float32_on_a_long_sequence(framework):
    """The split by runs at the size it is timed at (LSTM, H = 32, T = 1024, B = 1, 2 threads):
    the fixed-up runs agree with the generic iteration to float32's tolerance."""
    arrays = _recurrence(Cell.LSTM, "float32", H=32, T=1024, B=1)
    expected, expected_residuals = _generic(Cell.LSTM, *arrays)
    got, residuals = _over_threads(
        2, lambda: _run(fused_quasi.FusedQuasiNewton(Cell.LSTM, *_as(framework, arrays))), framework
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE["float32"])
    np.testing.assert_allclose(residuals, expected_residuals, rtol=1e-3)


@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("cell", list(Cell))
def test_blocks_of_steps_iterate_as_one_block(cell, framework):
    """The product is made block by block of steps (to stay in cache); the kernel carries the
    states and the max change across blocks, of one step or several, of unequal length."""
    _kernels()
    arrays = _recurrence(cell, "float64", H=9, T=23, B=2)
    expected, expected_residuals = _generic(cell, *arrays)
    row_bytes = 2 * GATES[cell] * 9 * 8
    for block_bytes, blocks in [(1, 23), (3 * row_bytes, 8), (1 << 30, 1)]:
        solver = fused_quasi.FusedQuasiNewton(cell, *_as(framework, arrays), block_bytes)
        assert len(solver.blocks) == blocks
        got, residuals = _run(solver)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
        np.testing.assert_allclose(residuals, expected_residuals, rtol=1e-9)


def test_step_blocks_cover_the_steps_in_order():
    assert fused_quasi.step_blocks(10, 100, 1000) == [(0, 10)]
    assert fused_quasi.step_blocks(10, 100, 250) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert fused_quasi.step_blocks(3, 1 << 20, 1000) == [(0, 1), (1, 2), (2, 3)]  # 1 step at least
    for T, row, size in [(1, 8, 8), (1024, 4096, 1 << 18), (4097, 96, 1 << 18), (7, 0, 1)]:
        blocks = fused_quasi.step_blocks(T, row, size)
        assert blocks[0][0] == 0 and blocks[-1][1] == T
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(blocks, blocks[1:], strict=False))
        assert max(t1 - t0 for t0, t1 in blocks) * row <= max(size, row)


@pytest.mark.parametrize("cell", list(Cell))
def test_torch_fused_kernels_iterate_as_newton_iterate(cell):
    """torch_quasi.QuasiNewton runs on a GPU (the C kernel is the CPU's); held here on the CPU."""
    torch = pytest.importorskip("torch")
    from backends.parallel_in_time.torch_quasi import QuasiNewton

    arrays = _recurrence(cell, "float64")
    expected, expected_residuals = _generic(cell, *arrays)
    with torch.no_grad():
        got, residuals = _run(QuasiNewton(cell, *_as("torch", arrays), compile=False))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(residuals, expected_residuals, rtol=1e-9)


@pytest.mark.parametrize("cell", list(Cell))
def test_a_non_finite_input_stops_the_solve_with_its_reason(cell):
    _kernels()
    xw, R, Rb, s0 = _recurrence(cell, "float32")
    xw[17, 1, 2] = np.nan
    solver = quasi_solvers.make_solver(cell, xw, R, Rb, s0)
    assert isinstance(solver, fused_quasi.FusedQuasiNewton)
    _, (converged, iterations, residuals, reason) = quasi_solvers.iterate(solver, 1e-6, 50)
    assert not converged and iterations is None
    assert reason == "a non-finite value at iteration 1" and residuals[0] != residuals[0]


@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("framework", THREADED)
def test_a_non_finite_value_in_a_later_run_of_steps_is_seen(framework, cell):
    """Over 3 threads a block is split in runs of steps: a NaN in the last run (which
    thread 0 never reads) must make the iteration's change NaN, as the generic one's is."""
    arrays = list(_recurrence(cell, "float64", H=7, B=1))
    arrays[0][35, 0, 2] = np.nan
    _, expected_residuals = _generic(cell, *arrays)
    change = _over_threads(
        3,
        lambda: fused_quasi.FusedQuasiNewton(cell, *_as(framework, arrays)).iteration(),
        framework,
    )
    assert expected_residuals[0] != expected_residuals[0]
    assert change != change


@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("framework", THREADED)
def test_runs_of_steps_hold_in_every_block_not_only_the_first(framework, cell):
    """Two blocks of 32 steps, each split in runs over 3 threads: the second block's runs
    (t0 = 32) read and write their rows of P from the block's start, and carry the state the
    first block left."""
    H, B, T = 7, 2, 64
    arrays = _recurrence(cell, "float64", H=H, T=T, B=B)
    expected, expected_residuals = _generic(cell, *arrays)
    block_bytes = 32 * B * GATES[cell] * H * 8

    def solve():
        solver = fused_quasi.FusedQuasiNewton(cell, *_as(framework, arrays), block_bytes)
        return solver, _run(solver)

    solver, (got, residuals) = _over_threads(3, solve, framework)
    assert solver.blocks == [(0, 32), (32, 64)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE["float64"])
    np.testing.assert_allclose(residuals, expected_residuals, rtol=1e-9)


def _contracting_float32(cell, B, T=2048):
    """float32, |J| small: a run's product of Jacobians P is 0 (below float32's eps^2) a few
    dozen steps into its run, and the fix-up stops there. The inputs before the last of 3 runs
    are scaled down 100x (the states 10x or more), so that each iteration's largest change lies
    past the fix-up's stop."""
    xw, R, Rb, s0 = _recurrence(cell, "float32", H=16, T=T, B=B)
    xw[: T * 2 // 3 + 64] *= np.float32(0.01)  # (the GRU's candidate bias Rb_h is not in xw)
    small = np.float32(0.01)
    return [xw, R * np.float32(0.05), Rb * small, s0 * small]


@pytest.mark.parametrize("B", [1, 24])
@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("framework", THREADED)
def test_a_run_s_fix_up_stops_where_its_product_of_jacobians_is_0(framework, cell, B):
    """Where P has gone to 0 the run's own scan is the true state and keeps the running max: a
    fix-up that stopped early, or a max that missed those steps, changes the states or the
    residuals (each iteration's max change, most of it past the first run at 3 threads)."""
    arrays = _contracting_float32(cell, B)
    expected, expected_residuals = _generic(cell, *arrays)

    def solve():
        solver = fused_quasi.FusedQuasiNewton(cell, *_as(framework, arrays))
        solver.P[...] = float("nan")  # rows no run writes (thread 0's) stay NaN
        return solver, _run(solver)

    solver, (got, residuals) = _over_threads(3, solve, framework)
    P = np.asarray(solver.P)
    P = np.abs(P[~np.isnan(P)])
    assert P.size and (P == 0).any()  # the runs wrote P, and it did die within them
    # set to 0 below eps^2 and not sooner: |J| <= 0.05 a step, so the last nonzero is within 20x
    assert 0 < P[P > 0].min() < 20 * np.finfo(np.float32).eps ** 2
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE["float32"])
    # to float32's rounding of states under 1: a missed max would be over 10x smaller
    np.testing.assert_allclose(residuals, expected_residuals, rtol=1e-3, atol=1e-6)
    late = np.abs(expected[len(expected) * 2 // 3 + 64 :]).max()
    assert late > 10 * np.abs(expected[: len(expected) * 2 // 3]).max()


@pytest.mark.parametrize("framework", THREADED)
def test_the_fix_up_stops_only_where_every_row_s_product_has_died(framework):
    """B = 2: row 0 saturated (J = 0 exactly, its P dead at once), row 1 with states of order 1
    and |J| up to 0.9 (its P alive for hundreds of steps). A stop at the first dead row, not the
    first step where every row is dead, leaves row 1 unfixed. (Found by an independent review.)"""
    xw, R, Rb, s0 = _recurrence(Cell.RNN, "float32", H=16, T=900, B=2)
    R = np.float32(0.9) * np.eye(16, dtype=np.float32)
    xw[:, 0] = 30.0
    xw[:, 1] = np.float32(0.3) * np.sign(xw[:, 1])
    arrays = [xw, R, Rb, s0]
    expected, expected_residuals = _generic(Cell.RNN, *arrays)
    solver = _over_threads(
        3, lambda: fused_quasi.FusedQuasiNewton(Cell.RNN, *_as(framework, arrays)), framework
    )
    got, residuals = _over_threads(3, lambda: _run(solver), framework)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE["float32"])
    np.testing.assert_allclose(residuals, expected_residuals, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("framework", THREADED)
def test_a_nan_carried_into_one_row_only_fixes_that_row_s_run_to_the_end(framework):
    """B = 2, a NaN input in row 1 of the first run: the carry into the later runs is NaN in row
    1 only. The fix-up must see it in any row (not only the first) and run to the end, so that
    row 1's states are NaN to the end, as the generic iteration's are. (Found by an independent
    review.)"""
    xw, R, Rb, s0 = _recurrence(Cell.RNN, "float32", H=16, T=900, B=2)
    xw[100, 1, 3] = np.nan
    arrays = [xw, R * np.float32(0.05), Rb, s0]
    S = np.zeros((900, 2, 16), np.float32)
    expected, _ = iterate(Cell.RNN, *arrays, S, "diagonal", 0.0, 1)

    def one():
        solver = fused_quasi.FusedQuasiNewton(Cell.RNN, *_as(framework, arrays))
        return solver.iteration(), np.array(np.asarray(solver.states()), copy=True)

    change, got = _over_threads(3, one, framework)
    assert change != change and np.isnan(expected[100:, 1, 3]).all()  # J is diagonal
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))


@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("framework", THREADED)
def test_a_nan_past_the_death_of_a_run_s_product_is_seen_and_carried(framework, cell):
    """A NaN input late in the last run (P long 0 there): the change is NaN, and the states are
    NaN from that step on exactly where the generic iteration's are. A NaN in the first run makes
    the carry into the later runs NaN: their fix-up then runs to the end, as NaN + 0 * P must."""
    for step in (2000, 100):
        arrays = _contracting_float32(cell, 1)
        arrays[0][step, 0, 3] = np.nan
        S = np.zeros((arrays[0].shape[0], 1, arrays[3].shape[-1]), np.float32)
        expected, (_, _, residuals, _) = iterate(cell, *arrays, S, "diagonal", 0.0, 1)

        def one(arrays=arrays):
            solver = fused_quasi.FusedQuasiNewton(cell, *_as(framework, arrays))
            return solver.iteration(), np.array(np.asarray(solver.states()), copy=True)

        change, got = _over_threads(3, one, framework)
        assert residuals[0] != residuals[0] and change != change
        assert np.isnan(expected[step:]).any(axis=-1).all()  # the generic NaN runs to the end
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))


@pytest.mark.parametrize("own_product", [True, False])
@pytest.mark.parametrize("cell", list(Cell))
def test_on_one_blas_thread_the_numpy_kernel_iterates_with_either_product(cell, own_product):
    """One BLAS thread: no pool; the product made by the kernel (R^T within
    ONE_THREAD_PRODUCT_BYTES) or by numpy.matmul block by block, each as the generic iteration."""
    arrays = _recurrence(cell, "float32", H=20, T=50, B=3)
    expected, expected_residuals = _generic(cell, *arrays)

    def solve():
        solver = fused_quasi.FusedQuasiNewton(cell, *arrays, own_product=own_product)
        return solver, _run(solver)

    solver, (got, residuals) = _over_threads(1, solve, "numpy")
    assert solver.own_product is own_product and solver.mx.shape[0] == 1
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE["float32"])
    np.testing.assert_allclose(residuals, expected_residuals, rtol=1e-3, atol=1e-6)


def test_the_blas_thread_count_is_read_live_from_the_library():
    """blas_threads finds NumPy's BLAS once and reads its count at each call: a limit set after
    (threadpoolctl, as bench workers set one) is what the next solve sizes its pool by."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not info:
        pytest.skip("threadpoolctl finds no BLAS library loaded")
    count = max(1, min(i["num_threads"] for i in info))
    assert fused_quasi.blas_threads() == count
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert fused_quasi.blas_threads() == 1
    assert fused_quasi.blas_threads() == count  # restored, and read again


def test_the_product_is_the_kernel_s_own_where_r_fits_its_bytes():
    _kernels()
    cases = [(1, 16, True), (1, 128, False), (2, 128, True), (2, 512, False)]
    for threads, H, own in cases:
        arrays = _recurrence(Cell.LSTM, "float32", H=H, T=9, B=1, I=2)
        solver = _over_threads(
            threads, lambda a=arrays: fused_quasi.FusedQuasiNewton(Cell.LSTM, *a), "numpy"
        )
        R_bytes = 4 * H * 4 * H
        assert solver.own_product is own, (threads, H)
        assert own == (R_bytes <= fused_quasi.own_product_bytes(threads))


@pytest.mark.parametrize("cell", list(Cell))
def test_the_pool_s_results_do_not_depend_on_which_thread_ran_a_part(cell):
    """8 parts on this machine's cores: a worker that wakes late leaves its parts to the caller,
    which runs each the same way (part 0 from the true state, the others from zero and fixed
    up): every run of the solve gives the same bits."""
    arrays = _recurrence(cell, "float32", H=16, T=400, B=2)
    expected, _ = _generic(cell, *arrays)

    def solve():
        return _run(fused_quasi.FusedQuasiNewton(cell, *arrays))

    runs = [_over_threads(8, solve, "numpy") for _ in range(12)]
    for got, residuals in runs:
        np.testing.assert_array_equal(got, runs[0][0])
        assert residuals == runs[0][1]
    np.testing.assert_allclose(runs[0][0], expected, rtol=0, atol=TOLERANCE["float32"])


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", list(Cell))
def test_the_input_projection_on_the_pool_is_the_generic_one(cell, dtype, threads):
    """fused_quasi.input_projection (on the pool where the BLAS runs several threads) against
    jacobians'; sizes of one row and one unit, of rows fewer than parts, and of tiles' tails."""
    _kernels()
    rng = np.random.default_rng(5)
    G = GATES[cell]
    for T, B, I, H in [(1, 1, 1, 1), (7, 3, 5, 9), (64, 1, 33, 17), (3, 2, 1, 40)]:
        x = rng.standard_normal((T, B, I)).astype(dtype)
        W = rng.standard_normal((G * H, I)).astype(dtype)
        Wb, Rb = (rng.standard_normal(G * H).astype(dtype) for _ in range(2))
        got = _over_threads(
            threads, lambda a=(x, W, Wb, Rb): fused_quasi.input_projection(cell, *a), "numpy"
        )
        expected = input_projection(cell, x, W, Wb, Rb)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        atol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(
            got, expected, rtol=0, atol=atol * max(1, np.abs(expected).max())
        )


def test_two_python_threads_share_the_pool_one_job_at_a_time():
    """ctypes lets go of the GIL: two Python threads solving at once take the pool in turn, each
    getting the states it gets alone."""
    import threading

    problems = [_recurrence(cell, "float32", H=16, T=300, B=2, seed=1) for cell in Cell]

    def alone(cell, arrays):
        return _run(fused_quasi.FusedQuasiNewton(cell, *arrays))[0]

    expected = [
        _over_threads(2, lambda c=c, a=a: alone(c, a), "numpy")
        for c, a in zip(Cell, problems, strict=True)
    ]
    got: dict = {}

    def solve(index):
        cell, arrays = list(Cell)[index], problems[index]
        got[index] = [alone(cell, arrays) for _ in range(20)]

    def both():
        threads = [threading.Thread(target=solve, args=(i,)) for i in range(len(problems))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

    _over_threads(2, both, "numpy")
    for index, states in enumerate(expected):
        assert len(got[index]) == 20
        for result in got[index]:
            np.testing.assert_array_equal(result, states)


def test_the_pool_s_workers_run_a_part_with_the_caller_s_denormal_mode():
    """A worker takes its floating-point control from the thread that made it: where the caller
    flushes denormals after the workers exist (torch.set_flush_denormal, as the torch runner
    does), each part must be run flushed too, whoever runs it (states of order 1e-38: a part run
    unflushed keeps the subnormals that the caller's parts flush to 0). (Found by an independent
    review: 8 distinct results in 30 solves.)"""
    torch = pytest.importorskip("torch")
    xw, R, Rb, s0 = _recurrence(Cell.RNN, "float32", H=16, T=600, B=1)
    arrays = [(xw * np.float32(1e-38)).astype(np.float32), R, Rb, s0 * 0]

    def solve():
        return _run(fused_quasi.FusedQuasiNewton(Cell.RNN, *arrays))[0]

    _over_threads(3, solve, "numpy")  # the workers exist, made unflushed
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals (torch.set_flush_denormal)")
    try:
        runs = [_over_threads(3, solve, "numpy") for _ in range(30)]
        alone = _over_threads(1, solve, "numpy")  # the caller's thread alone, flushed
    finally:
        torch.set_flush_denormal(False)
    assert len({r.tobytes() for r in runs}) == 1
    assert (runs[0] == 0).sum() == (alone == 0).sum() > 0


@pytest.mark.parametrize("wrong", ["W columns", "W rows", "bias"])
def test_the_pool_s_input_projection_refuses_what_the_generic_one_refuses(wrong):
    """Shapes that do not fit are left to the generic projection, which raises; never read past
    an array. (Found by an independent review.)"""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    W, Wb, Rb = (rng.standard_normal(s).astype(np.float32) for s in ((12, 3), (12,), (12,)))
    if wrong == "W columns":
        W = rng.standard_normal((12, 4)).astype(np.float32)
    elif wrong == "W rows":
        Wb = Rb = rng.standard_normal(8).astype(np.float32)
    else:
        Rb = rng.standard_normal(13).astype(np.float32)
    with pytest.raises(ValueError):
        input_projection(Cell.LSTM, x, W, Wb, Rb)
    with pytest.raises(ValueError):
        _over_threads(2, lambda: fused_quasi.input_projection(Cell.LSTM, x, W, Wb, Rb), "numpy")


def test_a_forked_child_iterates_without_the_parent_s_workers():
    """The pool's workers do not survive fork(): the child's first job runs on the caller (and
    new workers), not waiting for threads it does not have."""
    import multiprocessing

    arrays = _recurrence(Cell.GRU, "float32", H=16, T=200, B=1)
    expected, _ = _over_threads(
        2, lambda: _run(fused_quasi.FusedQuasiNewton(Cell.GRU, *arrays)), "numpy"
    )

    def child(queue):
        got, _ = _over_threads(
            2, lambda: _run(fused_quasi.FusedQuasiNewton(Cell.GRU, *arrays)), "numpy"
        )
        queue.put(bool(np.array_equal(got, expected)))

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    process.join(60)
    if process.is_alive():
        process.kill()
        pytest.fail("the forked child's pooled iteration did not finish in 60 s")
    assert process.exitcode == 0 and queue.get(timeout=5) is True


def test_a_whole_model_solves_to_the_sequential_run_through_the_kernel():
    _kernels()
    from backends import numpy_ref

    spec = ModelSpec(
        cell=Cell.LSTM, input_size=4, hidden_size=24, num_layers=2, bidirectional=True
    ).replace(dtype="float64")
    params = {k: v.astype(np.float64) for k, v in init_weights(spec, seed=3).items()}
    x = np.random.default_rng(3).standard_normal((60, 2, 4))
    result = solve_model(spec, params, x, "quasi-newton", 1e-12, 400)
    expected = numpy_ref.forward(spec, params, x)
    assert result.converged
    np.testing.assert_allclose(result.outputs.y, expected.y, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result.outputs.c_n, expected.c_n, rtol=0, atol=1e-10)


def test_weights_in_another_dtype_than_the_inputs_are_promoted_as_the_generic_path_does(
    monkeypatch,
):
    """float32 weights with float64 inputs: the kernel reads R in xw's dtype (this was a NaN)."""
    _kernels()
    spec = ModelSpec(cell=Cell.GRU, input_size=4, hidden_size=24, num_layers=2)
    params = init_weights(spec, seed=5)
    assert params["l0.R"].dtype == np.float32
    x = np.random.default_rng(5).standard_normal((50, 2, 4))
    fused = solve_model(spec, params, x, "quasi-newton", 1e-12, 400)
    monkeypatch.setattr(quasi_solvers, "make_solver", lambda *args: None)
    generic = solve_model(spec, params, x, "quasi-newton", 1e-12, 400)
    assert fused.converged and fused.iterations == generic.iterations
    np.testing.assert_allclose(fused.outputs.y, generic.outputs.y, rtol=0, atol=1e-13)


def test_off_by_the_environment_the_numpy_iteration_is_the_generic_one(monkeypatch):
    monkeypatch.setenv(build.DISABLE_ENV, "0")
    assert build.load.__wrapped__() == "the fused C kernel is off (RNNBENCH_NATIVE=0)"
    monkeypatch.setattr(fused_quasi, "load", build.load.__wrapped__)
    xw, R, Rb, s0 = _recurrence(Cell.GRU, "float64")
    assert fused_quasi.unavailable(xw) == "the fused C kernel is off (RNNBENCH_NATIVE=0)"
    assert quasi_solvers.make_solver(Cell.GRU, xw, R, Rb, s0) is None
    assert quasi_solvers.describe("quasi-newton", "numpy", "cpu").endswith("RNNBENCH_NATIVE=0)")


def test_where_there_is_a_compiler_the_kernel_builds(monkeypatch, tmp_path):
    """Every test of the kernel skips where it cannot be built: a machine with a C compiler
    must build it (an error in the kernel's source fails here, it does not skip the rest)."""
    from harness import native_library

    monkeypatch.delenv(build.DISABLE_ENV, raising=False)
    if not native_library.compiler():
        pytest.skip("no C compiler (cc, gcc or $CC) on this machine")
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path))  # built here, not taken from a cache
    kernels = build.load.__wrapped__()
    assert isinstance(kernels, build.Kernels), kernels


def test_no_compiler_is_a_reason_not_an_error(monkeypatch, tmp_path):
    monkeypatch.delenv(build.DISABLE_ENV, raising=False)
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    reason = build.load.__wrapped__()
    assert isinstance(reason, str) and reason.startswith("the fused C kernel did not build or load")
    assert "no-such-cc" in reason


def test_a_compiler_without_openmp_builds_a_one_thread_kernel(monkeypatch, tmp_path):
    """A compiler that refuses -fopenmp: the kernel is built without it, says so, and a torch
    solve at several threads still equals newton.iterate on the one thread it gets."""
    kernels = _kernels()
    torch = pytest.importorskip("torch")
    no_openmp = tmp_path / "cc-no-openmp"
    no_openmp.write_text(
        '#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && exit 1; done\n'
        f'exec "{shutil.which("cc") or "cc"}" "$@"\n'
    )
    no_openmp.chmod(0o755)
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(no_openmp))
    single = build.load.__wrapped__()
    assert not isinstance(single, str) and not single.threaded, single
    assert "OpenMP" not in single.describe() and (
        kernels.threaded == ("OpenMP" in kernels.describe())
    )
    monkeypatch.setattr(fused_quasi, "load", lambda: single)
    arrays = _recurrence(Cell.LSTM, "float64", B=4)
    expected, _ = _generic(Cell.LSTM, *arrays)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        solver = fused_quasi.FusedQuasiNewton(Cell.LSTM, *_as("torch", arrays))
        got, _ = _run(solver)
    finally:
        torch.set_num_threads(threads)
    assert solver.mx.shape[0] == 1
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE["float64"])


def test_a_cached_library_that_is_not_ours_alone_or_does_not_load_is_rebuilt(monkeypatch, tmp_path):
    _kernels()
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path))
    first = build.load.__wrapped__()
    assert not isinstance(first, str) and first.path.parent == tmp_path
    for planted, mode in [(b"\x7fELF not a library", 0o700), (first.path.read_bytes(), 0o777)]:
        plant = tmp_path / "planted"  # a new file renamed over it: the loaded one stays mapped
        plant.write_bytes(planted)
        os.chmod(plant, mode)
        os.replace(plant, first.path)
        again = build.load.__wrapped__()
        assert not isinstance(again, str) and again.path == first.path
        assert os.stat(again.path).st_mode & 0o777 == 0o700
        assert again.function("gru", "float64") is not None


def test_what_each_framework_and_device_runs_is_named():
    kernels = build.load()
    if isinstance(kernels, str):
        assert quasi_solvers.describe("quasi-newton", "torch", "cpu").endswith(kernels)
    else:
        assert quasi_solvers.describe("quasi-newton", "numpy", "cpu").startswith("fused C kernel (")
    assert quasi_solvers.describe("quasi-newton", "torch", "cuda").startswith("torch fused kernels")
    assert quasi_solvers.describe("quasi-newton", "numpy", "cuda") == quasi_solvers.GENERIC
    assert quasi_solvers.describe("newton", "torch", "cpu").endswith("dense Jacobians")


def test_a_run_s_product_of_jacobians_never_goes_subnormal():
    """P, the running product of a run's Jacobians, decays geometrically in a contracting
    recurrence; below eps^2 (its term in the fix-up negligible) it is set to 0, so never left
    subnormal (a subnormal operand costs ~100x on a thread whose denormals are not flushed)."""
    xw, R, Rb, s0 = _recurrence(Cell.RNN, "float32", H=16, T=2048, B=1)
    R = R * 0.05  # |J| <= 0.05: P passes float32's eps^2 within ~11 steps

    def one():
        solver = fused_quasi.FusedQuasiNewton(Cell.RNN, *_as("torch", [xw, R, Rb, s0]))
        solver.P.fill_(float("nan"))  # rows no run writes (thread 0's, a short last block) stay
        solver.iteration()
        return solver

    solver = _over_threads(2, one)
    P = solver.P.numpy()
    P = P[~np.isnan(P)]
    assert P.size and (P == 0).any()  # runs wrote it, and it did decay that far
    assert not ((P != 0) & (np.abs(P) < np.finfo(np.float32).eps ** 2)).any()
