"""`rnnbench bench`: run a suite with a progress bar and an ETA, then print a summary table."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

from harness import termination
from harness.bench import engine, model_suite
from harness.bench.plan import MIN_ROUNDS
from harness.bench.recorder import WriteFailed
from harness.bench.suites import load_suite, oversubscribed, safe_name, suite_names
from harness.cli.errors import UsageError, add_memory_budget
from harness.escape import for_terminal
from harness.json_values import JsonObject
from harness.machine.environment import usable_cores
from harness.markdown import print_table
from harness.output_paths import FILE
from harness.stats import format_seconds
from harness.terminal import say
from harness.termination import Terminated


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
        "--backends",
        help="comma list of backends (default model-file,numpy,torch-cpu,"
        "tf-function,ort-direct-cpu)",
    )
    add_memory_budget(own)
    p.add_argument(
        "--budget",
        metavar="SECONDS",
        help="seconds the run may measure: each case gets fewer rounds (down to "
        f"{MIN_ROUNDS}) before any is left untimed (default: the suite's budget_s; --model "
        f"{model_suite.BUDGET_S:.0f})",
    )
    p.add_argument(
        "--partial-ok",
        action="store_true",
        help="exit 0 even when the budget leaves cases untimed (they are recorded as not_timed)",
    )
    p.add_argument("--out", help="results file (default out/bench-SUITE-UTCSTAMP.json)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted --out file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument(
        "--machine",
        help="a label for this machine in reports (default: RNNBENCH_MACHINE, else hostname)",
    )
    p.add_argument(
        "--only",
        help="run only the cases with these fields (cell=gru,batch=1), or whose id contains "
        "this text",
    )
    p.add_argument(
        "--device", choices=("cpu", "gpu"), help="run only the cases of backends on this device"
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
    p.set_defaults(run=run_bench, outputs={"out": FILE})


def run_bench(args) -> int:
    _check_flags(args)
    budget = None if args.budget is None else _seconds(args.budget, "--budget")
    suite = _suite(args)
    if args.only:
        suite = suite.filtered(args.only)
    if args.device:
        suite = suite.on_device(args.device)
    if budget is not None:
        suite = dataclasses.replace(suite, budget_s=budget)
    distributed = args.scheduler or args.scheduler_file
    crowded = None if distributed else oversubscribed(suite, usable_cores())
    if crowded:  # a cluster's workers are other machines
        _notice(f"warning: {crowded}")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = Path(args.out or f"out/bench-{safe_name(suite.name)}-{stamp}.json")
    if args.model:
        say(f"suite {suite.name}: {len(suite.cases)} cases; results: {out}")
    total = len(suite.cases)
    if distributed and args.machine:
        raise UsageError(
            "--machine names this machine; with --scheduler each worker's machine is named "
            "by RNNBENCH_MACHINE where the worker starts (default: its hostname)"
        )
    previous = termination.install()  # raised where the run waits, never inside an import
    try:
        with _progress_bar(suite.name, total) as advance:
            if distributed:
                doc = _on_dask(suite, out, args, advance)
            else:
                doc = engine.run_suite(
                    suite, out, args.resume, args.overwrite, args.machine, advance, _notice
                )
    except (KeyboardInterrupt, Terminated) as exc:  # every finished group is in the file
        say(
            f"rnnbench: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}: "
            f"the groups measured so far are in {out}; --resume finishes the run",
            err=True,
        )
        return 143 if isinstance(exc, Terminated) else 130
    except WriteFailed as exc:
        say(f"rnnbench: error: {exc}", err=True)
        return 1
    finally:
        late = termination.restore(previous)
    if late:  # asked where raising was unsafe, and no wait came before the run ended
        say(f"rnnbench: terminated as the run ended: its results are in {out}", err=True)
        return 143
    print_summary(doc)
    print()
    for line in closing_lines(doc, suite, out, args.partial_ok):
        say(line)
    left = any(r.status == "not_timed" for r in doc.cases)
    failed = any(r.status in ("failed", "error", "timeout") for r in doc.cases)
    return 1 if failed or (left and not args.partial_ok) else 0


def closing_lines(doc, suite, out: Path, partial_ok: bool) -> list[str]:
    """What the run timed, how many rounds its cases got and how many were retimed; the last
    line says whether cases were left untimed (the budget spent)."""
    machines = ", ".join(sorted(doc.machines)) or "none"
    ok = [r for r in doc.cases if r.status == "ok"]
    budget = f"budget {suite.budget_s:g} s" if suite.budget_s else "no budget"
    waited = doc.waited_s or 0.0
    took = f"{(doc.wall_s or 0) - waited:.0f} s ({budget})"
    if waited >= 1:
        took += f" and {waited:.0f} s waiting for other benchmarks to leave the machine"
    lines = [
        f"{len(ok)} of {len(doc.cases)} cases timed in {took} on {machines}, "
        f"{rounds_said(ok, suite.timing.rounds)}; results: {out}"
    ]
    left = sum(1 for r in doc.cases if r.status == "not_timed")
    if left:
        verdict = "--partial-ok: exit 0" if partial_ok else "exit 1 (--partial-ok allows it)"
        lines.append(
            f"{left} of {len(doc.cases)} cases NOT timed: the budget was spent; --resume times "
            f"them, --budget gives more; {verdict}"
        )
    return lines


def rounds_said(ok, asked: int) -> str:
    """'7 rounds each', or '3 to 7 rounds (fewer planned to fit the budget)', and the rounds
    retimed (stopped or descheduled)."""
    counts = sorted({len(r.samples_s) for r in ok})
    if not counts:
        return "no rounds"
    if len(counts) == 1:
        text = f"{counts[0]} rounds each"
    else:
        text = f"{counts[0]} to {counts[-1]} rounds a case"
    if counts[0] < asked:
        text += f" (the suite asks {asked}: fewer planned to fit the budget)"
    retimed = sum(r.retimed for r in ok)
    if retimed:
        cases = sum(1 for r in ok if r.retimed)
        text += f", {retimed} rounds retimed in {cases} cases (stopped or descheduled)"
    return text


def _seconds(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{option} {text}: allowed a number of seconds > 0")
    return value


def _notice(text: str) -> None:
    say(f"rnnbench: {text}", err=True)


def _suite(args):
    """The suite to time: a user's model's, a suite file's, or, for --resume of an --out
    alone, the one its results file recorded."""
    if args.model:
        return _model_suite(args)
    if args.resume and not args.suite and args.out and Path(args.out).exists():
        from harness.bench.suites import Suite
        from harness.records.store import load_results

        return Suite.from_info(load_results(args.out).suite)
    return load_suite(args.suite or "quick")


def _model_suite(args):
    """The suite of a user's model file (harness/bench/model_suite.py)."""
    from harness.bench import model_suite as own
    from harness.cli.errors import names
    from harness.model.spec import load_spec
    from harness.model_file.model import open_model

    if args.suite:
        raise UsageError("--suite and --model both say what to time: give one")
    model = open_model(args.model, load_spec(args.spec) if args.spec else None)
    say(f"model: {model.describe()}")
    options: JsonObject = {}
    for option, field in (("batch", "batches"), ("steps", "steps"), ("threads", "threads")):
        if getattr(args, option):
            options[field] = own.parse_sizes(getattr(args, option), f"--{option}")
    if args.backends:
        allowed = [t for t, e in own.registry.BACKENDS.items() if "forward" in e.modes]
        options["backends"] = names(args.backends, allowed, "backend")
    out_dir = Path(args.out).parent if args.out else Path("out")
    suite, left_out = own.model_suite(model, out_dir, **options)
    for backend, reason in left_out:
        say(f"not timed: {backend}: {reason}")
    if not suite.cases:
        raise UsageError(f"no backend can time {args.model}: see the reasons above")
    return suite


def _check_flags(args) -> None:
    """Options of --model are refused without it, never ignored."""
    if not args.model:
        for option in ("spec", "batch", "steps", "threads", "backends"):
            if getattr(args, option):
                raise UsageError(f"--{option} goes with --model (a suite file sets its own)")


def _on_dask(suite, out, args, advance):
    from harness.cluster.runner import ClusterError, run_suite_on_dask

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
    """rich's bar with elapsed time and ETA on a terminal's stderr, started at the first case
    that ends (a run refused before it measures prints its one line alone); plain lines where
    stderr is not a terminal or rich is missing."""

    def __init__(self, name: str, total: int):
        self.name, self.total = name, total
        self.bar: Any = None  # rich's Progress, once a case ends on a terminal

    def __enter__(self):
        try:
            import rich  # noqa: F401
        except ImportError:
            return self._plain
        return self._rich if sys.stderr.isatty() else self._plain

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

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

    def _rich(self, record, done, todo):
        if self.bar is None:
            self._start()
        case = for_terminal(f"{record.id} {record.status}")
        self.bar.update(self.task, total=todo, completed=done, case=case)

    def _plain(self, record, done, todo):
        say(f"[{done}/{todo}] {record.id} {record.status}", err=True)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


SUMMARY_HEADER = ("case", "implementation", "median", "IQR", "rounds", "GFLOP/s", "GB/s", "status")


def summary_rows(doc) -> list[tuple[Any, ...]]:
    """One row per case: the median and IQR derived from its samples, the rounds it got (and
    those retimed), FLOP/s where it counts FLOPs and GB/s where it moves bytes (a bandwidth
    probe), each in its own column."""
    rows = []
    several = len(doc.machines) > 1
    for r in doc.cases:
        name = f"{r.id} @{r.machine or '-'}" if several else r.id
        if r.status != "ok":
            rows.append((name, r.impl_class, "", "", "", "", "", f"{r.status}: {r.reason[:90]}"))
            continue
        st = r.derived()
        gflops = f"{r.flops / st.median / 1e9:.1f}" if r.flops else ""
        gbytes = f"{r.bytes / st.median / 1e9:.1f}" if r.bytes else ""
        iqr = f"{100 * st.iqr / st.median:.1f}%"
        rounds = f"{len(r.samples_s)}" + (f" (+{r.retimed} retimed)" if r.retimed else "")
        median = format_seconds(st.median)
        rows.append((name, r.impl_class, median, iqr, rounds, gflops, gbytes, "ok"))
    return rows


def print_summary(doc) -> None:
    """A rich table on a terminal, plain columns elsewhere (or without rich)."""
    print_table(SUMMARY_HEADER, summary_rows(doc))
