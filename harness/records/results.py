"""A benchmark results file (`rnnbench bench`), schema version 6, as typed records. Versions 1
to 5 are read (upgraded on read); version 6 is written. Statistics are derived from the raw
samples, never trusted: a stored `stats` block is a cache that must agree with samples_s to
rounding, or the file is refused naming the case."""

from __future__ import annotations

import math
from typing import Final, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from harness import __version__
from harness.json_values import JsonObject
from harness.records.base import (
    Finite,
    NonNegative,
    Record,
    Seconds,
    StrictCount,
    StrictNonNegative,
    StrictSeconds,
)
from harness.records.case_fields import CaseFields
from harness.records.prediction import PredictedSolve
from harness.records.streaming import LoadTest, StreamTiming

SCHEMA_VERSION: Final = 6
WRITER: Final = f"rnnbench {__version__}"
KIND: Final = "rnnbench-bench"
STATUSES = ("ok", "failed", "skipped", "error", "timeout", "not_timed")
DONE = ("ok", "failed", "skipped")  # what a resumed run does not measure again


class Timing(Record):
    """How each case of a suite is timed."""

    # Upper limits keep one group within reach of any budget: an hour of warm-up, pause or
    # round, 1000 rounds, a day's timeout.
    warmup_s: StrictNonNegative = Field(
        0.1, le=3600, description="seconds of calls before calibration"
    )
    min_round_s: StrictSeconds = Field(
        0.05, le=3600, description="a round lasts at least this long"
    )
    rounds: StrictCount = Field(
        9, le=1000, description="rounds per case, interleaved with its group's"
    )
    pause_s: StrictNonNegative = Field(0.1, le=3600, description="pause before each round")
    timeout_s: StrictSeconds = Field(
        300.0, le=86400, description="limit on a build, calibration or round"
    )


class Identity(Record):
    """What a suite is, normalised: its timing and its cases (what --resume checks)."""

    sha256: str = Field(description="sha256 of the canonical JSON of timing and cases")
    case_ids: list[str] = Field(description="every case id, in the suite's order")


class SuiteInfo(Record):
    name: str = Field(description="the suite's name (a suite file's, or model-NAME)")
    path: str = Field("", description="the suite file, or the model file, it came from")
    description: str = ""
    budget_s: NonNegative | None = Field(None, description="seconds the suite may measure")
    timing: Timing
    identity: Identity | None = Field(None, description="absent in files before version 3")
    cases: list[JsonObject] | None = Field(
        None, description="every case's fields (BenchCase.as_dict): --resume by the file alone"
    )


class Check(Record):
    """One parity comparison made before timing (harness.parity.checks.Comparison)."""

    quantity: str = Field(description="y, h_n, c_n, head, a gradient, or a file's output")
    passed: bool
    max_abs: Finite | None = Field(None, description="max |got - reference|; null if unmeasured")
    max_rel: Finite | None = None
    atol: Finite = Field(0.0, description="already scaled by max(1, max |reference|)")
    rtol: Finite = 0.0
    message: str = Field("", description="why it failed: the tensor, the index, both values")
    share_of_tolerance: Finite | None = Field(
        None, description="max |error| / (atol + rtol |reference|); null when not measured"
    )
    budget_factor: Finite | None = Field(
        None, description="atol's factor at the last step, from the model's error growth"
    )
    error_per_step: list[Finite] | None = Field(
        None, description="the largest |error| at each step, for an output with a time axis"
    )
    first_step_over: int | None = Field(
        None, ge=0, description="the first step (0-based) where the error left its budget"
    )


class Solve(Record):
    """A parallel-in-time case's solve (newton / quasi-newton)."""

    method: str = Field(description="newton | quasi-newton")
    tol: Finite = Field(description="stop when no state moves more than this")
    max_iter: int = Field(ge=1)
    lle: Finite | None = Field(description="largest Lyapunov exponent of layer 0, per step")
    converged: bool
    iterations: int | None = Field(None, ge=0, description="updates from an all-zero guess")
    reason: str | None = Field(None, description="why it did not converge (the case failed)")
    prediction: PredictedSolve | None = Field(
        None, description="the solve as predicted before it ran (harness/predict); null: none"
    )


class Stats(Record):
    """Derived from samples_s (harness.stats.summarize); stored as a cache only."""

    n: int = Field(ge=1)
    min: Finite
    median: Finite
    mean: Finite
    stdev: Finite
    iqr: Finite
    p90: Finite
    p99: Finite
    max: Finite


class CaseRecord(Record):
    """One case's outcome. Fields set one by one as its worker answers are validated as they
    are set (an unknown field or an ill-typed value fails at once)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(min_length=1, description="backend/mode/cell/dtype/B/T/I/H/L[...]/threads")
    case: CaseFields
    status: Literal["ok", "failed", "skipped", "error", "timeout", "not_timed"] = Field(
        description="ok; failed (parity failed: never timed); skipped (why); error; timeout; "
        "not_timed (the budget was spent: --resume times it)"
    )
    reason: str = Field("", description="why it is not ok, one line")
    impl_class: str = Field("", description="what ran, as detected where the backend can tell")
    notes: str = ""
    weights_digest: str = Field("", description="sha256 of the canonical weights timed")
    parity: list[Check] = Field([], description="checks against the reference before timing")
    threads: JsonObject = Field(
        default_factory=dict, description="requested, and each library's pools as set"
    )
    loops: int | None = Field(None, ge=1, le=10**12, description="calls per round")
    samples_s: list[Seconds] = Field(
        [], description="raw: seconds per call, one per round (as many rounds as the case got)"
    )
    retimed: int = Field(
        0,
        ge=0,
        description="rounds timed again because the worker was stopped or descheduled in them "
        "(wall time over what their CPU time allows): none of them is among samples_s",
    )
    stats: Stats | None = Field(None, description="a cache of statistics of samples_s")
    flops: NonNegative | None = Field(None, description="matrix-product FLOPs of one call")
    bytes: NonNegative | None = Field(None, description="bytes a bandwidth probe moves")
    build_s: NonNegative | None = None
    calibrate_s: NonNegative | None = None
    parallel_in_time: Solve | None = Field(
        None, description="newton / quasi-newton cases: the solve"
    )
    stream: StreamTiming | None = Field(
        None, description="stream cases: every call's latency (samples_s are their round means)"
    )
    load: LoadTest | None = Field(None, description="load cases: the trials and the capacity")
    machine: str | None = Field(None, description="the label of the machine that timed it")
    host: str | None = None
    worker: str | None = Field(None, description="the Dask worker address (a cluster run)")
    group_run: str | None = Field(
        None, description="which run of its interleaved group: only one run's rounds pair"
    )
    group_s: NonNegative | None = Field(None, description="the machine's seconds on the group")

    @model_validator(mode="after")
    def _samples_and_stats(self) -> CaseRecord:
        if self.status == "ok" and not self.samples_s:
            raise ValueError(f"case {self.id!r}: status ok without samples_s")
        if self.status in ("failed", "skipped", "not_timed") and self.samples_s:
            # never timed (an error or a timeout may keep the rounds it finished)
            raise ValueError(f"case {self.id!r}: status {self.status} with samples_s")
        if self.stats is not None:
            if not self.samples_s:
                raise ValueError(f"case {self.id!r}: a stats block but no samples_s to derive it")
            problem = stats_disagree(self.stats, self.samples_s)
            if problem:
                raise ValueError(
                    f"case {self.id!r}: {problem}: statistics are derived from samples_s, "
                    "never trusted"
                )
        return self

    @model_validator(mode="after")
    def _stream_rounds(self) -> CaseRecord:
        """A stream case's samples_s are the round means of its latencies, to rounding."""
        if self.stream is not None:
            means = self.stream.round_means()
            if len(means) != len(self.samples_s) or not all(
                math.isclose(a, b, rel_tol=1e-9) for a, b in zip(means, self.samples_s, strict=True)
            ):
                raise ValueError(
                    f"case {self.id!r}: samples_s are not the round means of stream.latencies_ns"
                )
        return self

    def derived(self) -> Stats:
        """The statistics of samples_s, computed now (what every reader uses)."""
        from harness.stats import summarize

        return Stats.model_validate(summarize(self.samples_s))


def ids_name_fields(cases: list[CaseRecord]) -> list[CaseRecord]:
    """Refuse a record whose case fields make another id (it would be counted as that case,
    or as done when it is not); a backend this rnnbench cannot build keeps its id."""
    from harness.bench.case import BenchCase

    for record in cases:
        try:
            named = BenchCase.from_dict(record.case.model_dump()).id
        except Exception:  # an unknown backend or mode: its fields were validated above
            continue
        if named != record.id:
            raise ValueError(
                f"case {record.id!r} holds the fields of {named!r}: an id names its fields"
            )
    return cases


def stats_disagree(stored: Stats, samples: list[float]) -> str | None:
    from harness.stats import summarize

    fresh = summarize(samples)
    for name, value in fresh.items():
        kept = getattr(stored, name)
        if not math.isclose(kept, value, rel_tol=1e-9, abs_tol=1e-15):
            return f"stats.{name} = {kept!r} disagrees with its samples_s ({name} {value!r})"
    return None


class Environment(Record):
    """Where a machine's cases ran (harness.machine.environment.collect_environment)."""

    machine: str = Field(description="the label")
    cpu: JsonObject = Field(description="model, logical_cores, usable_cores, machine")
    cpu_limits: JsonObject | None = Field(
        None, description="theoretical peak {isa, fma, mhz, ...} and caches from sysfs"
    )
    numpy_gemm: JsonObject | None = Field(
        None, description="openblas_coretype, the kernel threadpoolctl reports"
    )
    gpu: JsonObject | None = Field(
        None,
        description="name, memory_gib, capability, ...; null: no CUDA device; {probed: false, "
        "reason}: not looked for (RNNBENCH_NO_GPU_PROBE)",
    )
    os: str | None = None
    python: str | None = None
    libraries: dict[str, str] = Field({}, description="name -> version")
    blas: list[JsonObject] = Field([], description="threadpoolctl's libraries")
    environment_variables: dict[str, str | None] = Field(
        {}, description="OPENBLAS_CORETYPE, OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES, ..."
    )
    git: JsonObject = Field({}, description="commit, dirty")
    caches: JsonObject | None = Field(None, description="files before cpu_limits: caches")
    cpu_peak: JsonObject | None = Field(None, description="files before cpu_limits: peak")


class Machine(Record):
    environment: Environment
    selfcheck: dict[str, Finite] = Field(
        {}, description="timer_resolution_s, loop_overhead_s (the timing loop's own cost)"
    )
    hosts: list[str] = Field([], description="hostnames that timed under the label")
    workers: list[str] = Field([], description="Dask worker addresses (empty: a local run)")


class Client(Record):
    """Where the run was started from (a --resume keeps it)."""

    machine: str | None = None
    host: str | None = None
    scheduler: str | None = Field(None, description="the Dask address, null for a local run")
    git: JsonObject = Field({}, description="commit, dirty")


class ResultsDocument(Record):
    """One `rnnbench bench` run, rewritten atomically after every interleaved group."""

    schema_version: Literal[6] = Field(SCHEMA_VERSION, description="1 to 5 are read too")
    kind: Literal["rnnbench-bench"] = KIND
    written_by: str | None = Field(
        WRITER, description="the rnnbench that wrote it (absent in files before 0.1.0's fifth)"
    )
    suite: SuiteInfo
    machines: dict[str, Machine] = Field({}, description="label -> the machine")
    client: Client | None = None
    started: str | None = Field(None, description="UTC, ISO 8601")
    finished: str | None = Field(None, description="UTC, ISO 8601; null while running")
    wall_s: NonNegative | None = Field(None, description="seconds of the run, over resumes")
    waited_s: NonNegative | None = Field(
        None, description="of wall_s, seconds waiting for another benchmark to leave the machine"
    )
    cases: list[CaseRecord] = Field([], description="one per case id, in the suite's order")

    @field_validator("cases")
    @classmethod
    def _unique_ids(cls, cases: list[CaseRecord]) -> list[CaseRecord]:
        seen = set()
        for record in cases:
            if record.id in seen:
                raise ValueError(f"case id {record.id!r} appears twice: one record per case")
            seen.add(record.id)
        return ids_name_fields(cases)

    @model_validator(mode="after")
    def _machines_named(self) -> ResultsDocument:
        for record in self.cases:
            if record.machine is None:
                if record.status in ("ok", "failed"):  # timed or checked: by some machine
                    raise ValueError(f"case {record.id!r}: status {record.status} names no machine")
                continue
            if record.machine not in self.machines:
                raise ValueError(
                    f"case {record.id!r}: machine {record.machine!r} is not among the file's "
                    f"machines ({', '.join(self.machines) or 'none'})"
                )
        return self
