"""The environment this version records feeds the machine model: the theoretical peak per
thread count and the cache levels come out of what collect_environment wrote."""

from __future__ import annotations

import pytest

from harness.machine import cpu_limits
from harness.machine import facts as machine_env
from harness.machine.environment import collect_environment

CPUINFO = "model name\t: X\ncpu MHz\t\t: 2500.000\nflags\t\t: fpu sse2 avx avx2 fma\n"


def test_theoretical_peak_from_flags_and_clock_by_hand():
    flags = cpu_limits.cpu_flags(CPUINFO)
    mhz, source = cpu_limits.reported_mhz(CPUINFO, sysfs=cpu_limits.Path("/nonexistent"))
    peak = cpu_limits.isa_peak(flags, mhz, source, cores=2)
    # AVX2: 8 float32 lanes x 2 FMA pipes x 2 FLOPs an FMA = 32 a cycle, x 2.5 GHz = 80 GFLOP/s
    assert peak["flops_per_cycle_per_core"] == {"float32": 32, "float64": 16}
    assert peak["gflops"]["2"]["float32"] == pytest.approx(160.0)
    assert cpu_limits.isa_peak(set(), mhz, source, 2) == {"missing": "no vector ISA flags"}


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
