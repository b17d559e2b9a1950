"""The flat table every measure reads: one row per timed case, with its raw samples and the
interleaved group it was timed in, so that a ratio of two rows knows whether their rounds pair."""

from __future__ import annotations

from typing import Any

from harness import stats
from harness.records.case_fields import group_key, key_fields

SHAPE = ("cell", "dtype", "batch", "steps", "input_size", "hidden", "layers")
KEY_FIELDS = ("machine", *key_fields())  # declared in harness/records/case_fields.py


def rows(docs) -> list[dict[str, Any]]:
    """One flat row per timed case: machine, the case's fields, median seconds (and its
    interval), raw samples and work, every statistic derived from the samples. A case timed in
    several files of one machine counts once: the later file's timing wins."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for index, doc in enumerate(docs):
        for record in doc.cases:
            if record.status == "ok":
                out[(doc.machine, record.id)] = _row(record, doc.machine, index)
    return list(out.values())


def _row(record, machine: str, index: int) -> dict[str, Any]:
    samples = [float(s) for s in record.samples_s]
    derived = record.derived()
    case = record.case.model_dump(exclude_none=True)
    group = record.group_run or (index, group_key(case))
    row = {
        **case,
        "machine": machine,
        "id": record.id,
        "median": derived["median"],
        "median_ci": stats.median_ci(samples),
        "iqr": derived["iqr"],
        "samples": samples,
        # one interleaved group of one run (a file before group_run: its shape's group)
        "round_group": (index, group),
        "flops": record.flops,
        "bytes": record.bytes,
        "impl_class": record.impl_class,
        "parallel_in_time": record.parallel_in_time.model_dump()
        if record.parallel_in_time
        else None,
    }
    return row


def key(row: dict[str, Any], *drop: str) -> tuple:
    return tuple((f, row.get(f, "")) for f in KEY_FIELDS if f not in drop)


def paired(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether a's and b's rounds were timed in turn (same group of one run, same count)."""
    return a["round_group"] == b["round_group"] and len(a["samples"]) == len(b["samples"])


def ratio(a: dict[str, Any], b: dict[str, Any]) -> stats.Interval:
    """a's time over b's, with its interval: paired by round where the two were interleaved."""
    return stats.ratio_ci(a["samples"], b["samples"], paired=paired(a, b))
