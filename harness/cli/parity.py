"""`rnnbench parity`: every backend against the NumPy reference, on the default matrix, a spec
file (+ weights), or a user's model file (--model: harness/model_file/verify.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness import registry
from harness.atomic import write_text_atomic
from harness.cli.errors import UsageError, add_memory_budget, names, progress
from harness.model.spec import Cell, load_spec
from harness.model_file.verify import KERAS_BACKENDS, MODEL_BACKENDS
from harness.output_paths import FILE, folder
from harness.terminal import say

ALL_CELLS = "rnn,lstm,gru"


def add_parser(sub) -> None:
    from harness.registry import DEFAULT_PARITY as DEFAULT_BACKENDS

    p = sub.add_parser("parity", help="prove every backend equal to the NumPy reference")
    p.add_argument("--cells", help=f"comma list of rnn, lstm, gru (default matrix: {ALL_CELLS})")
    p.add_argument(
        "--backends",
        help=f"comma list of {', '.join(registry.BACKENDS)} (default: "
        f"{','.join(DEFAULT_BACKENDS)}; with --model: {','.join(MODEL_BACKENDS)}, or "
        f"{','.join(KERAS_BACKENDS)} for a Keras file)",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64", "both"),
        help="default both; with --model the file's own dtype",
    )
    p.add_argument(
        "--spec",
        help="a model spec (.toml/.json): instead of the default matrix, "
        "or what a --model state_dict holds",
    )
    p.add_argument("--weights", help="canonical weights (.npz) for --spec")
    model = p.add_argument_group("your model")
    model.add_argument(
        "--model",
        "--onnx",
        dest="model",
        metavar="FILE",
        help="your model: ONNX (native RNN/LSTM/GRU nodes), Keras .keras/.h5, TorchScript, "
        "ExportedProgram .pt2, or a state_dict with --spec. It is run as it is and every "
        "backend is rebuilt from its weights, each against the NumPy reference",
    )
    model.add_argument(
        "--against",
        metavar="EXPORT",
        help="an ONNX export of --model (native nodes, Loop, Scan or unrolled): both run on "
        "the same inputs at several (T, B), each against the reference of the source's weights",
    )
    model.add_argument(
        "--inputs",
        metavar="PATH",
        help="values for --model's graph inputs: an ONNX test-data folder (input_*.pb, and "
        "output_*.pb compared too) or an .npz keyed by graph input name",
    )
    add_memory_budget(model)
    model.add_argument(
        "--strict-shapes",
        action="store_true",
        help="fail where a file fixes T or B (default: pass, saying it was checked at that "
        "size only)",
    )
    model.add_argument(
        "--training",
        action="store_true",
        help="also train the file's model for a few SGD steps in every trainable backend",
    )
    p.add_argument("--no-training", action="store_true", help="skip the training trajectories")
    p.add_argument("--json", help="write the full record here (atomically)")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML (one testcase per check)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--report", metavar="DIR", help="write DIR/parity.md and DIR/parity.json")
    p.set_defaults(
        run=run_parity,
        outputs={"json": FILE, "junit": FILE, "report": folder("parity.md", "parity.json")},
    )


def run_parity(args) -> int:
    check_flags(args)
    if args.model:
        return run_model(args)
    return run_matrix(args)


def run_model(args) -> int:
    """--model FILE [--against EXPORT] [--inputs PATH]: harness/model_file/verify.py checks,
    this prints."""
    from harness.model.spec import load_spec
    from harness.model_file.verify import Request, verify

    started = time.perf_counter()
    backends = None
    if args.backends:
        backends = names(args.backends, registry.BACKENDS, "backend")
    request = Request(
        model=args.model,
        against=args.against,
        inputs=args.inputs,
        spec=load_spec(args.spec) if args.spec else None,
        backends=backends,
        dtypes=None if args.dtype is None else dtypes_of(args.dtype, None),
        training=args.training,
        strict_shapes=args.strict_shapes,
    )
    heard: list[str] = []  # what was read, said once the check ran: a refusal stays one line
    outcome = verify(request, say=heard.append)
    for line in heard:
        say(line)
    return finish(args, outcome.results, outcome.training, started, outcome.extra)


def check_flags(args) -> None:
    """Refuse flags that do not apply to what is being checked, never ignore them."""
    if not args.model:
        for flag in ("against", "inputs", "strict_shapes"):
            if getattr(args, flag):
                raise UsageError(
                    f"--{flag.replace('_', '-')} needs --model: it is about a model file"
                )
        if args.training and args.no_training:
            raise UsageError("--training and --no-training contradict each other")
    else:
        if args.cells:
            raise UsageError("--cells picks cells of the default matrix; --model says its cell")
        if args.weights:
            raise UsageError(
                "--weights is for --spec without --model; the model file carries its weights"
            )
        if args.training and args.no_training:
            raise UsageError("--training and --no-training contradict each other")
    if args.spec and args.cells:
        raise UsageError("--cells picks cells of the default matrix; --spec says its cell")
    if args.weights and not args.spec:
        raise UsageError("--weights needs --spec: the spec says what the weights are")


def run_matrix(args) -> int:
    from harness.parity import run as matrix

    dtypes = dtypes_of(args.dtype, None)
    backends = names(
        args.backends or ",".join(registry.DEFAULT_PARITY), registry.BACKENDS, "backend"
    )
    if args.spec:
        from harness.parity.cases import model_cases

        cases = model_cases(load_spec(args.spec), args.weights, dtypes)
    else:
        cases = _default_cases(args, dtypes)
    started, results = time.perf_counter(), []
    for n, case in enumerate(cases, 1):
        progress(f"[{n}/{len(cases)}] {case.id}")
        results += matrix.run_case(case, backends)
    progress("")
    if args.spec:  # its own model trains only when asked; no seeded models beside it
        training = _spec_training(cases, dtypes, backends) if args.training else []
    else:
        training = [] if args.no_training else _training(args, dtypes, backends)
    return finish(args, results, training, started, {})


def _spec_training(cases, dtypes, backends):
    from harness.parity.cases import case_data
    from harness.parity.training import run_model_trajectories

    weights = case_data(cases[0])[0]
    return [t for dtype in dtypes for t in run_model_trajectories(weights, dtype, backends)]


def dtypes_of(choice: str | None, model_dtype: str | None) -> tuple[str, ...]:
    if choice in (None, "both"):
        return (model_dtype,) if choice is None and model_dtype else ("float32", "float64")
    return (choice,)


def finish(args, results, training, started, extra: dict) -> int:
    """Print the table, notes and failures; write the JSON, the report and the JUnit XML.
    Exit 1 on any failure, or when nothing was compared."""
    from harness.markdown import print_table
    from harness.parity import report as parity_report

    record = parity_report.parity_record(results, training, extra, time.perf_counter() - started)
    print_table(*parity_report.table_cells(parity_report.summarize(results)), args.markdown)
    audits = parity_report.audit_rows(results)
    if audits:
        from harness.onnx.audit_table import COLUMNS, audit_cells

        print("\nONNX export forms:")
        print_table(COLUMNS, audit_cells(audits), args.markdown)
    if training:
        from harness.parity.training import TRAJECTORY_HEADER, trajectory_cells

        print("\nTraining trajectories (SGD steps):")
        print_table(TRAJECTORY_HEADER, trajectory_cells(training), args.markdown)
    for backend, reason in parity_report.skipped_backends(results):
        say(f"skipped {backend}: {reason}")
    json_paths = [args.json] if args.json else []
    if args.report:
        json_paths.append(str(Path(args.report) / "parity.json"))
        markdown = parity_report.format_markdown(results, training, record)
        write_text_atomic(Path(args.report) / "parity.md", markdown)
        say(f"wrote {Path(args.report) / 'parity.md'}")
    for path in json_paths:
        parity_report.write_record(path, record)
        say(f"wrote {path}")
    if args.junit:
        from harness.parity.junit import write_junit

        write_junit(args.junit, record, args.model)
        say(f"wrote {args.junit}")
    for line in extra.get("notes", []):
        say(f"note: {line}")
    bad = parity_report.failures(results, training)
    for line in bad:
        say(f"FAIL {line}", err=True)
    checked = parity_report.compared(results)
    failed_pairs = parity_report.failed_checks(results)
    print(
        f"{checked - failed_pairs} of {checked} backend x case checks passed, {len(bad)} failures"
    )
    if checked == 0:
        print("FAIL nothing was compared: every check was skipped", file=sys.stderr)
        return 1
    return 0 if record.passed else 1


def _default_cases(args, dtypes):
    from harness.parity.cases import default_cases

    cells = names(args.cells or ALL_CELLS, [c.value for c in Cell], "cell")
    return default_cases(cells, dtypes)


def _training(args, dtypes, backends):
    from harness.parity.training import run_trajectories

    cells = names(args.cells or ALL_CELLS, [c.value for c in Cell], "cell")
    return [
        t for cell in cells for dtype in dtypes for t in run_trajectories(cell, dtype, backends)
    ]
