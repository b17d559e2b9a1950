"""Every (target, mode) a suite may name builds a parity-checked workload here, or says in one
line why it cannot (no GPU, package missing): never a silent pass."""

from __future__ import annotations

import pytest

from harness.bench import workload as targets
from harness.bench.suites import MINGRU_TARGETS, TARGET_MODES, BenchCase
from harness.model.protocol import NotSupported

SLOW_EXPORTS = ("torchscript", "dynamo", "tf2onnx", "keras")  # covered by the quick suite's run


def _pairs():
    for target, modes in TARGET_MODES.items():
        if target.endswith("-cpu") and any(e in target for e in SLOW_EXPORTS):
            continue
        for mode in modes:
            if mode != "sequential":  # minGRU's step loop: RNN/LSTM/GRU are always sequential
                yield target, mode, "lstm"
            if (
                target in MINGRU_TARGETS
                and mode in ("forward", "sequential")
                and ("compile" not in target)
            ):
                yield target, mode, "mingru"


@pytest.mark.parametrize(("target", "mode", "cell"), list(_pairs()))
def test_every_target_and_mode_builds_or_says_why(target, mode, cell):
    size = 64 if mode in ("peak", "bandwidth") else 0
    case = BenchCase(target, mode, cell, batch=2, steps=3, input_size=4, hidden=5, size=size)
    try:
        workload = targets.build(case)
    except NotSupported as exc:
        reason = str(exc)
        assert reason and "\n" not in reason
        assert any(k in reason for k in ("CUDA", "CuPy", "onnxruntime", "not installed")), reason
        pytest.skip(reason)
    except ModuleNotFoundError as exc:
        pytest.skip(f"{exc.name} is not installed")
    assert workload.checks and all(c.passed for c in workload.checks), [
        c.message for c in workload.checks if not c.passed
    ]
    assert workload.impl_class
    workload.run()  # runs again after the check
