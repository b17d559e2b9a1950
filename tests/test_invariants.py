"""The analysis checks its own limits: on results with exactly known answers it finds exactly
the planted violations, and on the committed reference results every share over 100%, every
beaten bound and every penalty under 1 is flagged with a cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import stats
from harness.analysis import invariants, measures, sections
from harness.bench.case import make_case
from harness.machine.model import Memory, Probe
from harness.records import store as results
from harness.registry import product_baseline
from tests.synthetic_results import document, example_doc, record, spread, views

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted((ROOT / "results" / "cpu-2core").glob("bench-*.json"))
LSTM = 2 * 100 * 32 * 4 * 256 * (128 + 256)  # forward FLOPs, B=32 T=100 I=128 H=256


def at(flops: float, gflops: float) -> list[float]:
    return spread(flops / (gflops * 1e9))


def planted_doc() -> dict:
    """Probes: numpy 100 GFLOP/s, torch 80; NumPy's one-thread copies of 32 KiB (L1) at 100
    GB/s, 512 KiB (L2) at 50, 32 MiB (DRAM) at 10, so 200, 100 and 20 at 2 threads; caches 32
    KiB L1d and 1 MiB L2 per core, 16 MiB L3; a 192 GFLOP/s theoretical peak at 2 threads. One
    consistent LSTM case, one planted case (150 GFLOP/s, above the 100 peak; its own product
    at 75 and numpy's at 100 both slower), TF eager, and two T series at B=1: LSTM with a step
    of 5 us (under its 10.6 us memory bound) and GRU with 20 us (over its 7.9 us memory
    bound)."""
    records = [
        record(make_case("numpy", "peak", size=1024, threads=2), at(2 * 1024**3, 100)),
        record(make_case("torch-cpu", "peak", size=1024, threads=2), at(2 * 1024**3, 80)),
    ]
    for size, gbs in ((2**12, 100), (2**16, 50), (2**22, 10)):
        records.append(
            record(make_case("numpy", "bandwidth", size=size, threads=2), at(8 * size, gbs))
        )
    for batch, fwd, own, best in ((32, 50, 80, 100), (64, 150, 75, 100)):
        flops = LSTM * batch // 32
        shape = {"cell": "lstm", "batch": batch, "steps": 100, "threads": 2}
        records += [
            record(make_case("torch-cpu", "forward", **shape), at(flops, fwd)),
            record(make_case("torch-cpu", "gemm", **shape), at(flops, own)),
            record(make_case("numpy", "gemm", **shape), at(flops, best)),
        ]
    eager = make_case("tf-eager", "forward", "lstm", batch=32, steps=100, threads=2)
    records.append(record(eager, at(LSTM, 1)))
    for cell, a, b in (("lstm", 300e-6, 5e-6), ("gru", 300e-6, 20e-6)):
        for steps in (1, 10, 100):
            case = make_case("torch-cpu", "forward", cell, batch=1, steps=steps, threads=2)
            records.append(record(case, spread(a + b * steps)))
    doc = document(records, machine="planted")
    environment = doc["machines"]["planted"]["environment"]
    environment["caches"] = {
        "L1d": {"per_core": 32 * 2**10, "total": 64 * 2**10},
        "L2": {"per_core": "1 MiB"},
        "L3": {"total": 16 * 2**20},
        "source": "made up",
    }
    environment["cpu_peak"] = {
        "isa": "avx2",
        "cores": 2,
        "max_mhz": 3000,
        "flops_per_cycle": {"float32": 32, "float64": 16},
        "source": "made up",
    }
    return doc


@pytest.fixture(scope="module")
def planted():
    return measures.analyse(views(planted_doc()))


def test_the_machine_model_by_hand(planted):
    peak = planted.machine.peaks[("planted", "cpu", "float32", 2)]
    assert (peak.flops, peak.backend, peak.size) == (pytest.approx(100e9), "numpy", "N=1024")
    assert peak.theoretical == pytest.approx(32 * 3000e6 * 2)
    memory = planted.machine.memory[("planted", "cpu", 2)]
    assert memory.levels == (("L1", 64 * 2**10), ("L2", 2 * 2**20), ("L3", 16 * 2**20))
    # NumPy's copy runs on one thread: the bound at 2 threads allows twice what it moved
    for size, level, bandwidth in (
        (10 * 2**10, "L1", 200e9),
        (1052672, "L2", 100e9),  # R and states of an H=256 LSTM step at B=1
        (4 * 2**20, "L3", 100e9),  # no probe in L3: the nearest under 4 MiB (L2's)
        (100 * 2**20, "DRAM", 20e9),
    ):
        found = memory.bandwidth_at(size)
        assert (found.name, found.bandwidth) == (level, pytest.approx(bandwidth)), size
    one = Memory(memory.probes, 1, memory.levels, memory.caches_note)  # the same, at 1 thread
    assert one.bandwidth_at(1052672).bandwidth == pytest.approx(50e9)
    # an old file: one DRAM probe, no caches: a small working set's level is unknown, and a
    # larger working set's bandwidth does not bound it
    old = Memory((Probe(2**27, 20e9, "numpy", 1),), 1, (), "cache sizes unknown")
    assert old.bandwidth_at(2**20).bandwidth is None and old.bandwidth_at(2**20).name == "unknown"
    assert old.bandwidth_at(2**28).bandwidth == pytest.approx(20e9)


def test_a_smaller_working_set_is_never_served_slower():
    """A small probe slowed by call overhead (L1 under L2) takes the larger probes' best; a
    copy that ran on every thread counts as that many threads' worth."""
    levels = (("L1", 64 * 2**10), ("L2", 2 * 2**20))
    probes = (
        Probe(16 * 2**10, 27e9, "numpy", 1),
        Probe(256 * 2**10, 85e9, "numpy", 1),
        Probe(64 * 2**20, 120e9, "torch-cpu", 2),
    )
    memory = Memory(probes, 2, levels, "made up")
    assert [rate for _, rate, _ in memory.curve] == pytest.approx([170e9, 170e9, 120e9])
    assert memory.bandwidth_at(50 * 2**10).bandwidth == pytest.approx(170e9)
    assert memory.bandwidth_at(50 * 2**10).name == "L1"
    assert memory.bandwidth_at(2**30).name == "DRAM"
    assert memory.bandwidth_at(2**30).bandwidth == pytest.approx(120e9)


def test_roofline_counts_every_flop_at_the_right_level(planted):
    lstm, gru = (
        next(r for r in planted.roofline if r.fit.cell == cell) for cell in ("lstm", "gru")
    )
    assert lstm.bound.step_flops == 2 * 4 * 256 * (128 + 256) + 12 * 256  # x.W + h.R + gates
    assert lstm.bound.compute_bound_s == pytest.approx(lstm.bound.step_flops / 100e9)
    lstm_bytes = 4 * (4 * 256 * 256 + 4 * 256 + 2 * 2 * 256)  # R, input gates, states
    assert lstm.bound.level == "L2" and lstm.bound.limited_by == "memory"
    assert lstm.bound.memory_bound_s == pytest.approx(lstm_bytes / 100e9)
    assert lstm.times_bound == pytest.approx(5e-6 / (lstm_bytes / 100e9))
    gru_bytes = 4 * (3 * 256 * 256 + 3 * 256 + 2 * 256)
    assert gru.bound.memory_bound_s == pytest.approx(gru_bytes / 100e9)
    assert gru.bound.limited_by == "memory" and gru.times_bound == pytest.approx(
        20e-6 / (gru_bytes / 100e9)
    )


def test_the_checks_find_exactly_the_planted_violations(planted):
    found = {(i.kind, i.subject) for i in planted.inconsistencies}
    case = "torch-cpu/forward/lstm/float32/B64/T100/I128/H256/L1/th2"
    series = next(i.subject for i in planted.inconsistencies if i.kind == invariants.BEATS_ROOFLINE)
    assert found == {
        (invariants.ABOVE_PEAK, case),
        (invariants.BEATS_OWN, case),
        (invariants.BEATS_BEST, case),
        (invariants.BEATS_ROOFLINE, series),
    }
    assert series.startswith("torch-cpu lstm B=1 ")
    by_kind = {i.kind: i for i in planted.inconsistencies}
    assert "150 GFLOP/s against 100 GFLOP/s" in by_kind[invariants.ABOVE_PEAK].measured
    assert "not the machine's best GEMM" in by_kind[invariants.ABOVE_PEAK].cause
    assert by_kind[invariants.BEATS_OWN].measured.startswith("0.50x [0.50, 0.50]")
    assert by_kind[invariants.BEATS_BEST].measured.startswith("0.67x [0.67, 0.67]")
    assert "placed in L2 at 100.0 GB/s" in by_kind[invariants.BEATS_ROOFLINE].measured


def test_tables_show_no_share_over_100_and_no_penalty_under_1(planted):
    body = dict(sections.sections(planted, views(planted_doc()), ""))
    table = body["Recurrence penalty (RNN / the same FLOPs as one product)"]
    assert "0.50x" not in table and "0.67x" not in table and "inconsistent" in table
    assert "1.60x [1.60, 1.60]" in table and "2.00x [2.00, 2.00]" in table  # the held case
    assert "tf-eager (made up): dispatch-bound" in table
    assert not any(p.backend == "tf-eager" for p in planted.penalties)
    assert "4 measurements beat a limit" in body["Inconsistencies"]
    clean_views = views(example_doc())
    clean = dict(sections.sections(measures.analyse(clean_views), clean_views, ""))
    assert clean["Inconsistencies"].startswith("None:")


def _paired(a, b) -> float:
    return stats.ratio_ci(a.samples_s, b.samples_s, paired=True)[0]


def _above_theory(doc, ok: list, rate: dict[str, float]) -> set[tuple[str, str]]:
    """Products (and cases) faster than the theoretical peak the environment states; of the
    peak probes, efficiency rates none, so only the best one a (dtype, threads) is checked."""
    theory = (doc.environment.cpu_limits or {}).get("peak", {}).get("gflops", {})
    out, best = set(), {}
    for r in ok:
        where = (r.case.dtype, r.case.threads)
        limit = theory.get(str(where[1]), {}).get(where[0])
        if not limit or r.id not in rate:
            continue
        product = r.case.mode in ("peak", "gemm")
        if product and rate[r.id] > best.get(where, (0, ""))[0]:
            best[where] = (rate[r.id], r)
        if r.case.mode != "peak" and rate[r.id] > limit * 1e9:
            out.add((invariants.ABOVE_THEORY, r.id))
    for where, (value, r) in best.items():
        if value > theory[str(where[1])][where[0]] * 1e9:
            out.add((invariants.ABOVE_THEORY, r.id))
    return out


def _same_shape(a, b) -> bool:
    """Two cases of one interleaved group: every field but backend and mode alike."""
    skip = {"backend", "mode", "sweep", "device"}
    return {k: v for k, v in a.case.model_dump().items() if k not in skip} == {
        k: v for k, v in b.case.model_dump().items() if k not in skip
    }


def _expected(doc) -> set[tuple[str, str]]:
    """Every violation in a results file, computed from its raw records alone."""
    ok = [r for r in doc.cases if r.status == "ok"]
    rate = {r.id: r.flops / r.derived().median for r in ok if r.flops}
    out = _above_theory(doc, ok, rate)
    for r in ok:
        where = (r.case.dtype, r.case.threads)
        peaks = [
            rate[p.id]
            for p in ok
            if p.case.mode in ("peak", "gemm") and (p.case.dtype, p.case.threads) == where
        ]
        if r.flops and peaks and rate[r.id] > max(peaks):
            out.add((invariants.ABOVE_PEAK, r.id))
        library = product_baseline(r.case.backend)
        if r.case.mode != "forward" or library is None:
            continue
        products = {p.case.backend: p for p in ok if p.case.mode == "gemm" and _same_shape(p, r)}
        if library not in products:
            continue
        if _paired(r, products[library]) < 1:
            out.add((invariants.BEATS_OWN, r.id))
        fastest = min(products.values(), key=lambda p: p.derived().median)
        if _paired(r, fastest) < 1:
            out.add((invariants.BEATS_BEST, r.id))
    return out


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_violation_in_the_committed_results_is_flagged(path):
    (doc,) = results.machine_views(results.load_results(path))
    result = measures.analyse([doc])
    found = result.inconsistencies
    flagged = {(i.kind, i.subject) for i in found}
    assert _expected(doc) <= flagged
    beaten = {r.fit.backend for r in result.roofline if r.times_bound < 1}
    assert beaten == {i.subject.split()[0] for i in found if i.kind == invariants.BEATS_ROOFLINE}
    assert all(len(i.cause) > 40 for i in found)
    # and the report prints none of them as a share or a penalty
    body = dict(sections.sections(result, [doc], ""))
    shares = body.get("Standard case: LSTM B=32 T=100 I=128 H=256 float32", "")
    assert _percentages(shares) or doc.suite.name == "streaming"  # it times no standard case
    assert all(int(s) <= 100 for s in _percentages(shares))
    assert _expected(doc) == {(k, s) for k, s in flagged if k != invariants.BEATS_ROOFLINE}, (
        "the analysis flags something the raw records do not show"
    )


def _percentages(table: str) -> list[str]:
    """The '% of best product' column (the last) of each row; not the IQR's percentages."""
    import re

    return re.findall(r"\| (\d+)% \|$", table, flags=re.M)


def test_the_committed_default_run_states_each_violation_with_its_cause_once():
    """What the committed run's limits get wrong is printed, never hidden: each inconsistency
    is of a known kind, names what it was measured against, and each cause is written once
    above the cases it covers."""
    path = ROOT / "results" / "cpu-2core" / "bench-full.json"
    found = measures.analyse(results.machine_views(results.load_results(path))).inconsistencies
    known = {
        invariants.ABOVE_PEAK,
        invariants.ABOVE_THEORY,
        invariants.BEATS_ROOFLINE,
        invariants.BEATS_BEST,
        invariants.BEATS_OWN,
    }
    assert {i.kind for i in found} <= known
    assert all(i.cause and (" against " in i.measured or " of " in i.measured) for i in found)
    text = invariants.markdown(found)
    for cause in {i.cause for i in found}:
        assert text.count(cause) == 1, cause
    for item in found:
        assert f"`{item.subject}` on {item.machine}: {item.measured}" in text
