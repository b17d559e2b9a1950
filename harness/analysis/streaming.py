"""What the streaming modes measured, read straight from the results documents' records (one
frozen row per stream case, one per load case), with their intervals:

- a stream case's percentiles (harness/tail.py) of its per-call latencies;
- its in-sequence step floor: the same backend's forward of the same model at the same T, timed
  in the same interleaved group, divided by T (where the group has it), and the group's best;
- what one call pays over that floor, and how much of it the framework's no-op call is;
- a load case's capacity per p99 target, with the trial that shows it, and the latency curve
  (every trial: offered load against p50 and p99)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from harness import stats
from harness.tail import percentile_ci, tail

Interval = stats.Interval


@dataclasses.dataclass(frozen=True)
class StreamRow:
    machine: str
    model: str  # a user's model's name (bench --model), "" for the suites' seeded models
    backend: str
    cell: str
    dtype: str
    input_size: int
    hidden: int
    layers: int
    batch: int
    steps: int  # T: the sequence the stream was proven on, and the floor's length
    threads: int
    impl_class: str
    calls: int
    tail: dict[str, Interval]  # p50, p90, p99, p99_9 of one call (s)
    noop: Interval  # the framework's no-op call, its median (s)
    floor: Interval | None  # the same backend's forward / T, same group (s)
    floor_backend: str | None  # whose floor (the backend's own, else the group's best)
    best_floor: Interval | None  # the fastest forward / T of the group, any backend
    best_floor_backend: str | None

    @property
    def over_best(self) -> Interval | None:
        """p50 / the group's fastest in-sequence step, its interval as overhead's."""
        return None if self.best_floor is None else _ratio(self.tail["p50"], self.best_floor)

    @property
    def overhead(self) -> Interval | None:
        """p50 / floor, its interval from the two intervals' ends (_ratio)."""
        return None if self.floor is None else _ratio(self.tail["p50"], self.floor)

    @property
    def extra_s(self) -> float | None:
        """Seconds a call costs over the in-sequence step (p50 - floor)."""
        return None if self.floor is None else self.tail["p50"][0] - self.floor[0]


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    streams: int
    offered_hz: float
    achieved_hz: float
    p50: float
    p99: Interval
    gave_up: bool


@dataclasses.dataclass(frozen=True)
class Served:
    target_s: float
    streams: int
    achieved_hz: float | None  # at that trial (None: no trial passes)
    p99: Interval | None


@dataclasses.dataclass(frozen=True)
class LoadRow:
    machine: str
    model: str
    backend: str
    cell: str
    dtype: str
    hidden: int
    layers: int
    threads: int
    impl_class: str
    policy: dict[str, Any]
    capacity: tuple[Served, ...]
    curve: tuple[CurvePoint, ...]  # by offered load


@dataclasses.dataclass(frozen=True)
class Streaming:
    streams: tuple[StreamRow, ...]
    loads: tuple[LoadRow, ...]

    def __bool__(self) -> bool:
        return bool(self.streams or self.loads)


def analyse(docs) -> Streaming:
    """docs: the machine views of the results files (harness.records.store.machine_views)."""
    streams, loads = {}, {}
    for doc in docs:
        forwards = _forwards(doc.cases)
        for record in doc.cases:
            if record.status != "ok":
                continue
            if record.stream is not None:
                streams[(doc.machine, record.id)] = _stream_row(doc.machine, record, forwards)
            elif record.load is not None:
                loads[(doc.machine, record.id)] = _load_row(doc.machine, record)
    order = lambda r: (r.machine, r.cell, r.hidden, r.backend)  # noqa: E731
    return Streaming(
        tuple(sorted(streams.values(), key=order)), tuple(sorted(loads.values(), key=order))
    )


def _forwards(records) -> dict[tuple, list]:
    """Forward cases that timed fine, by their interleaved group's run."""
    out: dict[tuple, list] = {}
    for record in records:
        if record.status == "ok" and record.case.mode == "forward" and record.group_run:
            out.setdefault(record.group_run, []).append(record)
    return out


def _per_step(record) -> Interval:
    T = record.case.steps
    median, low, high = stats.median_ci(record.samples_s)
    return median / T, low / T, high / T


def _stream_row(machine: str, record, forwards) -> StreamRow:
    case, timing = record.case, record.stream
    latencies = [v * 1e-9 for v in timing.latencies_ns]
    group = forwards.get(record.group_run, [])
    floors = {f.case.backend: _per_step(f) for f in group}
    best = min(floors.items(), key=lambda kv: kv[1][0], default=(None, None))
    own = floors.get(case.backend)
    return StreamRow(
        machine=machine,
        model=case.model or "",
        backend=case.backend,
        cell=case.cell,
        dtype=case.dtype,
        input_size=case.input_size,
        hidden=case.hidden,
        layers=case.layers,
        batch=case.batch,
        steps=case.steps,
        threads=case.threads,
        impl_class=record.impl_class,
        calls=len(latencies),
        tail=tail(latencies),
        noop=percentile_ci([v * 1e-9 for v in timing.noop_ns], 50),
        floor=own if own is not None else best[1],
        floor_backend=case.backend if own is not None else best[0],
        best_floor=best[1],
        best_floor_backend=best[0],
    )


def _load_row(machine: str, record) -> LoadRow:
    case, test = record.case, record.load
    trials = test.trials
    curve = sorted(
        (
            CurvePoint(
                t.streams,
                t.offered_hz,
                t.achieved_hz,
                t.percentiles.p50,
                _p99(t),
                t.gave_up,
            )
            for t in trials
        ),
        key=lambda p: p.offered_hz,
    )
    capacity = []
    for found in test.capacity:
        trial = None if found.trial is None else trials[found.trial]
        achieved = None if trial is None else trial.achieved_hz
        capacity.append(Served(found.target_s, found.streams, achieved, trial and _p99(trial)))
    return LoadRow(
        machine=machine,
        model=case.model or "",
        backend=case.backend,
        cell=case.cell,
        dtype=case.dtype,
        hidden=case.hidden,
        layers=case.layers,
        threads=case.threads,
        impl_class=record.impl_class,
        policy=test.policy.model_dump(),
        capacity=tuple(capacity),
        curve=tuple(curve),
    )


def _ratio(a: Interval, b: Interval) -> Interval:
    """a / b, its interval from the ends of both (each 95%: wider than 95%, never narrower)."""
    return a[0] / b[0], a[1] / b[2], a[2] / b[1]


def _p99(trial) -> Interval:
    return percentile_ci([v * 1e-6 for v in trial.latencies_us], 99)


def finite(interval: Interval | None) -> bool:
    return interval is not None and all(math.isfinite(v) for v in interval)
