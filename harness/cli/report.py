"""`rnnbench report` (Markdown + standalone HTML from results files) and `rnnbench compare`."""

from __future__ import annotations

import sys

from harness.analysis import REPORT_FILES, REPORT_FOLDERS
from harness.output_paths import FILE, replaced_folder
from harness.terminal import say, say_lines


def add_parsers(sub) -> None:
    p = sub.add_parser("report", help="Markdown + standalone HTML report from results files")
    p.add_argument(
        "results",
        nargs="+",
        help="results files of `rnnbench bench` (several machines merge), and optionally "
        "parity JSON files, parallel-in-time sweeps and training records; a folder stands for "
        "the .json files in it",
    )
    p.add_argument(
        "--out",
        required=True,
        help="folder for report.md, report.html, img/, findings.md: replaced whole once the "
        "report is written (it may hold nothing else)",
    )
    p.add_argument(
        "--readme",
        help="also rewrite this file's findings block (between <!-- findings:begin --> and "
        "<!-- findings:end -->) from the same findings",
    )
    p.set_defaults(
        run=run_report,
        outputs={"out": replaced_folder(REPORT_FILES, REPORT_FOLDERS), "readme": FILE},
    )
    p = sub.add_parser("compare", help="NEW against BASE per case; exit 1 on a regression")
    p.add_argument("base")
    p.add_argument("new")
    p.add_argument(
        "--fail-on",
        default="median:10%",
        help="STAT:N%%, STAT one of min, median, mean, p90, p99 (default median:10%%)",
    )
    p.add_argument("--json", help="write the comparison here (atomically)")
    p.set_defaults(run=run_compare, outputs={"json": FILE})


REPORT_PACKAGES = {"matplotlib": "matplotlib", "scipy": "scipy", "markdown_it": "markdown-it-py"}


def run_report(args) -> int:
    from harness.cli.errors import require

    require(REPORT_PACKAGES, "report", "rnnbench report")
    from harness.analysis.readme import ReadmeError
    from harness.analysis.report import write_report

    try:
        written = write_report(args.results, args.out, args.readme)
    except ReadmeError as exc:
        say(f"rnnbench: error: {exc}", err=True)
        return 2
    say(f"wrote {written['markdown']}, {written['html']} and {written['findings']}")
    if "readme" in written:
        say(f"rewrote the findings block of {written['readme']}")
    return 0


def run_compare(args) -> int:
    from harness.cli.errors import require

    require({"scipy": "scipy"}, "report", "rnnbench compare")

    from harness.analysis.compare import Gate, compare_docs, comparison_blocks, format_comparison
    from harness.atomic import write_text_atomic
    from harness.records.store import load_results

    gate = Gate.parse(args.fail_on)
    result = compare_docs(load_results(args.base), load_results(args.new), gate)
    if args.json:
        write_text_atomic(args.json, result.as_json())
    text = format_comparison(result)
    if not result.rows:  # what could not be matched, then the error: no table, no tally
        if text:
            say_lines(text, err=True)
        print(
            "rnnbench: error: BASE and NEW share no case timed on a like machine: nothing to "
            "compare",
            file=sys.stderr,
        )
        return 2
    from harness.markdown import print_table

    for block in comparison_blocks(result):  # the table as rich on a terminal
        if isinstance(block, str):
            say_lines(block)
        else:
            print_table(*block)
    return 1 if result.regressions else 0
