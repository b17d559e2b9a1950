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


@pytest.mark.parametrize("name", list(registry.BACKENDS))
def test_a_backend_is_named_by_its_registry_key(name):
    """The name a backend reports is its key in the registry, whatever its arguments."""
    try:
        backend = registry.get_backend(name)
    except NotSupported as exc:
        pytest.skip(str(exc))
    assert backend.name == name


def test_the_registry_names_every_export_path_and_no_other():
    """registry.EXPORTERS names the ort-* backends; onnx_export keeps the builders (it does not
    import the registry back): the two lists agree, and an unknown one is refused by name."""
    from backends import onnx_export

    assert tuple(onnx_export._EXPORT) == registry.EXPORTERS
    with pytest.raises(ValueError, match="unknown exporter 'jit': allowed direct, "):
        onnx_export.export("jit", None, None, "unused.onnx")


def _claims():
    from harness.model.spec import VARIANT_FORMS

    for name, entry in registry.BACKENDS.items():
        if name == "model-file" or not entry.parity and name != "cupy":
            continue  # model-file times a file; parity=False backends share a parity one's code
        for variant in entry.variants:
            cells, value = VARIANT_FORMS[variant]
            for cell in cells:
                yield name, variant, cell, value


@pytest.mark.parametrize("name, variant, cell, value", list(_claims()))
def test_every_claimed_variant_computes(name, variant, cell, value):
    """A backend that claims a cell variant (its registry entry's `variants`) computes it: its
    forward output equals the reference's. Adding a variant to harness/model/spec.py's
    VARIANT_FORMS runs it here on every backend that claims it: implement it there, or drop
    the claim so that it is a clean "cannot compute" skip."""
    from harness.model.spec import ModelSpec
    from harness.parity.cases import ParityCase
    from harness.parity.run import run_case

    spec = ModelSpec(cell, 3, 4, **{variant: value})
    assert variant in spec.variants
    (result,) = run_case(ParityCase(spec, T=6, B=2), [name])
    if result.status == "skipped":
        assert "cannot compute" not in result.reason, result.reason  # it claimed it
        pytest.skip(result.reason)
    assert result.status == "passed", [c.message for c in result.comparisons if not c.passed]


def test_a_backend_that_does_not_claim_a_variant_says_it_cannot_compute_it():
    from harness.model.spec import ModelSpec

    spec = ModelSpec("lstm", 3, 4, peepholes=True)
    reason = registry.spec_reason("torch-cpu", spec)
    assert reason and "cannot compute" in reason and "peepholes" in reason


def _variants():
    from harness.model.spec import VARIANTS

    return VARIANTS


@pytest.mark.parametrize("variant", _variants())
def test_the_reference_computes_every_variant(variant):
    """Each variant of VARIANT_FORMS changes what the reference computes (a variant the
    reference ignored would pass every backend's parity against it)."""
    import numpy as np

    from harness.model.spec import VARIANT_FORMS, ModelSpec
    from harness.model.weights import init_weights

    cells, value = VARIANT_FORMS[variant]
    oracle = registry.reference()
    x = 2.0 * np.random.default_rng(0).standard_normal((6, 2, 3))  # large enough to clip
    for cell in cells:
        plain = ModelSpec(cell, 3, 4, dtype="float64")
        varied = plain.replace(**{variant: value})
        weights = dict(init_weights(varied, seed=1))
        canonical = {k: v for k, v in weights.items() if k in dict(init_weights(plain, seed=1))}
        difference = oracle.forward(varied, weights, x).y - oracle.forward(plain, canonical, x).y
        assert np.abs(difference).max() > 1e-6, f"the reference ignores {variant} ({cell})"


def test_the_reference_variant_has_a_field_per_spec_variant():
    """A variant added to harness/model/spec.py's VARIANT_FORMS needs a field of the same name
    in backends/cell_update.py's Variant (the step equations read it there)."""
    import dataclasses

    from backends.cell_update import Variant
    from harness.model.spec import VARIANTS

    assert [f.name for f in dataclasses.fields(Variant)] == list(VARIANTS)


def test_the_timing_docs_name_every_registered_backend():
    """docs/timing.md lists the backends by hand: each registry key is there (the ONNX Runtime
    ones as the pattern of their exporters and providers), and nothing the registry lacks."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "timing.md").read_text()
    pattern = f"`ort-<{'|'.join(registry.EXPORTERS)}>-<{'|'.join(registry.PROVIDERS)}>`"
    assert pattern in text, f"docs/timing.md should list the ORT backends as {pattern}"
    plain = [n for n in registry.BACKENDS if not n.startswith("ort-")]
    missing = [n for n in plain if f"`{n}`" not in text]
    assert not missing, f"docs/timing.md's list of backends lacks {missing}"
    listed = text[text.index("The backends and the modes each offers") : text.index("Modes:")]
    named = set(re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+|numpy|cupy)`", listed))
    unknown = named - set(registry.BACKENDS)
    assert not unknown, f"docs/timing.md lists backends the registry does not have: {unknown}"


def _one_name_per_class() -> list[str]:
    """The first registry key of each backend class that builds models (a new class is held to
    it without a list to keep)."""
    names: dict[str, str] = {}
    for name, entry in registry.BACKENDS.items():
        if name != "model-file":  # it times a file: it builds nothing
            names.setdefault(entry.import_path, name)
    return list(names.values())


@pytest.mark.parametrize("name", _one_name_per_class())
def test_a_prepared_model_is_named_as_its_backend(name):
    from harness.model.spec import ModelSpec
    from harness.model.weights import init_weights

    spec = ModelSpec("gru", 3, 4)
    try:
        prepared = registry.get_backend(name).build(spec, init_weights(spec, seed=0))
    except NotSupported as exc:
        pytest.skip(str(exc))
    assert prepared.name == name
    if name.startswith("ort-"):  # what it cannot do is said under its own name
        with pytest.raises(NotSupported, match=f"^{name} has no training"):
            prepared.train_sgd(None, None, 0.1, 1.0)


@pytest.mark.parametrize(
    ("cell", "kernel"),
    [("lstm", "oneDNN fused RNN layer (aten::mkldnn_rnn_layer)"), ("gru", "ATen step loop")],
)
def test_torch_names_the_kernel_its_profiler_saw(cell, kernel):
    pytest.importorskip("torch", reason="torch is not installed")
    case = make_case("torch-cpu", "forward", cell, batch=1, steps=3, input_size=8, hidden=8)
    assert _built(case).impl_class.startswith(kernel)
