"""The analysis against made-up results whose answers are known exactly."""

from __future__ import annotations

import pytest

from harness.analysis import measures as analysis
from harness.bench import flops
from tests.synthetic_results import A, B, example_doc


@pytest.fixture(scope="module")
def result():
    return analysis.analyse([example_doc()])


def test_fit_recovers_a_and_b(result):
    (fit,) = [f for f in result["fits"] if f["target"] == "torch-cpu" and f["cell"] == "lstm"]
    assert fit["a"] == pytest.approx(A, rel=1e-9)
    assert fit["b"] == pytest.approx(B, rel=1e-9)
    assert fit["r2"] == pytest.approx(1.0)


def test_fit_line_by_hand():
    fit = analysis.fit_line([1, 2, 4], [3.0, 5.0, 9.0])  # exactly 1 + 2x
    assert (fit["a"], fit["b"], fit["r2"]) == pytest.approx((1.0, 2.0, 1.0))
    noisy = analysis.fit_line([1, 2, 3, 4], [1.0, 2.2, 2.8, 4.1])
    assert noisy["r2"] < 1


def test_recurrence_penalty_is_the_ratio_to_the_product(result):
    pens = [p for p in result["penalties"] if p["cell"] == "lstm"]
    assert len(pens) == 4
    assert all(p["penalty"] == pytest.approx(3.0) for p in pens)


def test_peak_share_and_roofline(result):
    (peak,) = result["peaks"].values()
    assert peak["flops"] == pytest.approx(100e9) and peak["bytes"] == pytest.approx(20e9)
    row = next(
        r
        for r in result["efficiency"]
        if r["id"].startswith("torch-cpu/forward") and r["steps"] == 512
    )
    achieved = flops.forward_flops("lstm", 1, 512, 128, 256) / (A + B * 512)
    assert row["fraction_of_peak"] == pytest.approx(achieved / 100e9)
    (roof,) = [r for r in result["roofline"] if r["cell"] == "lstm"]
    step_bytes = 4 * (4 * 256 * 256 + 4 * 256 + 2 * 2 * 256)
    assert roof["memory_bound_s"] == pytest.approx(step_bytes / 20e9)
    assert roof["compute_bound_s"] == pytest.approx(2 * 4 * 256 * 256 / 100e9)
    assert roof["limited_by"] == "memory"
    assert roof["times_bound"] == pytest.approx(B / (step_bytes / 20e9))


def test_batch_scaling(result):
    (series,) = result["batch"]
    relative = [p["relative"] for p in series["points"]]
    assert relative == pytest.approx([1.0, 2.0 / 1.25, 5.0 / 1.25])
    assert series["points"][2]["tokens_per_s"] == pytest.approx(16 * 64 / 5e-3)


def test_amdahl_by_hand():
    lstm = analysis.amdahl("lstm", 128, 256)
    assert lstm["parallel_share"] == pytest.approx(128 / (128 + 256))
    assert lstm["max_speedup"] == pytest.approx(1.5)
    assert analysis.amdahl("mingru", 128, 256)["max_speedup"] == float("inf")


def test_mingru_crossovers(result):
    series = result["mingru"]
    assert [r["steps"] for r in series] == [16, 256, 1024]
    assert analysis.first_win(series, "mingru-scan", "gru") == 16
    assert analysis.first_win(series, "mingru-scan", "mingru-loop") == 256


def test_cpu_gpu_crossover_needs_both_devices():
    cpu = example_doc("cpu-box")
    assert analysis.analyse([cpu])["crossover"] == []
    gpu = example_doc("gpu-box", scale=0.5)
    for record in gpu["cases"]:
        record["case"]["target"] = record["case"]["target"].replace("cpu", "cuda")
    cross = analysis.analyse([cpu, gpu])["crossover"]
    lstm = [c for c in cross if c["cell"] == "lstm" and c["batch"] == 1]
    assert len(lstm) == 4 and all(c["gpu_speedup"] == pytest.approx(2.0) for c in lstm)
    assert all(c["gpu"] == "torch-cuda@gpu-box" and c["cpu"] == "torch-cpu@cpu-box" for c in lstm)
