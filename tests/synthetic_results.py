"""Results documents with made-up, exactly known timings, for testing what reads them: raw
documents as a results file holds them (document, example_doc), and the checked single-machine
views the analysis reads (views)."""

from __future__ import annotations

from harness import stats
from harness.bench.case import BenchCase, make_case
from harness.bench.suites import load_suite
from harness.model import flops
from harness.records import store as results


def record(case: BenchCase, samples: list[float], impl="made up") -> dict:
    return {
        "id": case.id,
        "case": case.as_dict(),
        "status": "ok",
        "reason": "",
        "impl_class": impl,
        "notes": "",
        "weights_digest": "",
        "parity": [],
        "threads": {},
        "loops": 1,
        "samples_s": samples,
        "stats": stats.summarize(samples),
        "flops": flops.of_case(case),
        "bytes": flops.case_bytes(case.mode, case.size, case.dtype),
    }


def document(records: list[dict], machine="test-machine", torch_version="2.13.0") -> dict:
    """A one-machine results file's content (version 4), every record timed by `machine`."""
    env = {
        "machine": machine,
        "cpu": {"model": "Test CPU", "logical_cores": 2},
        "gpu": None,
        "python": "3.11",
        "libraries": {"numpy": "2.4.6", "torch": torch_version},
        "environment_variables": {"OPENBLAS_CORETYPE": None},
        "git": {"commit": "abc"},
    }
    doc = results.new_document(load_suite("quick"), {}, "2026-01-01T00:00:00+00:00")
    data = doc.model_dump(mode="json")
    data.update(
        machines={machine: {"environment": env, "selfcheck": {}}},
        cases=[{**r, "machine": machine} for r in records],
        wall_s=1.0,
    )
    return data


def merged(*docs: dict) -> dict:
    """One file holding the cases of several single-machine documents, as a Dask run across
    their machines writes it."""
    out = {**docs[0], "machines": dict(docs[0]["machines"]), "cases": list(docs[0]["cases"])}
    for doc in docs[1:]:
        out["machines"].update(doc["machines"])
        out["cases"] = out["cases"] + doc["cases"]
    return out


def checked(doc: dict):
    """The typed document of a raw one (what rnnbench reads from a file)."""
    return results.check_document(doc, "a synthetic document")


def views(*docs: dict) -> list:
    """The single-machine views the analysis reads, of raw documents."""
    return [v for doc in docs for v in results.machine_views(checked(doc))]


def spread(median: float, n: int = 7, width: float = 0.01) -> list[float]:
    """n samples centred on `median`, evenly spaced over +-width (relative)."""
    return [median * (1 + width * (2 * i / (n - 1) - 1)) for i in range(n)]


A, B = 50e-6, 10e-6  # latency(T) = A + B*T, seconds


def example_doc(machine="test-machine", scale=1.0) -> dict:
    """torch-cpu LSTM forward over T with latency exactly A + B*T; the equal-FLOP product at a
    third of that; peak and bandwidth probes; a batch sweep; GRU and minGRU over T."""
    shape = {"cell": "lstm", "batch": 1, "input_size": 128, "hidden": 256, "threads": 2}
    records = []
    for steps in (1, 8, 64, 512):
        fwd = make_case("torch-cpu", "forward", steps=steps, **shape)
        records.append(record(fwd, spread(scale * (A + B * steps))))
        gemm = make_case("torch-cpu", "gemm", steps=steps, **shape)
        records.append(record(gemm, spread(scale * (A + B * steps) / 3)))
    records.append(
        record(make_case("torch-cpu", "peak", size=1024, threads=2), spread(2 * 1024**3 / 100e9))
    )  # 100 GFLOP/s
    records.append(
        record(
            make_case("torch-cpu", "bandwidth", size=2**24, threads=2), spread(2 * 4 * 2**24 / 20e9)
        )
    )  # 20 GB/s
    for batch in (1, 4, 16):
        case = make_case("numpy", "forward", "lstm", batch=batch, steps=64, threads=2)
        records.append(record(case, spread(1e-3 * (1 + batch / 4))))
    for steps, gru, scan, loop in (
        (16, 2e-3, 1e-3, 0.5e-3),
        (256, 30e-3, 8e-3, 9e-3),
        (1024, 120e-3, 30e-3, 40e-3),
    ):
        base = {"batch": 8, "steps": steps, "threads": 2}
        records.append(record(make_case("torch-cpu", "forward", "gru", **base), spread(gru)))
        records.append(record(make_case("torch-cpu", "forward", "mingru", **base), spread(scan)))
        records.append(record(make_case("torch-cpu", "sequential", "mingru", **base), spread(loop)))
    return document(records, machine)


def retargeted(doc: dict, old: str, new: str, device: str = "gpu") -> dict:
    """The document with backend `old` renamed `new` (its records' ids with it), as if timed
    there; `new`'s cases run on `device`."""
    for record in doc["cases"]:
        if record["case"]["backend"] == old:
            record["case"]["backend"] = new
            record["case"]["device"] = device
            record["id"] = record["id"].replace(old, new, 1)
    return doc
