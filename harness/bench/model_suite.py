"""`rnnbench bench --model FILE`: the suite built from a user's model instead of a suite file.

For every (batch, steps, threads) of the grid, one interleaved group times
- the file itself in its own runtime (ONNX Runtime, Keras, torch: the `model-file` backend),
- every backend that can rebuild it from its weights (forward), each parity-checked first,
- the same FLOPs as one matrix product in NumPy and torch (the recurrence penalty),
- and, at batch 1, Newton and quasi-Newton iterations over all T on the model's own weights
  (torch), beside the torch step loop they would replace.
The weights travel as an rnnbench .npz (digest-checked) written beside the results."""

from __future__ import annotations

import re
from pathlib import Path

from harness import registry
from harness.bench.case import SuiteError, model_case
from harness.bench.suites import Suite
from harness.model.weights import save_weights
from harness.records.results import Timing

TARGETS = ("model-file", "numpy", "torch-cpu", "tf-function", "ort-direct-cpu")
PRODUCT_TARGETS = ("numpy", "torch-cpu")
SOLVE_TARGET = "torch-cpu"  # times the parallel-in-time solve: its quasi-Newton is the fastest
BATCHES, STEPS, THREADS = (1, 8), (16, 64, 256), (1,)
TIMING = {"warmup_s": 0.05, "min_round_s": 0.02, "rounds": 5, "pause_s": 0.05, "timeout_s": 120.0}
BUDGET_S = 120.0


def model_name(path) -> str:
    """The file's name as a case id can hold it: letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).name)[:64] or "model"


def model_suite(model, out_dir, batches=BATCHES, steps=STEPS, threads=THREADS, backends=TARGETS):
    """(the Suite for `model` (a ModelFile), the backends left out with why). Its weights are
    written to out_dir/model-NAME-DIGEST.npz, which the cases name."""
    if model.direction == "reverse":
        raise SuiteError(
            f"{model.path} is a reverse-only model: no backend rebuilds it (allowed forward or "
            "bidirectional models)"
        )
    name = model_name(model.path)
    digest = model.weights.digest()
    weights_file = Path(out_dir) / f"model-{name}-{digest[:12]}.npz"
    if not weights_file.exists():
        save_weights(model.weights, weights_file)
    spec = model.spec.replace(batch_first=False)
    kept: list[str] = []
    left_out: list[tuple[str, str]] = []
    for backend in backends:
        reason = _left_out(backend, model)
        if reason:
            left_out.append((backend, reason))
        else:
            kept.append(backend)
    cases = []
    for n_threads in threads:
        for batch in batches:
            for T in steps:
                common = (spec, name, str(weights_file), model.path, batch, T, n_threads)
                cases += [model_case(t, "forward", *common, "runtimes") for t in kept]
                cases += [
                    model_case(t, "gemm", *common, "product") for t in PRODUCT_TARGETS if t in kept
                ]
                if batch == 1 and SOLVE_TARGET in kept and not spec.variants:
                    cases += [
                        model_case(SOLVE_TARGET, m, *common, "parallel-in-time")
                        for m in registry.PARALLEL_IN_TIME_MODES
                        if m in registry.check_name(SOLVE_TARGET).modes
                    ]
    suite = Suite(
        f"model-{name}",
        f"{model.describe()}: every runtime, the product baseline, parallel in time",
        BUDGET_S,
        Timing.model_validate(TIMING),
        tuple(cases),
        model.path,
    )
    return suite, left_out


def _left_out(backend: str, model) -> str | None:
    """Why `backend` does not time this model (None: it does)."""
    entry = registry.check_name(backend)
    if entry.runs_file and model.runtime is None:
        return f"{model.kind} holds weights only: nothing runs the file as it is"
    if entry.runs_file and model.imported is not None and model.imported.weight_inputs:
        return "its weights are graph inputs: the file cannot run on x alone"
    return registry.spec_reason(backend, model.spec) or registry.unavailable_reason(backend)


def parse_sizes(text: str, option: str) -> tuple[int, ...]:
    """ "1,8" -> (1, 8); each an integer >= 1, else a SuiteError naming the option."""
    values = []
    for item in (t.strip() for t in text.split(",")):
        if not item.isdigit() or int(item) < 1:
            raise SuiteError(f"{option} {text}: allowed a comma list of integers >= 1")
        values.append(int(item))
    if not values:
        raise SuiteError(f"{option} is empty: allowed a comma list of integers >= 1")
    return tuple(dict.fromkeys(values))
