"""One benchmark case in its own process (pyperf's --worker, asv's new process per benchmark):
a framework's thread pools, allocator and JIT caches never meet another's.

The parent drives it over a pipe, and each answer is a small JSON-able dict or a float:
    start      -> {"status": "built", ...} once built and parity-checked
                  (or "skipped", "failed", "error": the worker then exits)
    "calibrate" -> {"status": "ready", "loops": n} after warm-up and calibration
    "round"    -> {"sample_s": seconds per call over one round of n calls, "retimed": the
                  rounds timed again before it (stopped or descheduled: harness.bench.timing
                  Interference)}; sample_s None when no try of the round ran undisturbed
    "finish"   -> {"status": "finished", ...} after the rounds: what else the mode records
                  (a stream case's every call, a load case's load test)
    "stop"     -> exits
Its stdout and stderr go to a log file, so that framework chatter stays out of the terminal;
the parent quotes the log's tail when a worker dies without a word."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback

from harness.json_values import JsonObject, nulls_for_nonfinite


def serve(conn, case_dict: JsonObject, timing: dict[str, float], log_path: str) -> None:
    _redirect_output(log_path)
    try:
        _serve(conn, case_dict, timing)
    except (
        Exception
    ) as exc:  # anything unforeseen: one line to the parent, the traceback to the log
        from harness.model.errors import describe_error

        traceback.print_exc()
        conn.send({"status": "error", "reason": describe_error(exc)})
    finally:
        conn.close()


def _serve(conn, case_dict, timing) -> None:
    from harness.bench import timing as timing_core
    from harness.bench import workload
    from harness.bench.case import BenchCase
    from harness.bench.plan import MIN_ROUNDS
    from harness.model.protocol import NotSupported

    case = BenchCase.from_dict(case_dict)
    started = time.perf_counter()
    try:  # a missing package or device is a skip; any other failure is an error (see serve)
        backend, threads = workload.open_backend(case)
        job = workload.build(case, backend)
    except NotSupported as exc:
        conn.send({"status": "skipped", "reason": str(exc)})
        return
    # a figure a failed check could not measure (NaN, an infinite share of its tolerance) is
    # null; `passed` and the message say why
    checks = [nulls_for_nonfinite(c.as_dict()) for c in job.checks]
    failed = [c["message"] for c in checks if not c["passed"]]
    built = {
        "status": "failed" if failed else "built",
        "reason": "; ".join(failed),
        "impl_class": job.impl_class,
        "notes": job.notes,
        "weights_digest": job.weights_digest,
        "parity": checks,
        "build_s": time.perf_counter() - started,
        **job.record,
    }
    with _blas_limited(case.threads) as pools:
        threads["pools"] = pools
        built["threads"] = threads
        conn.send(built)
        if failed:  # not the same model: its timing would mean nothing
            return
        if conn.recv() != "calibrate":
            return
        extra = job.before_timing() if job.before_timing else {}  # alone on the machine now
        start = time.perf_counter()  # the build ran the first call: the check's
        loops, calibration = timing_core.settle(job.run, timing["warmup_s"], timing["min_round_s"])
        # the fewest rounds a budget may plan for the case must still add up to min_calls
        fewest = min(timing["rounds"], MIN_ROUNDS)
        loops = max(loops, -(-job.min_calls // fewest))
        guard = timing_core.Interference(calibration)
        conn.send(
            {"status": "ready", "loops": loops, "calibrate_s": time.perf_counter() - start, **extra}
        )
        while (request := conn.recv()) in ("round", "finish"):
            if request == "finish":
                conn.send({"status": "finished", **(job.finish() if job.finish else {})})
            elif job.timed_round:  # a stream case times every call: a stall is its tail
                conn.send({"sample_s": job.timed_round(loops), "retimed": 0})
            else:
                sample, retimed = timing_core.clean_round(job.run, loops, guard)
                conn.send({"sample_s": sample, "retimed": retimed})


@contextlib.contextmanager
def _blas_limited(n: int):
    """BLAS and OpenMP pools limited to n threads; yields [(api, threads)] as they now are."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # recorded as unknown rather than guessed
        yield [["threadpoolctl not installed: BLAS threads not fixed", None]]
        return
    with threadpool_limits(limits=n):
        yield [[i["internal_api"], i["num_threads"]] for i in threadpool_info()]


def _redirect_output(log_path: str) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
