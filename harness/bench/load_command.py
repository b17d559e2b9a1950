"""What `rnnbench load` does: one backend's step, proven equal to the whole sequence, then
load-tested by a policy the command line gives (the load mode's, without a suite or a results
file around it), in this process under the machine lock, its threads fixed as a worker's are."""

from __future__ import annotations

import dataclasses

from harness.bench import workload
from harness.bench.case import make_case
from harness.records.streaming import LoadPolicy, LoadTest


@dataclasses.dataclass(frozen=True)
class LoadRun:
    case_id: str
    impl_class: str
    checks: list  # harness.parity.checks.Comparison, the proof
    threads: dict
    test: LoadTest | None  # None: the proof failed, nothing was timed


def run(backend: str, policy: LoadPolicy, steps: int = 16, **model) -> LoadRun:
    """model: make_case's fields (cell, hidden, input_size, layers, threads, dtype)."""
    from threadpoolctl import threadpool_limits

    from harness.machine.lock import machine_lock

    case = make_case(backend, "load", batch=policy.max_batch, steps=steps, **model)
    opened, threads = workload.open_backend(case)
    job = workload.build(case, opened, policy=policy)
    failed = [c for c in job.checks if not c.passed]
    if failed:
        return LoadRun(case.id, job.impl_class, job.checks, threads, None)
    with threadpool_limits(limits=case.threads), machine_lock():
        assert job.finish is not None  # a load workload reports its test when it finishes
        test = LoadTest.model_validate(job.finish()["load"])
    return LoadRun(case.id, job.impl_class, job.checks, threads, test)
