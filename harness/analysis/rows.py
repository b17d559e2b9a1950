"""The flat table every measure reads: one typed row per timed case (TimedRow: the case's
fields, its machine, median with its interval, raw samples and work), with the interleaved
group it was timed in, so that a ratio of two rows knows whether their rounds pair."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ConfigDict

from harness import stats
from harness.records.case_fields import group_key, key_fields
from harness.records.results import CaseFields, CaseRecord, Solve

SHAPE = ("cell", "dtype", "batch", "steps", "input_size", "hidden", "layers")
KEY_FIELDS = ("machine", *key_fields())  # declared in harness/records/case_fields.py
Key = tuple[tuple[str, Any], ...]


class TimedRow(CaseFields):
    """One timed case as the analysis reads it: the case's own fields (CaseFields, declared
    once there), where it ran, and what its samples say. Built once, from a validated record;
    frozen."""

    model_config = ConfigDict(frozen=True)

    machine: str
    id: str
    median: float
    median_ci: stats.Interval
    iqr: float
    samples: tuple[float, ...]
    round_group: tuple[int, Any]  # one interleaved group of one run (rounds of one pair)
    flops: float | None
    bytes: float | None
    impl_class: str
    parallel_in_time: Solve | None


def rows(docs: Iterable[Any]) -> list[TimedRow]:
    """One row per timed case of the machine views (harness.records.store.MachineView). A
    case timed in several files of one machine counts once: the later file's timing wins."""
    out: dict[tuple[str, str], TimedRow] = {}
    for index, doc in enumerate(docs):
        for record in doc.cases:
            if record.status == "ok":
                out[(doc.machine, record.id)] = timed_row(record, doc.machine, index)
    return list(out.values())


def timed_row(record: CaseRecord, machine: str, index: int) -> TimedRow:
    samples = tuple(float(s) for s in record.samples_s)
    derived = record.derived()
    case = dict(record.case)
    # a file before group_run: its shape's group
    group = record.group_run or group_key(record.case.model_dump(exclude_none=True))
    return TimedRow(
        **case,
        machine=machine,
        id=record.id,
        median=derived.median,
        median_ci=stats.median_ci(samples),
        iqr=derived.iqr,
        samples=samples,
        round_group=(index, group),
        flops=record.flops,
        bytes=record.bytes,
        impl_class=record.impl_class,
        parallel_in_time=record.parallel_in_time,
    )


def key(row: Any, *drop: str) -> Key:
    """The row's identity but for `drop`: what rows of one series, or one comparison, share.
    `row`: any row with the KEY_FIELDS as attributes."""
    return tuple((f, _blank(getattr(row, f))) for f in KEY_FIELDS if f not in drop)


def _blank(value: Any) -> Any:
    return "" if value is None else value


def paired(a: TimedRow, b: TimedRow) -> bool:
    """Whether a's and b's rounds were timed in turn (same group of one run, same count)."""
    return a.round_group == b.round_group and len(a.samples) == len(b.samples)


def ratio(a: TimedRow, b: TimedRow) -> stats.Interval:
    """a's time over b's, with its interval: paired by round where the two were interleaved."""
    return stats.ratio_ci(a.samples, b.samples, paired=paired(a, b))
