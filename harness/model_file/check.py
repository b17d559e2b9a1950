"""The check a user's CI runs: the model file (and, with --against, its export) run on the same
inputs at several (T, B), B = 1 and lengths other than any export's example among them, each
output compared with the NumPy float64 reference on the weights read from the source model.
Where --inputs brings data sets, the file runs on those too, and outputs shipped beside them
(output_*.pb) are compared with the same reference.

A runtime that declares the sequence axis dynamic but fails at some lengths while running at
another fails, naming the length the graph baked in. ONNX Runtime's known kernel gaps (layout=1
recurrent nodes, float64 kernels) make that runtime's row a skip with ORT's reason; the
reference still checks the shipped outputs."""

from __future__ import annotations

import math

import numpy as np

from harness.model.protocol import NotSupported
from harness.model.weights import float32_exact
from harness.model_file.explain import explain
from harness.model_file.front import PLAIN, draw
from harness.model_file.outcome import RuntimeCheck, judged
from harness.model_file.reference import Budgeted, compare_outputs, reference_for
from harness.model_file.sizes import SIZES, Tried, diagnose, plan_sizes
from harness.onnx.session import KernelGap, OrtError
from harness.parity.checks import Comparison

__all__ = ["SIZES", "plan_sizes", "check_file", "check_runtime", "RuntimeCheck"]


def check_file(path, given=None, sizes=None) -> RuntimeCheck:
    """The model file as its runtime runs it, against the reference on its own weights, at
    `sizes` (default: plan_sizes'), within the model's error budget: check_runtime for one
    file, opened here (the commands open the model once and call check_runtime themselves)."""
    from harness.model_file.model import open_model

    model = open_model(path, given=given)
    if model.runtime is None:
        raise NotSupported(f"{path} ({model.kind}) holds weights only: nothing runs it")
    sizes = sizes or plan_sizes([model.runtime])
    return check_runtime("model-file", model.runtime, model, sizes, budget=budget_of(model))


def budget_of(model, seed: int = 0):
    """The model's error budget (harness/parity/budget.py), its exponent estimated along the
    longest sequence the check draws (what the file takes, looked up where it takes tokens)."""
    from harness.parity.budget import model_budget

    T, B = max(SIZES)
    x = draw(model.front, model.spec.input_size, T, B, seed).x
    return model_budget(model.spec, model.weights, x)


def check_runtime(
    role, runtime, model, sizes, seed: int = 0, budget=None, diagnose_failures: bool = True
) -> RuntimeCheck:
    """`runtime` on drawn inputs at each size, against the reference of `model`'s weights (the
    same inputs for every runtime at a size), each output within `budget` (an ErrorBudget:
    atol grown with the step; None: the plain tolerance). `diagnose_failures`: False where the
    cause is known already (its weights differ): the outputs' failures are listed as they are."""
    result = RuntimeCheck(role, runtime.label, "passed", sizes=[])
    tried: dict[tuple[int, int], Tried] = {}
    failed, lost = [], []
    for T, B in sizes:
        try:
            comparisons, unmatched = _run_at(runtime, model, T, B, seed, budget, role)
        except KernelGap as exc:
            return RuntimeCheck(role, runtime.label, "skipped", str(exc))
        except (OrtError, RuntimeError) as exc:
            failed.append((T, B, str(exc)))
            tried[(T, B)] = Tried(str(exc))
            continue
        result.sizes.append((T, B))
        lost.append(unmatched)
        result.comparisons += comparisons
        tried[(T, B)] = _tried(comparisons, unmatched, None)
    if result.sizes and not result.comparisons:
        known = "the reference's y, h_n, c_n and head forms"
        raise NotSupported(
            f"{runtime.label}: no output has the shape of a reference output (found "
            f"{', '.join(lost[0])}; allowed {known})"
        )
    # an output unmatched at every size is not the model's; one unmatched at some sizes only
    # lost its shape there (a baked size)
    always = set.intersection(*map(set, lost)) if lost else set()
    result.unmatched = sorted(always)
    for size, unmatched in zip(result.sizes, lost, strict=True):
        if set(unmatched) - always:
            tried[size] = Tried("wrong")
            result.comparisons.append(
                _failure(
                    role,
                    f"at T={size[0]}, B={size[1]} {', '.join(unmatched)} has no "
                    "reference output's shape, which it has at other sizes",
                )
            )
    if budget is not None and result.sizes:
        longest = max(t for t, _ in result.sizes)
        if budget.factor(longest) > 1:
            result.budget = budget.describe(longest)
    if not diagnose_failures:
        for T, B, why in failed[:1]:
            result.comparisons.insert(
                0, _failure(role, f"{runtime.label} fails at T={T}, B={B}: {why}")
            )
        return judged(result)
    if failed or any(t.how == "wrong" for t in tried.values()):
        unmatched = set(result.unmatched)

        def probe(T, B):
            try:
                comparisons, missed = _run_at(runtime, model, T, B, seed, budget, role)
            except (OrtError, RuntimeError, KernelGap) as exc:
                return Tried(str(exc))
            return _tried(comparisons, missed, unmatched)

        wrong = [size for size, t in tried.items() if t.how == "wrong"]
        cause = explain(runtime, model, wrong[0], seed, budget) if wrong else ""
        cause = cause or diagnose(runtime, tried, probe)
        if cause:
            result.comparisons.insert(0, _failure(role, cause))
        elif failed:
            T, B, why = failed[0]
            result.comparisons.insert(
                0, _failure(role, f"{runtime.label} fails at T={T}, B={B}: {why}")
            )
    return judged(result)


def _run_at(runtime, model, T: int, B: int, seed: int, budget, role: str):
    """(comparisons, unmatched) of `runtime` at (T, B) against the reference."""
    drawn = draw(model.front, model.spec.input_size, T, B, seed)
    run = runtime.run(drawn.file_input, np.random.default_rng([seed, T, B, 1]))
    ref = reference_for(model, runtime.nodes, drawn.file_input, run.received)
    judge = Budgeted(budget, T, model.direction != "forward")
    label = f"{role} (T={T}, B={B})"
    return compare_outputs(
        label, run.outputs, ref, model.spec, runtime.nodes, model.spec.dtype, judge
    )


def _tried(comparisons, unmatched, always: set | None) -> Tried:
    """'right' when every output matched within its budget and none lost the shape it has at
    other sizes (`always`: the outputs unmatched everywhere; None: not known yet), else 'wrong'
    with the first step over budget."""
    lost = always is not None and bool(set(unmatched) - always)
    if comparisons and all(c.passed for c in comparisons) and not lost:
        return Tried("right")
    steps = [c.first_step_over for c in comparisons if c.first_step_over is not None]
    return Tried("wrong", min(steps) if steps else None)


def _failure(role: str, message: str) -> Comparison:
    return Comparison(f"{role}: runs", False, math.nan, math.nan, 0.0, 0.0, message)


def check_weights(role, runtime, model) -> RuntimeCheck:
    """An export with native nodes holds weights: each must equal the source's (an exporter
    copies them; a tensor off by 1e-2 may move the outputs by less than float32 noise, but not
    the weights), compared gate by gate. Parameters that enter only as a sum (Wb + Rb, except
    the canonical GRU's candidate gate, where the reset gate multiplies Rb) are compared as
    that sum."""
    from harness.model_file.weight_match import compare_read

    exported = runtime.imported
    if (
        exported.spec.replace(batch_first=False, dtype="float64")
        != model.spec.replace(batch_first=False, dtype="float64")
        or exported.direction != model.direction
    ):
        message = (
            f"{runtime.label} is another model: {_shape(exported.spec, exported.direction)} "
            f"where the source is {_shape(model.spec, model.direction)}"
        )
        failure = Comparison(f"{role}: model", False, math.nan, math.nan, 0.0, 0.0, message)
        summary = "weights not compared: another model"
        return RuntimeCheck(role, runtime.label, "failed", message, [failure], summary=summary)
    comparisons = compare_read(role, model.weights, exported.weights)
    comparisons += _embedding(role, runtime, model)
    matched = sum(c.passed for c in comparisons)
    summary = f"{matched} of {len(comparisons)} weights matched"
    return judged(RuntimeCheck(role, runtime.label, "passed", "", comparisons, summary=summary))


def _embedding(role, runtime, model) -> list[Comparison]:
    """The source's embedding table against the export's: one more weight, or a failure where
    one of them has none."""
    from harness.parity.checks import compare

    want, got = model.front.table, runtime.imported.front.table
    if want is None and got is None:
        return []
    if want is None or got is None:
        which = "the export" if got is None else "the source"
        message = f"{role}: weights embedding: {which} has no embedding table where the other has"
        return [
            Comparison(f"{role}: weights embedding", False, math.nan, math.nan, 0.0, 0.0, message)
        ]
    dtype = model.spec.dtype
    return [compare(f"{role}: weights embedding", np.asarray(want), np.asarray(got, dtype), dtype)]


def _shape(spec, direction) -> str:
    variants = f", {spec.describe_variants()}" if spec.variants else ""
    head = f", head {spec.head.units} {spec.head.activation}" if spec.head else ", no head"
    return (
        f"{spec.cell.value} I={spec.input_size} H={spec.hidden_size} L={spec.num_layers} "
        f"{direction}{variants}{head}"
    )


def sequence(input_size: int, T: int, B: int, seed: int) -> np.ndarray:
    """x ~ N(0, 1) [T, B, I] in float64, float32-exact: the same for every runtime."""
    return float32_exact(np.random.default_rng([seed, T, B]).standard_normal((T, B, input_size)))


def check_against_running_source(source, about: dict, export, sizes, seed: int = 0):
    """The export against its source as the source runs (no reference: the source is a model
    the reference does not compute), on the same x at each size: each source output against
    the export output of its shape, in order, at the tolerance of the source's dtype."""
    from harness.parity.checks import compare

    result = RuntimeCheck("export-file", export.label, "passed", sizes=[])
    front = about.get("front", PLAIN)
    for T, B in sizes:
        x = draw(front, about["input_size"], T, B, seed).file_input
        try:
            want = source.run(x).outputs
        except RuntimeError as exc:
            raise NotSupported(f"the source fails at T={T}, B={B}: {exc}") from None
        try:
            got = export.run(x, None).outputs
        except (OrtError, RuntimeError) as exc:
            result.comparisons.append(
                _failure("export-file", f"{export.label} fails at T={T}, B={B}: {exc}")
            )
            continue
        result.sizes.append((T, B))
        left = list(got.items())
        for name, value in want.items():
            match = next((k for k, v in left if np.shape(v) == np.shape(value)), None)
            if match is None:
                result.unmatched.append(name)
                continue
            left = [(k, v) for k, v in left if k != match]
            result.comparisons.append(
                compare(
                    f"export-file (T={T}, B={B}):{match}~source {name}",
                    np.asarray(value, np.float64),
                    np.asarray(got[match]),
                    about["dtype"],
                )
            )
    if not result.comparisons:
        raise NotSupported(f"{export.label}: no output has the shape of a source output")
    return judged(result)
