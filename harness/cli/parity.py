"""`rnnbench parity`: every backend against the NumPy reference, on the default matrix, a spec
file (+ weights) or a user's ONNX file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness import registry
from harness.atomic import write_text_atomic
from harness.cli.errors import UsageError, names, progress
from harness.model.spec import Cell, load_spec


def add_parser(sub) -> None:
    from harness.parity.cases import DEFAULT_BACKENDS

    p = sub.add_parser("parity", help="prove every backend equal to the NumPy reference")
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma list of rnn, lstm, gru")
    p.add_argument(
        "--backends",
        default=",".join(DEFAULT_BACKENDS),
        help=f"comma list of {', '.join(registry.BACKENDS)}",
    )
    p.add_argument("--dtype", default="both", choices=("float32", "float64", "both"))
    p.add_argument("--spec", help="a model spec (.toml/.json) instead of the default matrix")
    p.add_argument("--weights", help="canonical weights (.npz) for --spec")
    p.add_argument(
        "--onnx",
        help="your ONNX file (native RNN/LSTM/GRU nodes): check it as ONNX "
        "Runtime runs it, and every backend on its weights",
    )
    p.add_argument("--no-training", action="store_true", help="skip the training trajectories")
    p.add_argument("--json", help="write the full record here (atomically)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--report", metavar="DIR", help="write DIR/parity.md and DIR/parity.json")
    p.set_defaults(run=run_parity)


def run_parity(args) -> int:
    from harness.parity import cases as matrix
    from harness.parity import report as parity_report

    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    backends = names(args.backends, registry.BACKENDS, "backend")
    cases = _cases(args, dtypes)
    results, started = _onnx_file_results(args), time.perf_counter()
    for n, case in enumerate(cases, 1):
        progress(f"[{n}/{len(cases)}] {case.id}")
        results += matrix.run_case(case, backends)
    progress("")
    training = [] if args.no_training else _training(args, dtypes, backends)
    print(parity_report.format_table(parity_report.summarize(results), markdown=args.markdown))
    audits = parity_report.audit_rows(results)
    if audits:
        from harness.onnx.audit import format_audit

        print("\nONNX export forms:")
        print(format_audit(audits, markdown=args.markdown))
    if training:
        from harness.parity.training import format_trajectories

        print("\nTraining trajectories (20 SGD steps, clipped):")
        print(format_trajectories(training))
    bad = parity_report.failures(results) + [t.failure for t in training if t.failure]
    skipped = sorted({(r.backend, r.reason) for r in results if r.status == "skipped"})
    for backend, reason in skipped:
        print(f"skipped {backend}: {reason}")
    extra = {
        "command": "parity",
        "seconds": round(time.perf_counter() - started, 1),
        "training": [t.as_dict() for t in training],
    }
    json_paths = [args.json] if args.json else []
    if args.report:
        json_paths.append(str(Path(args.report) / "parity.json"))
        markdown = parity_report.format_markdown(results, training, skipped, bad)
        write_text_atomic(Path(args.report) / "parity.md", markdown)
        print(f"wrote {Path(args.report) / 'parity.md'}")
    for path in json_paths:
        parity_report.write_json(path, results, extra)
        print(f"wrote {path}")
    for line in bad:
        print(f"FAIL {line}", file=sys.stderr)
    checked = sum(r.status in ("passed", "failed") for r in results)
    print(
        f"{checked - len({(r.backend, r.case) for r in results if r.status == 'failed'})} "
        f"of {checked} backend x case checks passed, {len(bad)} failures"
    )
    if checked == 0:
        print("FAIL nothing was compared: every backend was skipped", file=sys.stderr)
        return 1
    return 1 if bad else 0


def _onnx_file_results(args) -> list:
    """The user's file itself, run by ONNX Runtime, against the reference on its weights."""
    if not args.onnx:
        return []
    from harness.onnx.reader import check_file
    from harness.parity.cases import BackendResult

    comparisons = check_file(args.onnx, args.imported)
    matched = [c for c in comparisons if "matches no reference" not in c.message]
    status = "passed" if matched and all(c.passed for c in matched) else "failed"
    case = f"{args.imported.spec.cell.value}-file-{args.imported.spec.dtype}"
    return [BackendResult("onnx-file", case, status, str(args.onnx), comparisons)]


def _cases(args, dtypes):
    """The default matrix, or one model from a spec file (+ weights) or a user's ONNX file."""
    from harness.parity.cases import default_cases

    cells = names(args.cells, [c.value for c in Cell], "cell")
    if args.onnx:
        import tempfile

        from harness.model.weights import save_weights
        from harness.onnx.reader import read_onnx

        args.imported = read_onnx(args.onnx)
        weights = str(Path(tempfile.mkdtemp(prefix="rnnbench-")) / "imported.npz")
        save_weights(args.imported.weights, weights)
        return _model_cases(args.imported.spec, weights, dtypes)
    if args.spec:
        return _model_cases(load_spec(args.spec), args.weights, dtypes)
    if args.weights:
        raise UsageError("--weights needs --spec: the spec says what the weights are")
    return default_cases(cells, dtypes)


def _model_cases(spec, weights_file, dtypes):
    """One model in each dtype, with and without sequence_lens; weights that do not fit the
    spec are refused before anything runs."""
    from harness.parity.cases import ParityCase, case_data

    cases = [
        ParityCase(spec.replace(dtype=d), with_lens=lens, weights_file=weights_file)
        for d in dtypes
        for lens in (False, True)
    ]
    if weights_file:
        case_data(cases[0])
    return cases


def _training(args, dtypes, backends):
    from harness.parity.training import run_trajectories

    cells = names(args.cells, [c.value for c in Cell], "cell")
    return [
        t for cell in cells for dtype in dtypes for t in run_trajectories(cell, dtype, backends)
    ]
