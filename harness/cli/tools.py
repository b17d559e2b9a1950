"""`rnnbench error-growth`, `selfcheck` and `export`."""

from __future__ import annotations

from harness import registry
from harness.atomic import write_text_atomic
from harness.cli.errors import UsageError, add_memory_budget, names, progress
from harness.model.spec import Cell, load_spec
from harness.output_paths import FILE, folder
from harness.terminal import say


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
    p.set_defaults(run=run_growth, outputs={"json": FILE})


def run_growth(args) -> int:
    import json

    from harness.markdown import print_table
    from harness.parity.error_growth import error_growth, growth_table

    backends = names(args.backends, registry.BACKENDS, "backend")
    rows = []
    for cell in names(args.cells, [c.value for c in Cell], "cell"):
        cell_rows = error_growth(cell, backends, gain=args.gain)
        print(f"{cell}: max |y float32 - y float64| (gain {args.gain})")
        header, table, skipped = growth_table(cell_rows)
        print_table(header, table)
        print("\n".join([*skipped, ""]))
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
    p.set_defaults(run=run_selfcheck, outputs={"json": FILE})


def run_selfcheck(args) -> int:
    import json

    from harness.bench import selfcheck

    reason = registry.unavailable_reason(registry.HEADLINE[0])
    if reason:
        raise UsageError(f"selfcheck needs {registry.HEADLINE[0]}: {reason}")
    if args.runs < 2:
        raise UsageError(f"--runs {args.runs}: allowed 2 or more (precision needs a spread)")
    result = selfcheck.run_all(args.runs, progress=progress)
    progress("")
    print(selfcheck.format_report(result))
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=1) + "\n")
    ok = result["loop_overhead_ok"] and result["precision"]["within_tolerance"]
    return 0 if ok else 1


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="export to ONNX by every path and audit the graphs")
    p.add_argument(
        "--model",
        "--onnx",
        dest="model",
        metavar="FILE",
        help="your model file (ONNX, Keras, TorchScript, ExportedProgram, or a state_dict with "
        "--spec): exported from its spec and weights by every path",
    )
    add_memory_budget(p)
    p.add_argument("--spec", help="a model spec (.toml/.json); else --cell and sizes")
    p.add_argument("--cell", default="lstm", choices=[c.value for c in Cell])
    p.add_argument("--input-size", type=int, default=8)
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--weights", help="canonical weights (.npz); else seeded init")
    p.add_argument("--exporters", default="direct,torchscript,dynamo,tf2onnx")
    p.add_argument("--out", required=True, help="folder for the .onnx files and audit.json")
    p.set_defaults(run=run_export, outputs={"out": folder("audit.json")})


def run_export(args) -> int:
    import json
    from pathlib import Path

    from harness.markdown import print_table
    from harness.model.errors import describe_error
    from harness.model.spec import ModelSpec
    from harness.model.weights import init_weights, load_weights
    from harness.onnx.audit import audit
    from harness.onnx.audit_table import COLUMNS, audit_cells

    exporters = names(args.exporters, registry.EXPORTERS, "exporter")
    if args.model:
        spec, weights = _model_weights(args)
    else:
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
            exported = registry.exporter().export(exporter, spec, weights, path)
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
    print_table(COLUMNS, audit_cells(rows))
    write_text_atomic(
        Path(args.out) / "audit.json",
        json.dumps({"spec": spec.to_dict(), "audit": rows, "failed": failed}, indent=1) + "\n",
    )
    for line in failed:
        say(f"FAIL export {line}", err=True)
    return 1 if failed else 0


def _model_weights(args):
    """(spec, weights) of --model; the sizes and --weights, which the file says, refused."""
    from harness.model_file.model import open_model

    if args.weights:
        raise UsageError("--weights is for --spec without --model; the model file carries its own")
    defaults = {"cell": "lstm", "input_size": 8, "hidden_size": 32, "layers": 1}
    given = [k for k, v in defaults.items() if getattr(args, k) != v] + (
        ["bidirectional"] if args.bidirectional else []
    )
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag} does not apply to --model: the file says its model")
    model = open_model(args.model, load_spec(args.spec) if args.spec else None)
    if model.direction == "reverse":
        raise UsageError(f"{args.model} is reverse-only: no exporter writes that from a spec")
    return model.spec, model.weights


def _config(spec) -> str:
    return f"L{spec.num_layers} {'bi' if spec.bidirectional else 'uni'}"


def _schema_parser(sub) -> None:
    from harness.records.publish import SCHEMAS

    p = sub.add_parser(
        "schema", help="write the JSON Schema of every file rnnbench reads and writes"
    )
    p.add_argument("--out", default="results/schema", help="folder (default results/schema)")
    p.add_argument(
        "--readme", help="also rewrite this file's field tables (between its schema markers)"
    )
    p.set_defaults(
        run=run_schema,
        outputs={"out": folder(*(f"{name}.schema.json" for name in SCHEMAS)), "readme": FILE},
    )


def run_schema(args) -> int:
    from harness.records.publish import rewrite_readme, write_schemas

    for path in write_schemas(args.out):
        say(f"wrote {path}")
    if args.readme:
        try:
            changed = rewrite_readme(args.readme)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--readme {args.readme}: {exc}") from None
        say(f"{'rewrote' if changed else 'kept'} the schema tables of {args.readme}")
    return 0


def add_parsers(sub) -> None:
    _growth_parser(sub)
    _selfcheck_parser(sub)
    _export_parser(sub)
    _schema_parser(sub)
