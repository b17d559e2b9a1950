"""What a row of the parity matrix must show beyond "passed", checked the same way on a run
(tests/test_parity_matrix.py) and on a written record (tests/test_parity_record.py, which
`tox -e parity` runs over the out/parity.json that `rnnbench parity --report out` wrote): every
model output compared, every gradient compared by a backend that trains, an ONNX Runtime row
forward only and its export valid to the ONNX checker, every (case, backend) pair present, and a
training trajectory per cell and dtype that the reference ran, for 20 steps, and that learned.

Results are read by attribute: a run's harness.parity.run.BackendResult and a record's
harness.records.parity.BackendResult both serve, as do both kinds of Trajectory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.parity.cases import ParityCase
from harness.parity.training import STEPS

INPUT_AND_FIRST_LAYER_GRADS = {"grad:x", "grad:h0", "grad:l0.W", "grad:l0.R"}


def row_problems(result: Any, case: ParityCase) -> list[str]:
    """What is wrong with one backend's result on `case`; a skip with its reason is fine."""
    where = f"{result.backend} {case.id}"
    if result.status == "skipped":
        return [] if result.reason else [f"{where}: skipped without a reason"]
    if result.status != "passed":
        failed = [c.message for c in result.comparisons if not c.passed]
        return [f"{where}: {result.status}: {failed[0] if failed else result.reason}"]
    quantities = {c.quantity for c in result.comparisons}
    lstm, head = case.spec.cell.value == "lstm", case.spec.head is not None
    problems = [
        f"{where}: {name} {'not compared' if expected else 'compared but the model has none'}"
        for name, expected in (("y", True), ("h_n", True), ("c_n", lstm), ("head", head))
        if (name in quantities) != expected
    ]
    if result.backend.startswith("ort-"):  # ONNX Runtime is inference only, and says so
        if not result.reason.startswith("forward only"):
            problems.append(f"{where}: does not say it is forward only ({result.reason!r})")
        checker = (result.audit or {}).get("checker")
        if checker != "ok":
            problems.append(f"{where}: the ONNX checker says {checker!r} of its export")
        return problems
    missing = sorted(INPUT_AND_FIRST_LAYER_GRADS - quantities)
    if missing:
        problems.append(f"{where}: gradients not compared: {', '.join(missing)} ({result.reason})")
    if ("grad:head.W" in quantities) != head:
        problems.append(f"{where}: grad:head.W {'missing' if head else 'without a head'}")
    return problems


def trajectory_problems(trajectories: Iterable[Any], cell: str, dtype: str) -> list[str]:
    """What is wrong with the training trajectories of one cell and dtype."""
    ran = [t for t in trajectories if (t.cell, t.dtype) == (cell, dtype) and t.status != "skipped"]
    where = f"training {cell} {dtype}"
    problems = [] if "numpy" in {t.backend for t in ran} else [f"{where}: numpy did not run"]
    for t in ran:
        if t.status != "passed":
            problems.append(f"{where} {t.backend}: {t.status}: {t.failure}")
        elif len(t.losses) != STEPS:
            problems.append(f"{where} {t.backend}: {len(t.losses)} losses, not {STEPS}")
        elif not t.losses[-1] < t.losses[0]:  # else the comparison could be vacuous
            problems.append(f"{where} {t.backend}: loss {t.losses[0]} -> {t.losses[-1]}")
    return problems


def record_problems(
    record: Any,
    cases: Sequence[ParityCase],
    backends: Sequence[str],
    trained: Iterable[tuple[str, str]],
) -> list[str]:
    """What is wrong with a parity record that should hold every case on every backend and the
    trajectories of every (cell, dtype) in `trained`."""
    by_pair = {(r.backend, r.case): r for r in record.results}
    problems = [] if record.passed else ["the record did not pass"]
    for case in cases:
        for backend in backends:
            result = by_pair.get((backend, case.id))
            if result is None:
                problems.append(f"{backend} {case.id}: not in the record")
            else:
                problems += row_problems(result, case)
    for cell, dtype in trained:
        problems += trajectory_problems(record.training, cell, dtype)
    return problems
