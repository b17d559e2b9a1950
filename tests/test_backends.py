"""Every (backend, mode) a suite may name builds a parity-checked workload here, or says in one
line why it cannot (no GPU, package missing): never a silent pass. The registry is the list."""

from __future__ import annotations

import pytest

from harness import registry
from harness.bench import workload
from harness.bench.case import make_case
from harness.model.protocol import NotSupported


def _pairs():
    """Every timing backend the registry lists, every mode it offers; the model-file backend
    needs a file (test_the_file_target_builds_from_a_users_file)."""
    for backend in registry.timing_backends():
        if registry.check_name(backend).runs_file:
            continue
        for mode in registry.modes_of(backend, "lstm"):
            yield backend, mode, "lstm"
        for mode in sorted(set(registry.modes_of(backend, "mingru")) - {"gemm"}):
            yield backend, mode, "mingru"


def _built(case):
    try:
        backend, threads = workload.open_backend(case)
        built = workload.build(case, backend)
    except NotSupported as exc:
        reason = str(exc)
        assert reason and "\n" not in reason
        unavailable = ("CUDA device", "CuPy", "ExecutionProvider", "not installed")
        assert any(k in reason for k in unavailable), reason  # a kernel gap here is a failure
        pytest.skip(reason)
    assert threads["requested"] == case.threads
    assert built.checks and all(c.passed for c in built.checks), [
        c.message for c in built.checks if not c.passed
    ]
    assert built.impl_class
    built.run()  # runs again after the check
    return built


def test_the_file_target_builds_from_a_users_file(tmp_path):
    """model-file times a user's file as it is: here a direct ONNX export of a seeded model,
    its weights saved as bench --model saves them."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    import onnx

    from backends.onnx_direct import build_direct_model
    from harness.bench.case import model_case
    from harness.model.spec import ModelSpec
    from harness.model.weights import init_weights, save_weights

    spec = ModelSpec("gru", 4, 5, linear_before_reset=False)
    weights = init_weights(spec, seed=3)
    onnx.save(build_direct_model(spec, weights), tmp_path / "m.onnx")
    save_weights(weights, tmp_path / "m.npz")
    case = model_case(
        "model-file",
        "forward",
        spec,
        "m.onnx",
        str(tmp_path / "m.npz"),
        str(tmp_path / "m.onnx"),
        2,
        3,
        1,
    )
    built = _built(case)
    assert "m.onnx as it is (onnx)" in built.impl_class


@pytest.mark.parametrize(("backend", "mode", "cell"), sorted(_pairs()))
def test_every_backend_and_mode_builds_or_says_why(backend, mode, cell):
    size = 64 if mode in ("peak", "bandwidth") else 0
    _built(make_case(backend, mode, cell, batch=2, steps=3, input_size=4, hidden=5, size=size))


@pytest.mark.parametrize(
    ("backend", "mode"),
    [
        ("numpy", "forward"),
        ("numpy", "train"),
        ("numpy", "gemm"),
        ("torch-cpu", "forward"),
        ("torch-cpu", "train"),
        ("tf-function", "forward"),
        ("tf-function", "train"),
        ("ort-direct-cpu", "forward"),
    ],
)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_two_layer_models_with_a_head_are_timed_too(backend, mode, cell):
    case = make_case(
        backend,
        mode,
        cell,
        batch=2,
        steps=3,
        input_size=4,
        hidden=5,
        layers=2,
        bidirectional=True,
        head=3,
    )
    built = _built(case)
    names = {c.quantity for c in built.checks}
    if mode == "forward":
        assert {"y", "h_n", "head"} <= names  # the head's output is compared too
    if mode == "gemm":  # one product per layer and direction
        assert len(built.checks) == 4


def test_a_missing_package_is_a_skip_but_a_broken_import_is_an_error(monkeypatch):
    entry = registry.BACKENDS["numpy"]
    broken = registry.Entry(
        **{**entry.__dict__, "import_path": "backends.numpy_bakend:NumpyBackend"}
    )
    monkeypatch.setitem(registry.BACKENDS, "numpy", broken)
    with pytest.raises(ModuleNotFoundError, match="numpy_bakend"):
        workload.open_backend(make_case("numpy", "forward"))
    missing = registry.Entry(
        **{
            **entry.__dict__,
            "import_path": "rnnbench_absent_pkg.mod:X",
            "requires": ("rnnbench_absent_pkg",),
        }
    )
    monkeypatch.setitem(registry.BACKENDS, "numpy", missing)
    with pytest.raises(NotSupported, match="rnnbench_absent_pkg is not installed"):
        workload.open_backend(make_case("numpy", "forward"))


@pytest.mark.parametrize(
    ("cell", "kernel"),
    [("lstm", "oneDNN fused RNN layer (aten::mkldnn_rnn_layer)"), ("gru", "ATen step loop")],
)
def test_torch_names_the_kernel_its_profiler_saw(cell, kernel):
    pytest.importorskip("torch", reason="torch is not installed")
    case = make_case("torch-cpu", "forward", cell, batch=1, steps=3, input_size=8, hidden=8)
    assert _built(case).impl_class.startswith(kernel)
