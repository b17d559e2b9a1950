"""The quick suite's cases under pytest-benchmark, so that `--benchmark-save` and
`--benchmark-compare` work with its own tooling. Each workload is parity-checked before it is
timed; in the plain test run (--benchmark-disable) each body runs once and still asserts parity.

These run in one process, one after another: fine for pytest-benchmark's own comparisons of a
case with itself over time. Ratios between frameworks come from `rnnbench bench`, which gives
each case its own worker process (thread pools of two frameworks in one process slowed each
other by up to 2.5x here)."""

from __future__ import annotations

import contextlib

import pytest

from harness.bench import workload
from harness.bench.suites import load_suite
from harness.model.protocol import NotSupported

CASES = load_suite("quick").cases


@contextlib.contextmanager
def _threads(n: int):
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
        except ImportError:
            pass
        try:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, before)
        except ImportError:
            pass
        yield


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_quick_case(benchmark, case):
    benchmark.group = case.group
    benchmark.extra_info.update(case.as_dict())
    try:
        backend, _ = workload.open_backend(case)
        built = workload.build(case, backend)
    except NotSupported as exc:
        pytest.skip(str(exc))
    failed = [c.message for c in built.checks if not c.passed]
    assert not failed, failed
    benchmark.extra_info["impl_class"] = built.impl_class
    with _threads(case.threads):
        benchmark(built.run)
