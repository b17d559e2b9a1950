"""`rnnbench bench`: run a suite with a progress bar and an ETA, then print a summary table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.bench import engine
from harness.bench.stats import format_seconds
from harness.bench.suites import load_suite, suite_names
from harness.cli.errors import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time a benchmark suite; write one results JSON")
    p.add_argument(
        "--suite", help=f"{', '.join(suite_names())} or a path to a suite .toml (default quick)"
    )
    own = p.add_argument_group("your model (instead of --suite)")
    own.add_argument(
        "--model",
        "--onnx",
        dest="model",
        metavar="FILE",
        help="time your model file as it is and every backend rebuilt from its weights "
        "(ONNX, Keras .keras/.h5, TorchScript, ExportedProgram .pt2, or a state_dict with --spec)",
    )
    own.add_argument("--spec", help="the model spec of a --model state_dict")
    own.add_argument("--batch", help="comma list of batch sizes (default 1,8)")
    own.add_argument("--steps", help="comma list of sequence lengths (default 16,64,256)")
    own.add_argument("--threads", help="comma list of thread counts (default 1)")
    own.add_argument(
        "--targets",
        help="comma list of targets (default model-file,numpy,torch-cpu,"
        "tf-function,ort-direct-cpu)",
    )
    p.add_argument("--out", help="results file (default out/bench-SUITE-UTCSTAMP.json)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted --out file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument(
        "--machine",
        help="a label for this machine in reports (default: RNNBENCH_MACHINE, else hostname)",
    )
    p.add_argument("--only", help="run only cases whose id contains this text")
    p.add_argument(
        "--device", choices=("cpu", "gpu"), help="run only the cases of targets on this device"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="time each group on a worker of this Dask scheduler (`dask worker ADDRESS "
        "--nthreads 1` on each machine; RNNBENCH_MACHINE names a worker's machine)",
    )
    where.add_argument(
        "--scheduler-file", help="the same, the scheduler named by a Dask scheduler file"
    )
    p.add_argument(
        "--wait-workers",
        type=float,
        default=60.0,
        metavar="S",
        help="with a scheduler: seconds to wait for a worker able to take what is left "
        "(default 60)",
    )
    p.set_defaults(run=run_bench)


def run_bench(args) -> int:
    _check_flags(args)
    suite = _model_suite(args) if args.model else load_suite(args.suite or "quick")
    if args.only:
        suite = suite.filtered(args.only)
    if args.device:
        suite = suite.on_device(args.device)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = Path(args.out or f"out/bench-{suite.name}-{stamp}.json")
    if args.model:
        print(f"suite {suite.name}: {len(suite.cases)} cases; results: {out}")
    total = len(suite.cases)
    distributed = args.scheduler or args.scheduler_file
    if distributed and args.machine:
        raise UsageError(
            "--machine names this machine; with --scheduler each worker's machine is named "
            "by RNNBENCH_MACHINE where the worker starts (default: its hostname)"
        )
    try:
        with _progress_bar(suite.name, total) as advance:
            if distributed:
                doc = _on_dask(suite, out, args, advance)
            else:
                doc = engine.run_suite(
                    suite, out, args.resume, args.overwrite, args.machine, advance
                )
    except KeyboardInterrupt:  # every finished group is already in the file
        print(
            f"rnnbench: interrupted: the groups measured so far are in {out}; "
            "--resume finishes the run",
            file=sys.stderr,
        )
        return 130
    print(format_summary(doc))
    machines = ", ".join(sorted(doc["machines"])) or "none"
    print(
        f"\n{sum(1 for r in doc['cases'] if r['status'] == 'ok')} of {len(doc['cases'])} cases "
        f"timed in {doc['wall_s']:.0f} s (suite budget {suite.budget_s:.0f} s) on {machines}; "
        f"results: {out}"
    )
    return 1 if any(r["status"] in ("failed", "error", "timeout") for r in doc["cases"]) else 0


def _model_suite(args):
    """The suite of a user's model file (harness/bench/model_suite.py)."""
    from harness.bench import model_suite as own
    from harness.cli.errors import names
    from harness.model.spec import load_spec
    from harness.model_file.model import open_model

    if args.suite:
        raise UsageError("--suite and --model both say what to time: give one")
    model = open_model(args.model, load_spec(args.spec) if args.spec else None)
    print(f"model: {model.describe()}")
    options = {}
    for option, field in (("batch", "batches"), ("steps", "steps"), ("threads", "threads")):
        if getattr(args, option):
            options[field] = own.parse_sizes(getattr(args, option), f"--{option}")
    if args.targets:
        allowed = [t for t, e in own.registry.BACKENDS.items() if "forward" in e.modes]
        options["targets"] = names(args.targets, allowed, "target")
    out_dir = Path(args.out).parent if args.out else Path("out")
    suite, left_out = own.model_suite(model, out_dir, **options)
    for target, reason in left_out:
        print(f"not timed: {target}: {reason}")
    if not suite.cases:
        raise UsageError(f"no target can time {args.model}: see the reasons above")
    return suite


def _check_flags(args) -> None:
    """Options of --model are refused without it, never ignored."""
    if not args.model:
        for option in ("spec", "batch", "steps", "threads", "targets"):
            if getattr(args, option):
                raise UsageError(f"--{option} goes with --model (a suite file sets its own)")


def _on_dask(suite, out, args, advance):
    from harness.bench.cluster import ClusterError, run_suite_on_dask

    try:
        return run_suite_on_dask(
            suite,
            out,
            args.scheduler,
            args.scheduler_file,
            args.resume,
            args.overwrite,
            advance,
            args.wait_workers,
        )
    except ClusterError as exc:
        raise UsageError(str(exc)) from None


class _progress_bar:
    """rich's bar with elapsed time and ETA on stderr; plain lines where rich is missing."""

    def __init__(self, name: str, total: int):
        self.name, self.total, self.bar = name, total, None

    def __enter__(self):
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            return self._plain
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[case]}"),
            console=Console(stderr=True),
        )
        self.bar.__enter__()
        self.task = self.bar.add_task(self.name, total=self.total, case="")
        return self._rich

    def _rich(self, record, done, todo):
        self.bar.update(
            self.task, total=todo, completed=done, case=f"{record['id']} {record['status']}"
        )

    def _plain(self, record, done, todo):
        print(f"[{done}/{todo}] {record['id']} {record['status']}", file=sys.stderr)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def format_summary(doc) -> str:
    rows = [("case", "implementation", "median", "IQR", "GFLOP/s", "status")]
    several = len(doc["machines"]) > 1
    for r in doc["cases"]:
        if several:
            r = {**r, "id": f"{r['id']} @{r.get('machine') or '-'}"}
        if r["status"] == "ok":
            st = r["stats"]
            gflops = f"{r['flops'] / st['median'] / 1e9:.1f}" if r["flops"] else ""
            if r["bytes"]:
                gflops = f"{r['bytes'] / st['median'] / 1e9:.1f} GB/s"
            rows.append(
                (
                    r["id"],
                    r["impl_class"],
                    format_seconds(st["median"]),
                    f"{100 * st['iqr'] / st['median']:.1f}%",
                    gflops,
                    "ok",
                )
            )
        else:
            rows.append(
                (r["id"], r["impl_class"], "", "", "", f"{r['status']}: {r['reason'][:90]}")
            )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:5], widths, strict=True)), row[5]])
        for row in rows
    ]
    return "\n".join(lines)
