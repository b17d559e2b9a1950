"""What the machine says about its own limits: the vector ISA, the clock and the caches, and
the theoretical peak they give. Recorded beside what the probes measure; where the machine
does not tell (a VM that hides its clock, a non-Linux system), the record says so. The clock is
the higher of the one reported and the one measured (clock.py): a VM's reported clock is often
its base clock, below what boost runs at."""

from __future__ import annotations

from pathlib import Path

from harness.json_values import JsonObject
from harness.machine.clock import measured_mhz

# float32 lanes of one FMA instruction on the widest vector unit the flags name
SIMD_LANES32 = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("sse2", 4))
# Two FMA pipes a core: AMD Zen 2-5 and Intel server cores since Skylake-SP. An assumption,
# stated in the record: a core with one pipe has half this peak.
FMA_PIPES = 2


def cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def reported_mhz(cpuinfo: str, sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cpufreq")):
    """(MHz, where it came from): the cpufreq maximum if the kernel has one, else the clock
    /proc/cpuinfo reports (in a VM often the base clock: boost runs faster)."""
    try:
        return int((sysfs / "cpuinfo_max_freq").read_text()) / 1000, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    for line in cpuinfo.splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":", 1)[1]), "/proc/cpuinfo cpu MHz (boost clocks beat it)"
    return None, "no clock reported"


def isa_peak(flags: set[str], mhz: float | None, source: str, cores: int) -> dict:
    """GFLOP/s per core and for each thread count up to `cores`, float32 and float64."""
    lanes = next((n for flag, n in SIMD_LANES32 if flag in flags), None)
    if lanes is None or mhz is None:
        return {"missing": "no vector ISA flags" if lanes is None else source}
    fma = "fma" in flags or "avx512f" in flags
    per_cycle = {"float32": lanes * FMA_PIPES * (2 if fma else 1)}
    per_cycle["float64"] = per_cycle["float32"] // 2
    per_core = {k: v * mhz / 1e3 for k, v in per_cycle.items()}
    return {
        "isa": next(flag for flag, n in SIMD_LANES32 if flag in flags),
        "fma": fma,
        "fma_pipes_assumed": FMA_PIPES,
        "mhz": mhz,
        "clock_source": source,
        "flops_per_cycle_per_core": per_cycle,
        "gflops_per_core": per_core,
        "gflops": {str(n): {k: v * n for k, v in per_core.items()} for n in range(1, cores + 1)},
    }


def caches(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> list[JsonObject]:
    """Data and unified caches seen from cpu0: level, size in bytes, and how many logical
    CPUs share each instance."""
    out = []
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            if kind == "Instruction":
                continue
            size = _bytes((index / "size").read_text().strip())
            shared = _count_cpus((index / "shared_cpu_list").read_text().strip())
            level = int((index / "level").read_text())
        except (OSError, ValueError):
            continue
        out.append({"level": level, "type": kind, "bytes": size, "shared_by_cpus": shared})
    return out


def _bytes(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def _count_cpus(text: str) -> int:
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def collect_cpu_limits(cores: int) -> JsonObject:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {"peak": {"missing": "no /proc/cpuinfo"}, "caches": []}
    flags = cpu_flags(cpuinfo)
    mhz, source = reported_mhz(cpuinfo)
    measured, how = measured_mhz()
    clock = {"reported_mhz": mhz, "reported_from": source, "measured_mhz": measured, "how": how}
    if measured is not None and (mhz is None or measured > mhz):
        mhz, source = measured, f"{how} (above the {clock['reported_from']}: {mhz} MHz)"
    return {"peak": isa_peak(flags, mhz, source, cores), "caches": caches(), "clock": clock}
