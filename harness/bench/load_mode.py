"""A load test of one backend's step (the load mode, and `rnnbench load`): N streams of
Poisson arrivals served by the dynamic batcher (harness/load), the search for the most streams
under each p99 target, every trial recorded.

A server keeps each stream's state in host memory (canonical NumPy arrays, one row per
stream); a batch's states are gathered into the framework's form, stepped, and put back: that
traffic is part of each call's cost, as it is in a service. A trial's inputs are drawn once,
seeded; the outputs are materialised and dropped."""

from __future__ import annotations

import time

import numpy as np

from harness import registry
from harness.load import arrivals, search, server
from harness.load.batcher import BatchPolicy
from harness.records.streaming import LoadPolicy, LoadTest, LoadTrial, capacities, percentiles_of

TARGETS_S = (10e-3, 1e-3)  # the p99 bounds searched by default: 10 ms and 1 ms
RATE_HZ = 100.0  # steps a second per stream: a 10 ms hop, the common speech frame rate
INPUT_POOL = 256  # distinct inputs the requests cycle through


def default_policy(max_batch: int, targets_s=TARGETS_S, **given) -> LoadPolicy:
    """The policy a suite's load case runs (anything in `given` replaces a default): greedy
    batching (max_wait_s 0: whatever waits goes as soon as the server is free) up to
    max_batch. A trial's arrivals span 20 times the loosest target (an overloaded server's
    queue has that long to show) or as long as 1,024 requests take (MLPerf LoadGen's least
    for a latency figure), at most 2 s; it keeps the latencies of at most 2,000 requests
    (every k-th: the record's size is bounded, the percentiles come from those it keeps). A
    request that waits 20 times the loosest target means the server is overloaded."""
    fields = {
        "rate_hz": RATE_HZ,
        "max_batch": max_batch,
        "max_wait_s": 0.0,
        "targets_s": list(targets_s),
        "trial_s": 20 * max(targets_s),
        "max_trial_s": 2.0,
        "min_requests": 1024,
        "max_kept": 2000,
        "give_up_s": 20 * max(targets_s),
        "seed": 0,
    }
    return LoadPolicy(**{**fields, **given})


def window_s(policy: LoadPolicy, streams: int) -> float:
    """The span a trial's arrivals are drawn over: min_requests at the trial's rate, within
    trial_s and max_trial_s."""
    wanted = policy.min_requests / (streams * policy.rate_hz)
    return min(max(wanted, policy.trial_s), policy.max_trial_s)


class StateTable:
    """Every stream's state in host memory, canonical (h, c as [L, N, H]); a call serves one
    batch of requests: their streams' states gathered into the framework's form, one step on
    their inputs, the new states put back."""

    def __init__(self, runner, spec, streams: int, stream_of: np.ndarray, inputs: np.ndarray):
        self.runner, self.stream_of, self.inputs = runner, stream_of, inputs
        self.h, self.c = registry.streaming().zeros_state(spec, streams)

    def __call__(self, requests: np.ndarray) -> None:
        rows = self.stream_of[requests]
        c = None if self.c is None else self.c[:, rows]
        state = self.runner.to_state(self.h[:, rows], c)
        _, state = self.runner.step(self.inputs[requests % len(self.inputs)], state)
        h, c = self.runner.from_state(state)
        self.h[:, rows] = h
        if self.c is not None:
            self.c[:, rows] = c


def run_trial(runner, spec, policy: LoadPolicy, streams: int, inputs: np.ndarray) -> LoadTrial:
    """One trial at `streams` streams, in real time."""
    window = window_s(policy, streams)
    schedule = arrivals.poisson(streams, policy.rate_hz, window, policy.seed + streams)
    serve_batch = StateTable(runner, spec, streams, schedule.streams, inputs)
    batching = BatchPolicy(policy.max_batch, policy.max_wait_s)
    served = server.serve(schedule, serve_batch, batching, policy.give_up_s)
    every = -(-len(served.latencies_s) // policy.max_kept)
    latencies = [max(1, round(v * 1e6)) for v in served.latencies_s[::every]]
    return LoadTrial(
        streams=streams,
        requested_hz=schedule.requested_hz,
        window_s=window,
        requests=len(schedule.times),
        offered_hz=schedule.offered_hz,
        achieved_hz=served.achieved_hz,
        kept_every=every,
        latencies_us=latencies,
        served=served.served,
        calls=served.calls,
        mean_batch=served.served / served.calls,
        gave_up=served.gave_up,
        percentiles=percentiles_of(latencies, 1e-6),
    )


def warm(runner, spec, max_batch: int, inputs: np.ndarray) -> float:
    """Every batch size from 1 to max_batch called once (a compiled form specialises on the
    first sizes it sees), then the median seconds of a step at max_batch."""
    zeros_state = registry.streaming().zeros_state
    for batch in range(1, max_batch + 1):
        runner.step(inputs[:batch], runner.to_state(*zeros_state(spec, batch)))
    state, times = runner.to_state(*zeros_state(spec, max_batch)), []
    for _ in range(21):
        start = time.perf_counter()
        _, state = runner.step(inputs[:max_batch], state)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def load_test(runner, spec, policy: LoadPolicy) -> LoadTest:
    """The search over N for every target of the policy; it starts at half the streams the
    full batch's throughput would carry."""
    rng = np.random.default_rng(policy.seed)
    pool = max(INPUT_POOL, policy.max_batch)
    inputs = rng.standard_normal((pool, spec.input_size)).astype(spec.dtype)
    step_s = warm(runner, spec, policy.max_batch, inputs)
    start = int(0.5 * policy.max_batch / step_s / policy.rate_hz)
    trials = search.search(
        lambda streams: run_trial(runner, spec, policy, streams, inputs),
        policy.targets_s,
        max(1, start),
    )
    return LoadTest(policy=policy, trials=trials, capacity=capacities(trials, policy.targets_s))
