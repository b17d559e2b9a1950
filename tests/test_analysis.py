"""The analysis against made-up results whose answers are known exactly."""

from __future__ import annotations

import pytest

from harness import stats
from harness.analysis import fits, measures, mingru, roofline
from harness.analysis.findings import headline
from harness.model import flops
from tests.synthetic_results import A, B, example_doc, retargeted, spread, views


@pytest.fixture(scope="module")
def result():
    return measures.analyse(views(example_doc()))


def test_fit_recovers_a_and_b(result):
    (fit,) = [f for f in result.fits if f.backend == "torch-cpu" and f.cell == "lstm"]
    assert fit.a == pytest.approx(A, rel=1e-9)
    assert fit.b == pytest.approx(B, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0)


def test_fit_line_by_hand():
    fit = fits.fit_line([1, 2, 4], [3.0, 5.0, 9.0])  # exactly 1 + 2x
    assert (fit.a, fit.b, fit.r2) == pytest.approx((1.0, 2.0, 1.0))
    noisy = fits.fit_line([1, 2, 3, 4], [1.0, 2.2, 2.8, 4.1])
    assert noisy.r2 < 1


def test_recurrence_penalty_is_the_ratio_to_the_product(result):
    pens = [p for p in result.penalties if p.cell == "lstm"]
    assert len(pens) == 4
    assert all(p.penalty == pytest.approx(3.0) for p in pens)
    # forward and product were timed round by round in one group: every round's ratio is 3
    assert all(p.penalty_ci == pytest.approx((3.0, 3.0, 3.0)) for p in pens)


def test_medians_carry_their_order_statistic_interval(result):
    # 7 rounds evenly over +-1%: at 95% the interval is (min, max), coverage 1 - 2/128
    row = next(r for r in result.rows if r.id.startswith("torch-cpu/forward/lstm/float32/B1/T64/"))
    median = A + B * 64
    assert row.median_ci == pytest.approx((median, 0.99 * median, 1.01 * median))


def test_peak_share_and_roofline(result):
    (peak,) = result.machine.peaks.values()
    # the best product measured: torch's equal-FLOP product at T=512 (3x the forward's rate)
    best = flops.forward_flops("lstm", 1, 512, 128, 256) / ((A + B * 512) / 3)
    assert peak.flops == pytest.approx(best) and peak.backend == "torch-cpu"
    assert peak.theoretical is None and peak.theoretical_note.startswith("unknown")
    row = next(
        r for r in result.efficiency if r.id.startswith("torch-cpu/forward") and r.steps == 512
    )
    assert row.fraction_of_peak == pytest.approx(1 / 3)
    (roof,) = [r for r in result.roofline if r.fit.cell == "lstm"]
    step = 2 * 4 * 256 * (128 + 256) + 12 * 256  # x.W, h.R and the gate math
    assert roof.bound.compute_bound_s == pytest.approx(step / best)
    # one copy probe of 128 MiB and no cache sizes: the 1 MiB step's level is unknown
    assert roof.bound.memory_bound_s is None and roof.bound.level == "unknown"
    assert roof.bound.limited_by == "compute"
    assert roof.times_bound == pytest.approx(B / (step / best))
    assert result.inconsistencies == []


def test_batch_scaling(result):
    (series,) = result.batch
    relative = [p.relative for p in series.points]
    assert relative == pytest.approx([1.0, 2.0 / 1.25, 5.0 / 1.25])
    # B=1 against itself pairs round by round; B=16 against B=1 (two groups) is a bootstrap
    assert series.points[0].relative_ci == pytest.approx((1.0, 1.0, 1.0))
    _, low, high = series.points[2].relative_ci
    assert 0.99 * 4 / 1.01 <= low < 4 < high <= 1.01 * 4 / 0.99
    assert series.points[2].tokens_per_s == pytest.approx(16 * 64 / 5e-3)


def test_amdahl_by_hand():
    lstm = roofline.amdahl("lstm", 128, 256)
    assert lstm.parallel_share == pytest.approx(128 / (128 + 256))
    assert lstm.max_speedup == pytest.approx(1.5)
    assert roofline.amdahl("mingru", 128, 256).max_speedup == float("inf")


def test_mingru_crossovers(result):
    series = result.mingru
    assert [r.steps for r in series] == [16, 256, 1024]
    assert mingru.first_win(series, "mingru-scan", "gru") == 16
    assert mingru.first_win(series, "mingru-scan", "mingru-loop") == 256


def test_cpu_gpu_crossover_needs_both_devices():
    cpu = example_doc("cpu-box")
    assert measures.analyse(views(cpu)).crossover == []
    gpu = example_doc("gpu-box", scale=0.5)
    retargeted(gpu, "torch-cpu", "torch-cuda")
    cross = measures.analyse(views(cpu, gpu)).crossover
    lstm = [c for c in cross if c.cell == "lstm" and c.batch == 1]
    assert len(lstm) == 4 and all(c.gpu_speedup == pytest.approx(2.0) for c in lstm)
    for c in lstm:  # unpaired (two machines): a bootstrap within the samples' extremes
        _, low, high = c.gpu_speedup_ci
        assert 2 * 0.99 / 1.01 <= low < 2 < high <= 2 * 1.01 / 0.99
    assert all(c.gpu == "torch-cuda@gpu-box" and c.cpu == "torch-cpu@cpu-box" for c in lstm)


def test_mingru_ratios_pair_the_loop_but_not_gru(result):
    row = next(r for r in result.mingru if r.steps == 256)
    # scan and loop share a group (same cell, other mode): per-round ratios, all 8/9
    assert row.scan_over_loop == pytest.approx((8 / 9, 8 / 9, 8 / 9))
    estimate, low, high = row.scan_over_gru  # GRU is another cell: another group
    assert estimate == pytest.approx(8 / 30) and low < estimate < high


def test_a_finding_whose_interval_reaches_one_is_left_out():
    doc = example_doc()
    for record in doc["cases"]:
        case = record["case"]
        if case["mode"] in ("forward", "gemm") and case["cell"] == "lstm":
            # RNN and product both around A + B*T, +-30%, in opposite order round by round:
            # per-round ratios from 0.54 to 1.86, median 1
            samples = spread(A + B * case["steps"], width=0.3)
            record["samples_s"] = samples if case["mode"] == "forward" else samples[::-1]
            record["stats"] = stats.summarize(record["samples_s"])
    found = headline(measures.analyse(views(doc)))
    (pen,) = [f for f in found if f.text.startswith("Recurrence penalty")]
    assert "reaches 1" in pen.unstable
    (stable,) = [f for f in headline(measures.analyse(views(example_doc()))) if "penalty" in f.text]
    assert stable.unstable == "" and "3.00x [3.00, 3.00]" in stable.text
