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

import dataclasses
import math

import numpy as np

from harness.model.protocol import NotSupported
from harness.model.weights import float32_exact
from harness.model_file.reference import compare_outputs, reference
from harness.onnx.session import KernelGap, OrtError
from harness.parity.checks import Comparison

SIZES = ((7, 3), (1, 1), (13, 2))  # (T, B) wherever a file leaves them dynamic


@dataclasses.dataclass
class RuntimeCheck:
    role: str  # model-file | export-file | shipped-outputs
    label: str  # the file, as the user named it
    status: str  # passed | failed | skipped
    reason: str = ""
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    sizes: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    unmatched: list[str] = dataclasses.field(default_factory=list)
    summary: str = ""  # a weights check's: "k of n weights matched", and what was not located

    @property
    def note(self) -> str:
        if self.summary:
            return self.summary
        text = f"{self.label} at (T, B) " + ", ".join(map(str, self.sizes))
        if self.unmatched:
            text += (
                f"; not compared (no reference output has its shape): {', '.join(self.unmatched)}"
            )
        return text


def plan_sizes(runtimes) -> list[tuple[int, int]]:
    """The (T, B) every runtime can be asked for: SIZES with the dimensions some runtime fixes
    taken from it, and each length an output declares while x leaves it dynamic (there the
    graph may have baked it in: it must run elsewhere too)."""
    fixed = {}
    for axis in ("T", "B"):
        values = {getattr(r, axis) for r in runtimes if getattr(r, axis) is not None}
        if len(values) > 1:
            what = ", ".join(f"{r.label} {axis}={getattr(r, axis)}" for r in runtimes)
            raise NotSupported(f"the files fix different {axis}: {what}")
        fixed[axis] = next(iter(values), None)
    candidates = list(SIZES) + [(r.output_T, 2) for r in runtimes if r.output_T]
    return list(dict.fromkeys((fixed["T"] or t, fixed["B"] or b) for t, b in candidates))


def check_file(path, given=None, sizes=None) -> RuntimeCheck:
    """The model file as its runtime runs it, against the reference on its own weights, at
    `sizes` (default: plan_sizes'): check_runtime for one file, opened here (the commands open
    the model once and call check_runtime themselves)."""
    from harness.model_file.model import open_model

    model = open_model(path, given=given)
    if model.runtime is None:
        raise NotSupported(f"{path} ({model.kind}) holds weights only: nothing runs it")
    return check_runtime("model-file", model.runtime, model, sizes or plan_sizes([model.runtime]))


def check_runtime(role, runtime, model, sizes, seed: int = 0) -> RuntimeCheck:
    """`runtime` on generated inputs at each size, against the reference of `model`'s weights
    (the same x for every runtime at a size: drawn from the seed and the size)."""
    dtype = model.spec.dtype
    result = RuntimeCheck(role, runtime.label, "passed", sizes=[])
    ran, failed = [], []
    for T, B in sizes:
        x = sequence(model.spec.input_size, T, B, seed)
        rng = np.random.default_rng([seed, T, B, 1])
        try:
            run = runtime.run(x, rng)
        except KernelGap as exc:
            return RuntimeCheck(role, runtime.label, "skipped", str(exc))
        except (OrtError, RuntimeError) as exc:
            failed.append((T, B, str(exc)))
            continue
        ran.append((T, B))
        ref = reference(model.weights, model.direction, runtime.nodes, x, run.received)
        label = f"{role} (T={T}, B={B})"
        comparisons, unmatched = compare_outputs(
            label, run.outputs, ref, model.spec, runtime.nodes, dtype
        )
        if not comparisons:
            known = ", ".join(f"{k} {list(np.shape(v))}" for k, v in ref.items() if ":" not in k)
            raise NotSupported(
                f"{runtime.label}: no output has the shape of a reference output (found "
                f"{', '.join(unmatched)}; allowed {known})"
            )
        result.comparisons += comparisons
        result.unmatched = sorted(set(result.unmatched) | set(unmatched))
    result.sizes = ran
    wrong = {
        size
        for size in ran
        if any(
            not c.passed and f"(T={size[0]}, B={size[1]})" in c.quantity for c in result.comparisons
        )
    }
    if failed or wrong:
        baked = _baked(runtime, model, ran, wrong, failed, seed, set(result.unmatched))
        if baked:
            result.comparisons.insert(0, _failure(role, baked))
        elif failed:
            T, B, why = failed[0]
            result.comparisons.insert(
                0, _failure(role, f"{runtime.label} fails at T={T}, B={B}: {why}")
            )
    return _judged(result)


def _outcome(runtime, model, T: int, B: int, seed: int, unmatched: set) -> str:
    """How `runtime` does at (T, B): 'right', 'wrong' (its outputs differ from the reference,
    or one no longer has a reference output's shape) or why it does not run. `unmatched`:
    outputs that have no reference output's shape at any size."""
    x = sequence(model.spec.input_size, T, B, seed)
    try:
        run = runtime.run(x, np.random.default_rng([seed, T, B, 1]))
    except (OrtError, RuntimeError, KernelGap) as exc:
        return str(exc)
    ref = reference(model.weights, model.direction, runtime.nodes, x, run.received)
    comparisons, missed = compare_outputs(
        "probe", run.outputs, ref, model.spec, runtime.nodes, model.spec.dtype
    )
    right = comparisons and all(c.passed for c in comparisons) and set(missed) <= unmatched
    return "right" if right else "wrong"


def _baked(runtime, model, ran, wrong, failed, seed, unmatched: set) -> str:
    """Where a file that declares an axis dynamic is right at some sizes only: the axis and the
    sizes it is right at (found among the sizes tried and the integers its graph holds, which
    is where an exporter bakes an example's size), or '' when that does not explain it."""
    tried = {(T, B): ("wrong" if (T, B) in wrong else "right") for T, B in ran}
    tried.update({(T, B): why for T, B, why in failed})
    for axis, name, declared in ((0, "sequence", runtime.T), (1, "batch", runtime.B)):
        if declared is not None:
            continue
        good = [size for size, how in tried.items() if how == "right"]
        other = good[0][1 - axis] if good else (2 if axis == 0 else 5)
        values = sorted({size[axis] for size in tried} | set(_graph_integers(runtime)))
        right, bad = [], None
        for value in values:
            size = (value, other) if axis == 0 else (other, value)
            how = tried.get(size) or _outcome(runtime, model, *size, seed, unmatched)
            tried[size] = how
            if how == "right":
                right.append(value)
            elif bad is None:
                bad = (size, how)
        if right and bad and len(right) < len(values):
            letter = "T" if axis == 0 else "B"
            (T, B), how = bad
            what = "its outputs differ from the reference" if how == "wrong" else how
            return (
                f"{runtime.label} declares a dynamic {name} axis but is right only at {letter}="
                f"{', '.join(map(str, right))}: the graph bakes that {name} size in (at T={T}, "
                f"B={B}: {what})"
            )
    return ""


def _graph_integers(runtime) -> list[int]:
    """Small positive integers among the file's constants (shapes, indices, slice bounds),
    and each plus one: where an exporter bakes an example's length or batch. At most 12."""
    found = set()
    for value in getattr(runtime, "constants", {}).values():
        array = np.asarray(value)
        if array.dtype.kind in "iu" and array.size <= 8:
            # a size, or the last index of one (a Gather or Slice of the last step)
            found |= {int(v) + k for v in array.ravel() if 1 <= v <= 1024 for k in (0, 1)}
    if getattr(runtime, "output_T", None):
        found.add(runtime.output_T)
    return sorted(found - {1})[:12]


def _failure(role: str, message: str) -> Comparison:
    return Comparison(f"{role}: runs", False, math.nan, math.nan, 0.0, 0.0, message)


def check_data_set(role, runtime, model, data) -> list[RuntimeCheck]:
    """The file on one --inputs data set (skipped with ORT's reason where it cannot run it),
    and the outputs shipped with the data against the same reference."""
    dtype, x_name = model.spec.dtype, runtime.x_input
    if x_name not in data.inputs:
        raise NotSupported(
            f"--inputs {data.name} gives {', '.join(sorted(data.inputs))} but not the sequence "
            f"input {x_name!r}: give it too, or the weights alone"
        )
    given = np.asarray(data.inputs[x_name])
    layout = "[B, T, I]" if runtime.batch_major else "[T, B, I]"
    if given.ndim != 3 or given.shape[2] != model.spec.input_size or given.dtype.kind != "f":
        raise NotSupported(
            f"--inputs {data.name}: {x_name!r} is {given.dtype} {list(given.shape)}: allowed "
            f"float {layout.replace('I', str(model.spec.input_size))}"
        )
    x = given.astype(np.float64)
    x = x.transpose(1, 0, 2) if runtime.batch_major else x
    T, B = x.shape[:2]
    feed = runtime.feed(x, np.random.default_rng(0))
    missing = sorted(set(feed) - set(data.inputs))
    if missing:
        raise NotSupported(f"--inputs {data.name} has no value for graph input {missing[0]!r}")
    feed = {k: np.asarray(v).astype(feed[k].dtype) for k, v in data.inputs.items()}
    received = {**runtime.constants, **feed}
    checks = []
    try:
        run = runtime.run_feed(feed)
        received = run.received
        label = f"{role} on {data.name}"
        ref = reference(model.weights, model.direction, runtime.nodes, x, received)
        comparisons, unmatched = compare_outputs(
            label, run.outputs, ref, model.spec, runtime.nodes, dtype
        )
        checks.append(
            _judged(
                RuntimeCheck(role, runtime.label, "passed", "", comparisons, [(T, B)], unmatched)
            )
        )
    except KernelGap as exc:
        checks.append(RuntimeCheck(role, runtime.label, "skipped", str(exc)))
    except OrtError as exc:
        failure = Comparison(
            f"{role} on {data.name}", False, math.nan, math.nan, 0.0, 0.0, str(exc)
        )
        checks.append(RuntimeCheck(role, runtime.label, "failed", str(exc), [failure], [(T, B)]))
    if data.outputs:
        ref = reference(model.weights, model.direction, runtime.nodes, x, received)
        comparisons, unmatched = compare_outputs(
            f"shipped {data.name}", data.outputs, ref, model.spec, runtime.nodes, dtype
        )
        checks.append(
            _judged(
                RuntimeCheck(
                    "shipped-outputs", data.name, "passed", "", comparisons, [(T, B)], unmatched
                )
            )
        )
    return checks


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
    matched = sum(c.passed for c in comparisons)
    summary = f"{matched} of {len(comparisons)} weights matched"
    return _judged(RuntimeCheck(role, runtime.label, "passed", "", comparisons, summary=summary))


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


def _judged(result: RuntimeCheck) -> RuntimeCheck:
    if result.status == "skipped":
        return result
    bad = [c for c in result.comparisons if not c.passed]
    result.status = "failed" if bad else "passed"
    result.reason = bad[0].message if bad else ""
    return result


def check_against_running_source(source, about: dict, export, sizes, seed: int = 0):
    """The export against its source as the source runs (no reference: the source is a model
    the reference does not compute), on the same x at each size: each source output against
    the export output of its shape, in order, at the tolerance of the source's dtype."""
    from harness.parity.checks import compare

    result = RuntimeCheck("export-file", export.label, "passed", sizes=[])
    for T, B in sizes:
        x = sequence(about["input_size"], T, B, seed)
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
    return _judged(result)
