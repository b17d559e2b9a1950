"""How the stepping modes are timed, once their step is built (harness/bench/workload.py
builds it from the case and the backend's prepared model).

stream: a service's call. T single steps from the zero state are checked against the whole
sequence first (outputs and final states, harness.parity's tolerances); then each timed call
is one step on the next input (the T inputs in turn), the state carried by the caller from the
call before. Every call is timed on its own (integer nanoseconds); a round's sample is the mean
of its calls, so that the interleaved rounds, the statistics and the ratios work as for any
case, and the rounds add up to at least MIN_CALLS calls (MLPerf LoadGen's minimum; the suite's
min_round_s times its rounds is the minimum duration). Each round also times the framework's
no-op call (backends/streaming/base.py), to tell the step's own cost from the framework's.

load: the rounds time one step at the case's batch (the batcher's max_batch: the most
requests one call serves); then, after them, the load test (harness/bench/load_mode.py)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from harness import registry
from harness.bench.load_mode import default_policy, load_test
from harness.parity.checks import compare_all
from harness.records.streaming import StreamTiming, percentiles_of
from harness.tail import MIN_CALLS

NOOP_CALLS = 200  # no-op calls timed in each round


def _proof(runner, spec, x, ref, dtype) -> list:
    streamed = registry.streaming().streamed(runner, spec, x)
    return compare_all(ref.as_dict(), streamed.as_dict(), dtype)


class Carried:
    """The state a caller keeps between calls, and the inputs it steps through in turn."""

    def __init__(self, runner, x: np.ndarray):
        self.runner = runner
        self.inputs = [np.ascontiguousarray(x_t) for x_t in x]
        self.state = runner.zero_state(x.shape[1])
        self.t = 0

    def call(self):
        outputs, self.state = self.runner.step(self.inputs[self.t % len(self.inputs)], self.state)
        self.t += 1
        return outputs

    def timed(self, calls: int) -> list[int]:
        """`calls` steps, each timed on its own (ns), the state carried throughout."""
        clock, step, inputs = time.perf_counter_ns, self.runner.step, self.inputs
        state, t, got = self.state, self.t, []
        for k in range(calls):
            x_t = inputs[(t + k) % len(inputs)]
            start = clock()
            _, state = step(x_t, state)
            got.append(clock() - start)
        self.state, self.t = state, t + calls
        return [max(1, v) for v in got]


class StreamTimer:
    """Every call of every round, each timed on its own, and the framework's no-op call
    timed in the same rounds."""

    def __init__(self, carried: Carried):
        self.carried = carried
        self.latencies: list[int] = []
        self.noops: list[int] = []
        self.calls_per_round = 0

    def round(self, calls: int) -> float:
        """One round: seconds per call, as StreamTiming.round_means computes it."""
        got = self.carried.timed(calls)
        self.latencies.extend(got)
        self.noops.extend(self._noops(NOOP_CALLS))
        self.calls_per_round = calls
        return math.fsum(got) * 1e-9 / calls

    def _noops(self, calls: int) -> list[int]:
        clock, noop, got = time.perf_counter_ns, self.carried.runner.noop, []
        x_t = self.carried.inputs[0]
        for _ in range(calls):
            start = clock()
            noop(x_t)
            got.append(clock() - start)
        return [max(1, v) for v in got]

    def record(self, steps_checked: int) -> StreamTiming:
        return StreamTiming(
            steps_checked=steps_checked,
            calls_per_round=self.calls_per_round,
            latencies_ns=self.latencies,
            percentiles=percentiles_of(self.latencies, 1e-9),
            noop_ns=self.noops,
            noop_class=self.carried.runner.noop_class,
        )


def stream(case, runner, x, ref) -> dict[str, Any]:
    """Workload fields of a stream case (x [T, B, I] in the case's dtype; ref the reference's
    whole-sequence outputs)."""
    checks = _proof(runner, case.spec, x, ref, case.dtype)
    carried = Carried(runner, x)
    timer = StreamTimer(carried)
    return {
        "run": carried.call,
        "impl_class": runner.impl_class,
        "checks": checks,
        "timed_round": timer.round,
        "min_calls": MIN_CALLS,
        "finish": lambda: {"stream": timer.record(len(x)).model_dump()},
    }


def load(case, runner, x, ref, policy=None) -> dict[str, Any]:
    """Workload fields of a load case: its rounds time one step at the case's batch; after
    them, finish() runs the load test, by `policy` (a LoadPolicy) or the default one with
    max_batch the case's batch (harness/bench/load_mode.py)."""
    checks = _proof(runner, case.spec, x, ref, case.dtype)
    carried = Carried(runner, x)

    def finish() -> dict[str, Any]:
        chosen = policy or default_policy(case.batch)
        return {"load": load_test(runner, case.spec, chosen).model_dump()}

    return {
        "run": carried.call,
        "impl_class": runner.impl_class,
        "checks": checks,
        "finish": finish,
    }
