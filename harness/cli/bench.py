"""`rnnbench bench`: run a suite with a progress bar and an ETA, then print a summary table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.bench import engine
from harness.bench.stats import format_seconds
from harness.bench.suites import load_suite, suite_names


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time a benchmark suite; write one results JSON")
    p.add_argument(
        "--suite", default="quick", help=f"{', '.join(suite_names())} or a path to a suite .toml"
    )
    p.add_argument("--out", help="results file (default out/bench-SUITE-UTCSTAMP.json)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted --out file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--machine", help="a label for this machine in reports (default: hostname)")
    p.add_argument("--only", help="run only cases whose id contains this text")
    p.set_defaults(run=run_bench)


def run_bench(args) -> int:
    suite = load_suite(args.suite)
    if args.only:
        suite = suite.filtered(args.only)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = Path(args.out or f"out/bench-{suite.name}-{stamp}.json")
    total = len(suite.cases)
    with _progress_bar(suite.name, total) as advance:
        doc = engine.run_suite(suite, out, args.resume, args.overwrite, args.machine, advance)
    print(format_summary(doc))
    print(
        f"\n{sum(1 for r in doc['cases'] if r['status'] == 'ok')} of {len(doc['cases'])} cases "
        f"timed in {doc['wall_s']:.0f} s (suite budget {suite.budget_s:.0f} s); "
        f"results: {out}"
    )
    return 1 if any(r["status"] in ("failed", "error", "timeout") for r in doc["cases"]) else 0


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
    for r in doc["cases"]:
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


def add_report_parsers(sub) -> None:
    p = sub.add_parser("report", help="Markdown + standalone HTML report from results files")
    p.add_argument(
        "results",
        nargs="+",
        help="results files of `rnnbench bench` (several "
        "machines merge), and optionally parity JSON files",
    )
    p.add_argument("--out", required=True, help="folder for report.md, report.html, img/")
    p.set_defaults(run=run_report)
    p = sub.add_parser("compare", help="NEW against BASE per case; exit 1 on a regression")
    p.add_argument("base")
    p.add_argument("new")
    p.add_argument(
        "--fail-on",
        default="median:10%",
        help="STAT:N%%, STAT one of min, median, mean, p90, p99 (default median:10%%)",
    )
    p.add_argument("--json", help="write the comparison here (atomically)")
    p.set_defaults(run=run_compare)


def run_report(args) -> int:
    from harness.analysis.report import write_report

    written = write_report(args.results, args.out)
    print(f"wrote {written['markdown']} and {written['html']}")
    return 0


def run_compare(args) -> int:
    import json

    from harness.analysis.compare import Gate, compare_docs, format_comparison
    from harness.atomic import write_text_atomic
    from harness.bench.results import load_results

    gate = Gate.parse(args.fail_on)
    result = compare_docs(load_results(args.base), load_results(args.new), gate)
    print(format_comparison(result))
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=1) + "\n")
    if not result["rows"]:
        print("rnnbench: error: BASE and NEW share no timed case", file=sys.stderr)
        return 2
    return 1 if result["regressions"] else 0
