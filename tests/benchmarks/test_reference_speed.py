"""The standard LSTM case under pytest-benchmark, so that `--benchmark-save` and
`--benchmark-compare` work with its own tooling. In the plain test run (--benchmark-disable)
each body runs once and still asserts parity; `tox -e bench` times them.

The numpy/torch ratio quoted in the README comes from `rnnbench speed`, which keeps each
framework in its own process: in one process their spinning thread pools slow each other."""

from __future__ import annotations

import numpy as np
import pytest

from backends import numpy_ref
from harness.parity import compare
from harness.reference_speed import _standard_case

torch = pytest.importorskip("torch", reason="torch is not installed")
threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl is not installed")

THREADS = 2


@pytest.fixture(scope="module")
def standard():
    spec, weights, x = _standard_case()
    return spec, weights, x, numpy_ref.forward(spec, dict(weights), x)


@pytest.fixture(autouse=True)
def fixed_threads():
    torch.set_num_threads(THREADS)
    with threadpoolctl.threadpool_limits(limits=THREADS):
        yield


def _assert_same(out, reference):
    for name in ("y", "h_n", "c_n"):
        check = compare(name, getattr(reference, name), getattr(out, name), "float32")
        assert check.passed, check.message


@pytest.mark.benchmark(group="lstm B=32 T=100 I=128 H=256 float32")
def test_numpy_reference_forward(benchmark, standard):
    spec, weights, x, reference = standard
    params = dict(weights)
    out = benchmark(numpy_ref.forward, spec, params, x)
    np.testing.assert_array_equal(out.y, reference.y)


@pytest.mark.benchmark(group="lstm B=32 T=100 I=128 H=256 float32")
def test_torch_eager_forward(benchmark, standard):
    from backends.torch_backend import TorchBackend

    spec, weights, x, reference = standard
    prepared = TorchBackend("cpu").build(spec, weights)
    _assert_same(benchmark(prepared.forward, x), reference)
