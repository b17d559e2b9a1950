"""The model-file check as a Python call: what `rnnbench parity --model SOURCE --against EXPORT
[--inputs PATH]` checks (harness/model_file/verify.py), returned as the typed record that
`--json` writes (harness/records/parity.py), its `passed` derived from its results.

    from harness.model_file.api import check_export, failure_lines
    record = check_export("model.pt", against="model.onnx")
    if not record.passed:
        print(failure_lines(record)[0])

A file that cannot be checked raises what the command prints in one line (NotSupported, BadInput,
harness/files/limits.py Refused)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from harness.model.errors import BadInput

PathLike = str | os.PathLike


def check_export(
    source: PathLike,
    against: PathLike | None = None,
    inputs: PathLike | None = None,
    *,
    spec=None,
    backends: Iterable[str] | None = None,
    strict_shapes: bool = False,
    say: Callable[[str], None] | None = None,
):
    """The parity record (ParityRecord) of `source` (a model file), against its export
    `against`, on `inputs` (an ONNX test-data folder or .npz); spec: a ModelSpec or a spec file,
    what a state_dict holds; backends: registry names (default: the file's own framework,
    numpy and ONNX Runtime); strict_shapes: a file that fixes T or B fails (else it passes,
    saying so in the record's notes); say: hears what was read, one line at a time."""
    from harness import registry
    from harness.model.spec import ModelSpec, load_spec
    from harness.model_file.verify import Request, verify
    from harness.parity.report import parity_record

    started = time.perf_counter()
    if spec is not None and not isinstance(spec, ModelSpec):
        spec = load_spec(os.fspath(spec))
    if backends is not None:
        backends = tuple(backends)
        for name in backends:
            try:
                registry.check_name(name)
            except registry.UnknownBackend as exc:
                raise BadInput(str(exc)) from None
    request = Request(
        model=os.fspath(source),
        against=None if against is None else os.fspath(against),
        inputs=None if inputs is None else os.fspath(inputs),
        spec=spec,
        backends=backends or None,
        strict_shapes=strict_shapes,
    )
    outcome = verify(request, say or (lambda line: None))
    elapsed = time.perf_counter() - started
    return parity_record(outcome.results, outcome.training, outcome.extra, elapsed)


def failure_lines(record) -> list[str]:
    """What a record that did not pass says: one line per failure (the tensor, index and both
    values), or, when nothing was compared, why each backend was skipped."""
    from harness.parity.report import failures

    lines = failures(record.results, record.training)
    if lines or record.passed:
        return lines
    skips = sorted({f"{r.backend}: {r.reason}" for r in record.results if r.status == "skipped"})
    return ["nothing was compared: every check was skipped", *skips]
