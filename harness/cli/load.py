"""`rnnbench load`: how many streams one backend's step serves on this machine under each p99
target (the load mode of a suite, run on its own with the policy given here)."""

from __future__ import annotations

from harness import registry
from harness.atomic import write_text_atomic
from harness.cli.errors import UsageError
from harness.output_paths import FILE
from harness.records import compact_json
from harness.terminal import say


def add_parser(sub) -> None:
    p = sub.add_parser(
        "load",
        help="Poisson arrivals from N streams, batched across streams: the most streams whose "
        "p99 per-step latency stays under each target",
    )
    p.add_argument("--backend", default="numpy", help="a backend with the load mode")
    p.add_argument("--cell", default="lstm", choices=("rnn", "lstm", "gru"))
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--target-ms",
        default="10,1",
        help="comma list of p99 targets in milliseconds (default 10,1)",
    )
    p.add_argument("--rate-hz", type=float, default=100.0, help="steps/s each stream sends")
    p.add_argument("--max-batch", type=int, default=64, help="requests one call serves at most")
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="the longest the batcher holds the oldest request for more (default 0: greedy)",
    )
    p.add_argument("--seed", type=int, default=0, help="of the arrival process")
    p.add_argument("--json", help="write the proof and the load test here (atomically)")
    p.set_defaults(run=run_load, outputs={"json": FILE})


def _policy(args):
    from pydantic import ValidationError

    from harness.bench.load_mode import default_policy
    from harness.records.errors import one_line

    try:
        targets = tuple(float(t) * 1e-3 for t in args.target_ms.split(",") if t.strip())
    except ValueError:
        raise UsageError(f"--target-ms {args.target_ms}: allowed a comma list of numbers") from None
    if not targets or min(targets) <= 0:
        raise UsageError(f"--target-ms {args.target_ms}: allowed numbers > 0")
    try:
        return default_policy(
            args.max_batch,
            targets,
            rate_hz=args.rate_hz,
            max_wait_s=args.max_wait_ms * 1e-3,
            seed=args.seed,
        )
    except ValidationError as exc:
        raise UsageError(one_line(exc, "the load policy")) from None


def run_load(args) -> int:
    from harness.bench import load_command
    from harness.bench.suites import SuiteError
    from harness.markdown import print_table
    from harness.stats import format_seconds
    from harness.tail import format_open_interval, percentile_ci

    if "load" not in registry.check_name(args.backend).modes:
        offered = [n for n, e in registry.BACKENDS.items() if "load" in e.modes]
        raise UsageError(f"backend {args.backend!r} has no load mode: allowed {', '.join(offered)}")
    policy = _policy(args)
    model = {"cell": args.cell, "hidden": args.hidden, "input_size": args.input_size}
    model.update(layers=args.layers, threads=args.threads)
    try:
        done = load_command.run(args.backend, policy, **model)
    except SuiteError as exc:
        raise UsageError(str(exc)) from None
    failed = [c.message for c in done.checks if not c.passed]
    if failed:
        say(f"FAIL {done.case_id}: its steps differ from the whole sequence: {failed[0]}", err=True)
        return 1
    print(f"{done.case_id}: {done.impl_class}; {len(done.checks)} checks passed")
    test = done.test
    assert test is not None  # a run whose steps passed their check has its load test
    rows = [
        [
            t.streams,
            f"{t.offered_hz:,.0f}",
            f"{t.achieved_hz:,.0f}",
            f"{t.mean_batch:.1f}",
            format_seconds(t.percentiles.p50),
            format_seconds(t.percentiles.p99),
            format_seconds(t.percentiles.p99_9),
            "gave up" if t.gave_up else "",
        ]
        for t in sorted(test.trials, key=lambda t: t.streams)
    ]
    header = ["streams", "offered/s", "served/s", "batch", "p50", "p99", "p99.9", ""]
    print_table(header, rows)
    for found in test.capacity:
        shown = f"{found.streams} streams"
        if found.trial is not None:
            trial = test.trials[found.trial]
            p99 = percentile_ci([v * 1e-6 for v in trial.latencies_us], 99)
            shown += f" ({trial.achieved_hz:,.0f} steps/s, p99 {format_open_interval(p99)})"
        print(f"p99 under {format_seconds(found.target_s)}: {shown}")
    if args.json:
        out = {
            "kind": "rnnbench-load",
            "case": done.case_id,
            "impl_class": done.impl_class,
            "threads": done.threads,
            "parity": [c.as_dict() for c in done.checks],
            "load": test.model_dump(mode="json"),
        }
        write_text_atomic(args.json, compact_json.dumps(out) + "\n")
    return 0
