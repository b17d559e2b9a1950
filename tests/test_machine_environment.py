"""The environment this version records feeds the machine model: the theoretical peak per
thread count and the cache levels come out of what collect_environment wrote."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.machine import cpu_limits
from harness.machine import facts as machine_env
from harness.machine.environment import (
    NO_GPU_PROBE,
    NOT_PROBED,
    collect_environment,
    collect_gpu,
    differences,
    gpu_label,
)
from harness.records.results import Environment

CPUINFO = "model name\t: X\ncpu MHz\t\t: 2500.000\nflags\t\t: fpu sse2 avx avx2 fma\n"


def test_theoretical_peak_from_flags_and_clock_by_hand():
    flags = cpu_limits.cpu_flags(CPUINFO)
    mhz, source = cpu_limits.reported_mhz(CPUINFO, sysfs=cpu_limits.Path("/nonexistent"))
    peak = cpu_limits.isa_peak(flags, mhz, source, cores=2)
    # AVX2: 8 float32 lanes x 2 FMA pipes x 2 FLOPs an FMA = 32 a cycle, x 2.5 GHz = 80 GFLOP/s
    assert peak["flops_per_cycle_per_core"] == {"float32": 32, "float64": 16}
    assert peak["gflops"]["2"]["float32"] == pytest.approx(160.0)
    assert cpu_limits.isa_peak(set(), mhz, source, 2) == {"missing": "no vector ISA flags"}


def test_the_clock_measured_by_a_chain_of_additions_is_a_clock():
    """The chain of dependent additions (clock.c) gives a clock between 0.5 and 6 GHz, and one
    at least near the one the machine reports where that is a maximum (cpufreq)."""
    from harness.machine.clock import measured_mhz

    mhz, how = measured_mhz()
    if mhz is None:
        pytest.skip(how)
    assert 500 < mhz < 6000, how
    assert "dependent integer additions" in how


def test_the_peak_takes_the_higher_of_the_clock_reported_and_the_one_measured(monkeypatch):
    cpuinfo = (
        cpu_limits.Path("/proc/cpuinfo").read_text()
        if cpu_limits.Path("/proc/cpuinfo").exists()
        else ""
    )
    reported, source = cpu_limits.reported_mhz(cpuinfo)
    if reported is None or "avx" not in cpuinfo:
        pytest.skip(f"this machine reports no clock or no AVX: {source}")
    monkeypatch.setattr(cpu_limits, "measured_mhz", lambda: (reported * 1.5, "measured: chain"))
    above = cpu_limits.collect_cpu_limits(2)
    assert above["peak"]["mhz"] == pytest.approx(reported * 1.5)
    assert above["peak"]["clock_source"].startswith("measured: chain (above the ")
    assert above["clock"]["reported_mhz"] == reported
    monkeypatch.setattr(cpu_limits, "measured_mhz", lambda: (reported * 0.5, "measured: chain"))
    below = cpu_limits.collect_cpu_limits(2)
    assert below["peak"]["mhz"] == reported and below["peak"]["clock_source"] == source
    assert below["clock"]["measured_mhz"] == pytest.approx(reported * 0.5)
    monkeypatch.setattr(cpu_limits, "measured_mhz", lambda: (None, "no C compiler"))
    none = cpu_limits.collect_cpu_limits(2)
    assert none["peak"]["mhz"] == reported and none["clock"]["how"] == "no C compiler"


def test_this_machines_record_reaches_the_machine_model():
    env = machine_env._normalised({**collect_environment(), "machine": "here"})
    limits = collect_environment()["cpu_limits"]
    if "missing" in limits["peak"] or not limits["caches"]:
        pytest.skip(f"this machine does not tell its limits: {limits}")
    value, note = machine_env.theoretical_peak(env, "cpu", "float32", 1)
    assert value == pytest.approx(limits["peak"]["gflops"]["1"]["float32"] * 1e9)
    assert limits["peak"]["isa"] in note
    levels, _ = machine_env.cache_levels(env, 1)
    names = [name for name, _ in levels]
    assert names[0] == "L1" and sorted(size for _, size in levels) == [s for _, s in levels]


def test_the_gpu_probe_asks_torch(monkeypatch):
    """The probe itself, which the rest of the suite skips (tests/conftest.py)."""
    monkeypatch.delenv(NO_GPU_PROBE)
    torch = pytest.importorskip("torch", reason="the GPU probe asks torch")
    gpu = collect_gpu()
    if not torch.cuda.is_available():
        assert gpu is None and gpu_label(gpu) == "none"
        return
    assert gpu["name"] == torch.cuda.get_device_name(0) == gpu_label(gpu)
    assert gpu["count"] == torch.cuda.device_count() and gpu["memory_gib"] > 0


PROBE_SKIPPED = """
import json, sys
from harness.machine.environment import collect_environment
print(json.dumps({"gpu": collect_environment()["gpu"], "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize("value", ["1", "yes"])
def test_a_run_told_not_to_probe_says_not_probed_without_importing_torch(value, monkeypatch):
    monkeypatch.setenv(NO_GPU_PROBE, value)
    done = subprocess.run(
        [sys.executable, "-c", PROBE_SKIPPED], capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout)
    assert seen == {"gpu": NOT_PROBED, "torch": False}
    assert gpu_label(seen["gpu"]) == "not probed"
    recorded = Environment.model_validate({**collect_environment(), "gpu": seen["gpu"]})
    assert recorded.gpu == NOT_PROBED


@pytest.mark.parametrize("value", ["", "0"])
def test_an_empty_or_zero_switch_probes(value, monkeypatch):
    monkeypatch.setenv(NO_GPU_PROBE, value)
    pytest.importorskip("torch", reason="the GPU probe asks torch")
    assert gpu_label(collect_gpu()) != "not probed"


def test_a_gpu_not_probed_is_unknown_not_none():
    """Two runs differ when one did not look for a GPU: unknown is neither none nor a name."""
    base = {"cpu": {"model": "X", "logical_cores": 2}, "libraries": {}}
    none, unknown = {**base, "gpu": None}, {**base, "gpu": dict(NOT_PROBED)}
    a100 = {**base, "gpu": {"name": "A100"}}
    assert differences(none, unknown) == ["gpu: none -> not probed"]
    assert differences(unknown, a100) == ["gpu: not probed -> A100"]
    assert differences(unknown, {**base, "gpu": dict(NOT_PROBED)}) == []
    assert differences(a100, {**base, "gpu": {"name": "A100", "driver": "1"}}) == []
