"""What the results' environment records say about a machine, in the form the machine model
(harness/machine/model.py) takes: the theoretical peak the environment states (`cpu_peak`),
the cache sizes (`caches`) per thread count, and NumPy's OpenBLAS kernel. The engine's
`cpu_limits` and `numpy_gemm` records are normalised into that form first. What an old results
file lacks is "unknown", never guessed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from harness.json_values import JsonObject

_LEVELS = (("L1", ("l1d", "l1")), ("L2", ("l2",)), ("L3", ("l3", "llc")))
_PRIVATE = ("L1", "L2")  # per core: a working set split over t threads has t of them
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20}
_UNITS |= {"mib": 2**20, "g": 2**30, "gb": 2**30, "gib": 2**30}
# OpenBLAS kernel names (threadpoolctl's `architecture`) and the vector width they use
KERNEL_BITS = {"skylakex": 512, "cooperlake": 512, "sapphirerapids": 512, "zen": 256}
KERNEL_BITS |= {"haswell": 256, "sandybridge": 128, "nehalem": 128, "prescott": 128}


def parse_size(value: Any) -> int | None:
    """Bytes from an int or a string such as '48 KiB', '1M', '32 MiB (1 instance)'."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if value > 0 else None
    if isinstance(value, str):
        match = re.match(r"\s*([\d.]+)\s*([a-zA-Z]*)", value)
        if match and match.group(2).lower() in _UNITS:
            return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return None


def cache_levels(env: JsonObject, threads: int) -> tuple[tuple[tuple[str, int], ...], str]:
    """(L1|L2|L3, bytes usable by `threads` threads) from environment["caches"], and a note.
    A level is {per_core, total} (bytes or '48 KiB'-like strings) or one size (total). The
    private levels (L1, L2) give each thread its own; L3 is shared."""
    caches = env.get("caches")
    if not isinstance(caches, dict) or not caches:
        reason = caches.get("missing") if isinstance(caches, dict) else None
        return (), f"cache sizes unknown ({reason or 'not in the environment'})"
    lowered = {str(k).lower(): v for k, v in caches.items()}
    levels = []
    for name, keys in _LEVELS:
        entry = next((lowered[k] for k in keys if k in lowered), None)
        size = _level_bytes(entry, name, threads)
        if size:
            levels.append((name, size))
    source = caches.get("source", "the environment")
    return tuple(levels), f"caches from {source}" if levels else "cache sizes unreadable"


def _level_bytes(entry: Any, name: str, threads: int) -> int | None:
    if isinstance(entry, dict):
        per_core = parse_size(entry.get("per_core", entry.get("per_core_bytes")))
        total = parse_size(entry.get("total", entry.get("total_bytes")))
        if name in _PRIVATE and per_core:
            return per_core * threads if not total else min(per_core * threads, total)
        return total or per_core
    return parse_size(entry)


def theoretical_peak(env: JsonObject, device: str, dtype: str, threads: int):
    """(FLOP/s or None, where it comes from or why it is unknown) from environment["cpu_peak"]:
    theoretical_gflops[dtype][threads] when given, else flops_per_cycle x max_mhz x cores."""
    if device != "cpu":
        return None, "unknown (the environment states no GPU peak)"
    peak = env.get("cpu_peak")
    if not isinstance(peak, dict) or not peak or "missing" in peak:
        reason = peak.get("missing") if isinstance(peak, dict) else None
        return None, f"unknown ({reason or 'the environment states no cpu_peak'})"
    source = peak.get("source", "cpu_peak")
    by_threads = (peak.get("theoretical_gflops") or {}).get(dtype)
    if isinstance(by_threads, dict):
        value = by_threads.get(str(threads), by_threads.get(threads))
        if isinstance(value, int | float) and value > 0:
            return value * 1e9, f"{peak.get('isa', '?')}, {source}"
    per_cycle = (peak.get("flops_per_cycle") or {}).get(dtype)
    mhz, cores = peak.get("max_mhz"), peak.get("cores")
    numbers = [v for v in (per_cycle, mhz, cores) if isinstance(v, int | float) and v > 0]
    if len(numbers) == 3:
        per_cycle, mhz, cores = numbers
        used = min(threads, cores)
        value = per_cycle * mhz * 1e6 * used
        return value, f"{peak.get('isa', '?')}: {per_cycle} FLOP/cycle x {mhz} MHz x {used} cores"
    return None, f"unknown (cpu_peak from {source} has no {dtype} figure)"


def environments(labelled: Iterable[tuple[str, JsonObject]]) -> dict[str, JsonObject]:
    """machine -> its environment (the later one of a label, as for the timings), from
    (label, environment as recorded) pairs."""
    return {machine: _normalised(environment) for machine, environment in labelled}


def _normalised(env: JsonObject) -> JsonObject:
    """The engine's `cpu_limits` and `numpy_gemm` records in the form the readers here take:
    cpu_peak {isa, theoretical_gflops {dtype: {threads: GFLOP/s}}, source}, caches {l1d, l2,
    l3: {per_core, total}}, openblas_coretype, numpy_gemm_kernel."""
    limits, out = env.get("cpu_limits"), dict(env)
    if not isinstance(limits, dict):
        return env
    out["cpu_peak"] = _peak_record(limits.get("peak") or {"missing": "no peak recorded"})
    caches = _cache_record(limits.get("caches") or [], (env.get("cpu") or {}).get("usable_cores"))
    if caches:
        out["caches"] = caches
    gemm = env.get("numpy_gemm") or {}
    out.setdefault("openblas_coretype", gemm.get("openblas_coretype"))
    if gemm.get("kernel"):
        out.setdefault("numpy_gemm_kernel", gemm["kernel"])
    return out


def _peak_record(peak: JsonObject) -> JsonObject:
    if "missing" in peak:
        return {"missing": peak["missing"]}
    by_dtype: dict[str, dict[str, float]] = {}
    for threads, rates in (peak.get("gflops") or {}).items():
        for dtype, value in rates.items():
            by_dtype.setdefault(dtype, {})[str(threads)] = value
    source = (
        f"{peak.get('flops_per_cycle_per_core', {}).get('float32')} float32 FLOP/cycle a core "
        f"({peak.get('fma_pipes_assumed')} FMA pipes assumed) x {peak.get('mhz')} MHz from "
        f"{peak.get('clock_source')}"
    )
    return {"isa": peak.get("isa"), "theoretical_gflops": by_dtype, "source": source}


def _cache_record(caches: list[JsonObject], cores: int | None) -> JsonObject:
    out: JsonObject = {}
    for cache in caches:
        name = {1: "l1d", 2: "l2", 3: "l3"}.get(cache.get("level") or 0)
        shared = cache.get("shared_by_cpus") or 1
        if name is None or not cache.get("bytes"):
            continue
        total = cache["bytes"] * max(1, (cores or shared) // shared)
        out[name] = {"per_core": cache["bytes"] if shared == 1 else None, "total": total}
    if out:
        out["source"] = "sysfs, as cpu0 sees them"
    return out


def numpy_kernel(env: JsonObject) -> Any:
    """The OpenBLAS kernel NumPy's GEMM runs, as the environment records it (None: unknown)."""
    kernel = env.get("numpy_gemm_kernel") or next(
        (
            b.get("architecture")
            for b in env.get("blas") or []
            if b.get("internal_api") == "openblas"
        ),
        None,
    )
    if isinstance(kernel, dict):
        kernel = kernel.get("architecture") or kernel.get("kernel")
    return kernel
