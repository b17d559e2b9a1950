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
    from harness.registry import DEFAULT_PARITY as DEFAULT_BACKENDS

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
    from harness.parity import report as parity_report
    from harness.parity import run as matrix

    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    backends = names(args.backends, registry.BACKENDS, "backend")
    cases = _cases(args, dtypes)
    results, started = _onnx_file_results(args, dtypes, backends), time.perf_counter()
    for n, case in enumerate(cases, 1):
        progress(f"[{n}/{len(cases)}] {case.id}")
        results += matrix.run_case(case, backends)
    progress("")
    training = [] if args.no_training else _training(args, dtypes, backends)
    print(parity_report.format_table(parity_report.summarize(results), markdown=args.markdown))
    audits = parity_report.audit_rows(results)
    if audits:
        from harness.onnx.audit_table import format_audit

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


def _onnx_file_results(args, dtypes, backends) -> list:
    """The user's file itself, run by ONNX Runtime, against the reference on its weights; for a
    reverse-only file, the backends too (the matrix's ModelSpec cannot say reverse)."""
    if not args.onnx:
        return []
    from harness.onnx.file_check import check_file
    from harness.parity.run import BackendResult

    imported = args.imported
    check = check_file(args.onnx, imported)
    status = "passed" if all(c.passed for c in check.comparisons) else "failed"
    note = "at (T, B) " + ", ".join(map(str, check.sizes))
    if check.unmatched:
        note += f"; not compared (no reference output has its shape): {', '.join(check.unmatched)}"
    case = f"{imported.spec.cell.value}-file-{imported.spec.dtype}"
    results = [BackendResult("onnx-file", case, status, note, check.comparisons)]
    if imported.direction == "reverse":
        results += _reverse_only_results(imported, dtypes, backends, BackendResult)
    return results


def _reverse_only_results(imported, dtypes, backends, BackendResult) -> list:
    """numpy as the forward model on time-reversed sequences; every other backend skipped with
    the reason it cannot express a reverse-only RNN."""
    from harness.onnx.file_check import check_reverse_numpy, reverse_only_reason

    spec, results = imported.spec, []
    for dtype in dtypes:
        for lens in (False, True):
            case = f"{spec.cell.value}-L{spec.num_layers}-rev-{'lens' if lens else 'full'}-{dtype}"
            for name in backends:
                reason = registry.unavailable_reason(name) or reverse_only_reason(name)
                if reason:
                    results.append(BackendResult(name, case, "skipped", reason))
                    continue
                comparisons = check_reverse_numpy(imported, dtype, lens)
                status = "passed" if all(c.passed for c in comparisons) else "failed"
                note = "forward only: the forward model on each sample's reversed steps"
                results.append(BackendResult(name, case, status, note, comparisons))
    return results


def _cases(args, dtypes):
    """The default matrix, or one model from a spec file (+ weights) or a user's ONNX file (none
    for a reverse-only file: _onnx_file_results runs what can run it)."""
    from harness.parity.cases import default_cases

    cells = names(args.cells, [c.value for c in Cell], "cell")
    if args.onnx:
        import atexit
        import shutil
        import tempfile

        from harness.model.weights import save_weights
        from harness.onnx.reader import read_onnx

        args.imported = imported = read_onnx(args.onnx)
        if imported.direction == "reverse":
            return []
        folder = tempfile.mkdtemp(prefix="rnnbench-")
        atexit.register(shutil.rmtree, folder, True)
        weights = str(Path(folder) / "imported.npz")
        save_weights(imported.weights, weights)
        return _model_cases(imported.spec, weights, dtypes, T=imported.T, B=imported.B)
    if args.spec:
        return _model_cases(load_spec(args.spec), args.weights, dtypes)
    if args.weights:
        raise UsageError("--weights needs --spec: the spec says what the weights are")
    return default_cases(cells, dtypes)


def _model_cases(spec, weights_file, dtypes, T=None, B=None):
    """One model in each dtype, with and without sequence_lens, at T and B when given (a file's
    static sizes) else the matrix's; weights that do not fit the spec are refused before
    anything runs."""
    from harness.parity.cases import ParityCase, case_data

    sizes = {k: v for k, v in (("T", T), ("B", B)) if v is not None}
    cases = [
        ParityCase(spec.replace(dtype=d), with_lens=lens, weights_file=weights_file, **sizes)
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
