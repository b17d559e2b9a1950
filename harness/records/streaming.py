"""The records of the streaming modes (harness/bench/stream_workload.py): a stream case's every
call timed on its own (StreamTiming), and a load test's trials and the streams it found a
machine can serve (LoadTest). Raw samples are stored (integer nanoseconds, compact); every
percentile kept beside them is a cache that must agree with them, and every rate is checked
against the counts it comes from, or the file is refused naming the figure."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.tail import NAMES, PERCENTILES, percentile_ci, percentiles

Nanoseconds = Annotated[int, Field(gt=0, le=10**15)]
Microseconds = Annotated[int, Field(gt=0, le=10**12)]
Rate = Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]
OFFERED_TOLERANCE = 0.05  # a trial's offered rate is the requested one within this share


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Percentiles(_Record):
    """Seconds; numpy.percentile (linear) of the raw samples beside it, cached."""

    p50: Positive
    p90: Positive
    p99: Positive
    p99_9: Positive = Field(description="p99.9")


def percentiles_of(counts: list[int], unit: float) -> Percentiles:
    """Percentiles in seconds of raw samples counted in `unit` seconds (1e-9: ns)."""
    return Percentiles(**percentiles([v * unit for v in counts]))


def _disagree(kept: Percentiles, counts: list[int], unit: float, what: str) -> None:
    fresh = percentiles([v * unit for v in counts])
    for q in PERCENTILES:
        name = NAMES[q]
        if not math.isclose(getattr(kept, name), fresh[name], rel_tol=1e-9, abs_tol=1e-15):
            raise ValueError(
                f"{what} percentiles.{name} = {getattr(kept, name)!r} disagrees with its raw "
                f"samples ({fresh[name]!r}): percentiles are derived from them, never trusted"
            )


class StreamTiming(_Record):
    """A stream case: one step per call, the state carried by the caller, every call timed."""

    steps_checked: int = Field(ge=1, description="T: the single steps proven equal to the sequence")
    calls_per_round: int = Field(ge=1, description="calls timed in each round")
    latencies_ns: list[Nanoseconds] = Field(
        min_length=1, description="raw: every call's latency, round after round"
    )
    percentiles: Percentiles = Field(description="a cache of latencies_ns's percentiles")
    noop_ns: list[Nanoseconds] = Field(
        min_length=1, description="raw: the framework's no-op call, timed in the same rounds"
    )
    noop_class: str = Field("", description="what the no-op call runs")

    @model_validator(mode="after")
    def _derived(self) -> StreamTiming:
        if len(self.latencies_ns) % self.calls_per_round:
            raise ValueError(
                f"stream: {len(self.latencies_ns)} latencies are not whole rounds of "
                f"{self.calls_per_round} calls"
            )
        _disagree(self.percentiles, self.latencies_ns, 1e-9, "stream:")
        return self

    def round_means(self) -> list[float]:
        """Seconds per call in each round: what samples_s holds for a stream case."""
        n = self.calls_per_round
        chunks = [self.latencies_ns[i : i + n] for i in range(0, len(self.latencies_ns), n)]
        return [math.fsum(c) * 1e-9 / n for c in chunks]


class LoadPolicy(_Record):
    """How a load test offers and serves its load (harness/load)."""

    rate_hz: Rate = Field(description="steps per second each stream sends (Poisson)")
    max_batch: int = Field(ge=1, description="the batcher takes at most this many requests")
    max_wait_s: NonNegative = Field(
        description="the batcher never holds the oldest request longer than this"
    )
    targets_s: list[Positive] = Field(min_length=1, description="p99 bounds searched")
    trial_s: Positive = Field(description="a trial's arrivals span at least this long")
    max_trial_s: Positive = Field(description="... and at most this long")
    min_requests: int = Field(ge=1, description="requests a trial aims for, within those spans")
    max_kept: int = Field(
        ge=1,
        description="latencies a trial keeps at most: every k-th request's, k the smallest "
        "that keeps to it",
    )
    give_up_s: Positive = Field(
        description="a trial stops once a request has waited this long (overloaded)"
    )
    seed: int = Field(
        ge=0, description="of the arrival process: the trial at N streams uses seed + N"
    )


class LoadTrial(_Record):
    """One trial: N streams offered for a window, served by the batcher and the step."""

    streams: int = Field(ge=1, description="N")
    requested_hz: Rate = Field(description="N * rate_hz")
    window_s: Positive = Field(description="the span the arrivals were drawn over")
    requests: int = Field(ge=1, description="arrivals the schedule drew over the window")
    offered_hz: Rate = Field(description="requests / window_s: the load offered")
    achieved_hz: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = Field(
        description="requests served per second of the trial"
    )
    kept_every: int = Field(ge=1, description="k: latencies_us holds every k-th request's")
    latencies_us: list[Microseconds] = Field(
        min_length=1,
        description="raw: every k-th request that arrived (arrival order, the first included), "
        "from its arrival to its step's result, microseconds (at least 1)",
    )
    served: int = Field(ge=0, description="requests served (all, unless the trial gave up)")
    calls: int = Field(ge=1, description="step calls (batches) made")
    mean_batch: NonNegative = Field(description="requests per call")
    gave_up: bool = Field(
        description="a request waited give_up_s: the trial stopped, the requests that had "
        "arrived unserved counted at their wait so far"
    )
    percentiles: Percentiles = Field(description="a cache of latencies_us's percentiles")

    @model_validator(mode="after")
    def _derived(self) -> LoadTrial:
        what = f"load trial at {self.streams} streams:"
        n = self.requests
        if not math.isclose(self.offered_hz, n / self.window_s, rel_tol=1e-9):
            raise ValueError(
                f"{what} offered_hz {self.offered_hz!r} is not its {n} requests over "
                f"{self.window_s!r} s"
            )
        if abs(self.offered_hz / self.requested_hz - 1) > OFFERED_TOLERANCE:
            raise ValueError(
                f"{what} offered {self.offered_hz:.1f}/s against {self.requested_hz:.1f}/s "
                f"requested: more than {OFFERED_TOLERANCE:.0%} apart, not the load asked for"
            )
        kept, every = len(self.latencies_us), self.kept_every
        arrived = n if not self.gave_up else self.served  # at least this many
        if kept > -(-n // every) or kept < -(-arrived // every):
            raise ValueError(f"{what} {kept} latencies kept, every {every}th of {n} requests")
        if self.served > n or (self.served < n) != self.gave_up:
            raise ValueError(f"{what} served {self.served} of {n} requests, gave_up {self.gave_up}")
        if not math.isclose(self.mean_batch, self.served / self.calls, rel_tol=1e-9):
            raise ValueError(f"{what} mean_batch is not served / calls")
        _disagree(self.percentiles, self.latencies_us, 1e-6, what)
        return self

    def passes(self, target_s: float) -> bool:
        """p99 under the target, and not overloaded."""
        return not self.gave_up and self.percentiles.p99 <= target_s

    def fails(self, target_s: float) -> bool:
        """Overloaded, or p99 over the target with its whole 95% interval: a trial of few
        requests whose p99 lies just over the target, within its noise, settles nothing."""
        if self.gave_up:
            return True
        _, low, _ = percentile_ci([v * 1e-6 for v in self.latencies_us], 99)
        return low > target_s


class Capacity(_Record):
    """The most streams served at p99 under one target: derived from the trials."""

    target_s: Positive
    streams: int = Field(ge=0, description="0: not even one stream")
    trial: int | None = Field(None, ge=0, description="the trial that shows it (index)")


class LoadTest(_Record):
    """A load case: the policy, every trial in the order run, and per target the capacity."""

    policy: LoadPolicy
    trials: list[LoadTrial] = Field(min_length=1)
    capacity: list[Capacity] = Field(description="one per target, from the trials")

    @model_validator(mode="after")
    def _capacity_derived(self) -> LoadTest:
        fresh = capacities(self.trials, self.policy.targets_s)
        if [c.model_dump() for c in fresh] != [c.model_dump() for c in self.capacity]:
            raise ValueError(
                "load: capacity disagrees with its trials (per target, the largest N that "
                "passes below the smallest N that fails): it is derived from them, never trusted"
            )
        return self


def capacity(trials: list[LoadTrial], target_s: float) -> Capacity:
    """The largest N whose trial passes (p99 under the target) below the smallest N whose
    trial fails (gave up, or p99 over the target interval and all): what the trials settle,
    however noisy a single one is."""
    failing = [t.streams for t in trials if t.fails(target_s)]
    ceiling = min(failing, default=math.inf)
    passing = [(t.streams, k) for k, t in enumerate(trials) if t.passes(target_s)]
    below = [p for p in passing if p[0] < ceiling]
    if not below:
        return Capacity(target_s=target_s, streams=0, trial=None)
    streams, index = max(below)
    return Capacity(target_s=target_s, streams=streams, trial=index)


def capacities(trials: list[LoadTrial], targets: list[float]) -> list[Capacity]:
    return [capacity(trials, t) for t in targets]
