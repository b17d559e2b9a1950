"""The `rnnbench` command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness import registry
from harness.analysis.compare import GateError
from harness.atomic import write_text_atomic
from harness.bench.results import ResultsError
from harness.bench.suites import SuiteError
from harness.cli import bench as bench_cli
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, SpecError, load_spec
from harness.model.weights import WeightsError


class UsageError(ValueError):
    pass


def _names(text: str, allowed, what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in allowed:
            raise UsageError(f"unknown {what} {name!r}: allowed {', '.join(allowed)}")
    return names


def _parity_parser(sub) -> None:
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
    backends = _names(args.backends, registry.BACKENDS, "backend")
    cases = _cases(args, dtypes)
    results, started = _onnx_file_results(args), time.perf_counter()
    for n, case in enumerate(cases, 1):
        _progress(f"[{n}/{len(cases)}] {case.id}")
        results += matrix.run_case(case, backends)
    _progress("")
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

    cells = _names(args.cells, [c.value for c in Cell], "cell")
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

    cells = _names(args.cells, [c.value for c in Cell], "cell")
    return [
        t for cell in cells for dtype in dtypes for t in run_trajectories(cell, dtype, backends)
    ]


def _progress(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + text)
        sys.stderr.flush()


def _growth_parser(sub) -> None:
    p = sub.add_parser("error-growth", help="float32 error against float64 as T grows to 1000")
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma list of rnn, lstm, gru")
    p.add_argument(
        "--backends",
        default="numpy,torch-cpu,tf-eager",
        help=f"comma list of {', '.join(registry.BACKENDS)}",
    )
    p.add_argument("--gain", type=float, default=1.0, help="scale R (>1 drives towards chaos)")
    p.add_argument("--json", help="write the rows here (atomically)")
    p.set_defaults(run=run_growth)


def run_growth(args) -> int:
    import json

    from harness.parity.error_growth import error_growth, format_growth

    backends = _names(args.backends, registry.BACKENDS, "backend")
    rows = []
    for cell in _names(args.cells, [c.value for c in Cell], "cell"):
        cell_rows = error_growth(cell, backends, gain=args.gain)
        print(f"{cell}: max |y float32 - y float64| (gain {args.gain})")
        print(format_growth(cell_rows) + "\n")
        rows += cell_rows
    if args.json:
        write_text_atomic(args.json, json.dumps({"error_growth": rows}, indent=1) + "\n")
    return 0


def _selfcheck_parser(sub) -> None:
    p = sub.add_parser(
        "selfcheck",
        help="timer resolution, loop overhead, and run-to-run "
        "precision of NumPy / torch on the standard LSTM case",
    )
    p.add_argument("--runs", type=int, default=3, help="separate runs (fresh workers each)")
    p.add_argument("--json", help="write the measurement here (atomically)")
    p.set_defaults(run=run_selfcheck)


def run_selfcheck(args) -> int:
    import json

    from harness.bench import selfcheck

    if registry.unavailable_reason("torch-cpu"):
        raise UsageError(f"selfcheck needs torch: {registry.unavailable_reason('torch-cpu')}")
    if args.runs < 2:
        raise UsageError(f"--runs {args.runs}: allowed 2 or more (precision needs a spread)")
    result = selfcheck.run_all(args.runs, progress=_progress)
    _progress("")
    print(selfcheck.format_report(result))
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=1) + "\n")
    ok = result["loop_overhead_ok"] and result["precision"]["within_tolerance"]
    return 0 if ok else 1


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="export to ONNX by every path and audit the graphs")
    p.add_argument("--spec", help="a model spec (.toml/.json); else --cell and sizes")
    p.add_argument("--cell", default="lstm", choices=[c.value for c in Cell])
    p.add_argument("--input-size", type=int, default=8)
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--weights", help="canonical weights (.npz); else seeded init")
    p.add_argument("--exporters", default="direct,torchscript,dynamo,tf2onnx")
    p.add_argument("--out", required=True, help="folder for the .onnx files and audit.json")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    import json
    from pathlib import Path

    from backends.onnx_export import EXPORTERS, export
    from harness.model.spec import ModelSpec
    from harness.model.weights import init_weights, load_weights
    from harness.onnx.audit import audit, format_audit
    from harness.parity.cases import describe_error

    exporters = _names(args.exporters, EXPORTERS, "exporter")
    spec = (
        load_spec(args.spec)
        if args.spec
        else ModelSpec(
            args.cell,
            args.input_size,
            args.hidden_size,
            num_layers=args.layers,
            bidirectional=args.bidirectional,
        )
    )
    weights = load_weights(args.weights, spec) if args.weights else init_weights(spec)
    rows, failed = [], []
    for exporter in exporters:
        path = Path(args.out) / f"{exporter}_{spec.cell.value}.onnx"
        try:
            exported = export(exporter, spec, weights, path)
        except Exception as exc:  # one exporter failing does not stop the others
            failed.append(f"{exporter}: {describe_error(exc)}")
            continue
        rows.append(
            {
                **audit(path, exporter, exported.seconds),
                "cell": spec.cell.value,
                "config": _config(spec),
            }
        )
    print(format_audit(rows))
    write_text_atomic(
        Path(args.out) / "audit.json",
        json.dumps({"spec": spec.to_dict(), "audit": rows, "failed": failed}, indent=1) + "\n",
    )
    for line in failed:
        print(f"FAIL export {line}", file=sys.stderr)
    return 1 if failed else 0


def _config(spec) -> str:
    return f"L{spec.num_layers} {'bi' if spec.bidirectional else 'uni'}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _parity_parser(sub)
    _growth_parser(sub)
    _selfcheck_parser(sub)
    _export_parser(sub)
    bench_cli.add_parser(sub)
    bench_cli.add_report_parsers(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (
        UsageError,
        SpecError,
        WeightsError,
        registry.UnknownBackend,
        NotSupported,
        SuiteError,
        ResultsError,
        GateError,
    ) as exc:
        print(f"rnnbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rnnbench parity | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
