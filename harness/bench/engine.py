"""Runs a suite on this machine: each interleaved group in worker processes of its own
(harness.bench.group), the group under the machine lock; every record lands in the results file
(atomically, harness.bench.recorder) as soon as its group ends, so that an interrupted run can be
resumed (harness.bench.resume). harness.cluster.runner runs the same groups on Dask workers and
records them through the same Recorder.

The file has one writer (harness.bench.writer_lock). The suite's budget_s is said up front
against an estimate, planned (harness.bench.plan: fewer rounds a case before any case is left)
and enforced: once spent, no new group starts and the rest is recorded as not timed, for
--resume to finish. Time spent waiting for another benchmark to leave the machine (its lock) is
not counted."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

from harness.bench import plan, timing
from harness.bench.case import BenchCase
from harness.bench.group import measure_group, worker_context
from harness.bench.recorder import Recorder
from harness.bench.resume import check_resume_here, client_info, open_document, remaining_groups
from harness.bench.scratch import worker_logs
from harness.bench.suites import Suite
from harness.machine.environment import collect_environment
from harness.machine.lock import machine_lock
from harness.records import store as results


def selfcheck() -> dict[str, float]:
    """The timer's resolution and the timing loop's own cost per call, against a 1 ms call."""
    overhead = timing.loop_overhead()
    return {
        "timer_resolution_s": timing.timer_resolution(),
        "loop_overhead_s": overhead,
        "loop_overhead_fraction_of_1ms": overhead / 1e-3,
    }


def run_suite(
    suite: Suite,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    machine: str | None = None,
    progress: Callable | None = None,
    notice: Callable[[str], None] | None = None,
):
    """progress(record, done, total) after each case; notice(text) for what the user should
    know (the budget); returns the results document."""
    from harness.bench.writer_lock import results_writer
    from harness.machine.lock import check_lock

    out = Path(out)
    say = notice or (lambda _: None)
    results.check_writable(out)  # before anything is written, locked or measured
    check_lock()
    with results_writer(out):
        environment = collect_environment(machine)
        client = client_info(environment["git"], machine)
        doc = open_document(suite, out, resume, overwrite, client)
        named = bool(machine or os.environ.get("RNNBENCH_MACHINE"))
        check_resume_here(doc, out, environment, named)
        here = {"environment": environment, "selfcheck": selfcheck()}
        todo = remaining_groups(suite, doc)
        recorder = Recorder(doc, out, suite, sum(len(g) for g in todo), progress)
        recorder.save()  # a file that cannot be written is found before anything is measured
        budget = suite.budget_s
        say_budget(suite, todo, say)
        planned = plan.RoundPlan(todo, suite.timing, budget)
        worker_context([c for g in todo for c in g])  # what the worker server will import
        with worker_logs() as logs:
            for number, group in enumerate(todo):
                if budget and recorder.measured_s >= budget:
                    rest = [c for g in todo[number:] for c in g]
                    reason = (
                        f"budget_s {budget:g} s spent after {recorder.measured_s:.0f} s: not "
                        "started; --resume times it"
                    )
                    recorder.not_timed(rest, reason)
                    say(f"{reason} ({len(rest)} cases)")
                    break

                def rounds(pass_s: float, number: int = number) -> int:
                    return planned.rounds(number, recorder.measured_s, pass_s)

                with machine_lock() as waited_s:  # the wait is another benchmark's, not ours
                    recorder.waited_s += waited_s
                    records = measure_group(group, suite.timing, Path(logs), rounds)
                planned.learn(records)
                recorder.group(records, here, host=platform.node())
        recorder.save(finished=True)
    return doc


def say_budget(suite: Suite, todo: list[list[BenchCase]], say: Callable[[str], None]) -> None:
    """Up front, what the budget will cost the run by the settings' estimate: fewer rounds per
    case, or cases left untimed as well."""
    budget, settings = suite.budget_s, suite.timing
    full = plan.estimate_s(todo, settings)
    if not budget or full <= budget:
        return
    least = plan.least_rounds(settings)
    fewest = plan.estimate_s(todo, settings, least)
    start = f"suite {suite.name!r}: an estimated {full:.0f} s to measure exceeds its budget_s of"
    if fewest <= budget:
        say(
            f"{start} {budget:g} s: its cases get fewer than {settings.rounds} rounds each "
            f"(down to {least}), planned as the run goes"
        )
    else:
        say(
            f"{start} {budget:g} s, and {fewest:.0f} s at {least} rounds a case: what the "
            "budget leaves is recorded as not timed (--resume finishes it, with a budget of its "
            "own)"
        )
