"""The machine model the bounds are drawn from, per (machine, device, dtype, threads):

- compute: the best matrix product measured on it, over every size and library in the results
  (the square `peak` sweep and the RNN-shaped `gemm` baselines alike), named by library and
  size, beside the theoretical peak the environment states (`cpu_peak`), or "unknown";
- memory: the copy bandwidth per working-set size (the `bandwidth` sweep) and the cache sizes
  (`caches`), so that `bandwidth_at(bytes)` answers where a working set of that size lives and
  what bandwidth was measured there.

Old results files lack the sweeps, the caches and `cpu_peak`: then a level or a peak is
"unknown", never guessed."""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from typing import Any

from harness.bench.flops import ITEMSIZE

DRAM = "DRAM"
_LEVELS = (("L1", ("l1d", "l1")), ("L2", ("l2",)), ("L3", ("l3", "llc")))
_PRIVATE = ("L1", "L2")  # per core: a working set split over t threads has t of them
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20}
_UNITS |= {"mib": 2**20, "g": 2**30, "gb": 2**30, "gib": 2**30}
# OpenBLAS kernel names (threadpoolctl's `architecture`) and the vector width they use
KERNEL_BITS = {"skylakex": 512, "cooperlake": 512, "sapphirerapids": 512, "zen": 256}
KERNEL_BITS |= {"haswell": 256, "sandybridge": 128, "nehalem": 128, "prescott": 128}


@dataclasses.dataclass(frozen=True)
class Peak:
    """The best product measured: FLOP/s with its interval, the library and the size."""

    flops: float
    flops_ci: tuple[float, float, float]
    library: str
    size: str
    id: str
    theoretical: float | None  # FLOP/s the environment states, None: unknown
    theoretical_note: str  # where the theoretical figure comes from, or why it is unknown


@dataclasses.dataclass(frozen=True)
class Level:
    """Where a working set lives and the bandwidth measured there (None: unknown)."""

    name: str  # L1 | L2 | L3 | DRAM | unknown
    capacity: int | None  # bytes of that level for the threads used; None for DRAM/unknown
    bandwidth: float | None  # bytes/s
    probe_bytes: int | None  # the working set of the probe that gave it
    note: str


@dataclasses.dataclass(frozen=True)
class Memory:
    curve: tuple[tuple[int, float, str], ...]  # (working-set bytes, best bytes/s, library)
    levels: tuple[tuple[str, int], ...]  # (L1|L2|L3, capacity in bytes for these threads)
    caches_note: str

    def level_of(self, size: int) -> tuple[str, int | None]:
        if not self.levels:
            return "unknown", None
        for name, capacity in self.levels:
            if size <= capacity:
                return name, capacity
        return DRAM, None

    def bandwidth_at(self, size: int) -> Level:
        """The level a working set of `size` bytes lives in and the best copy bandwidth measured
        at that level; without a probe there, the best measured at a faster level (a bound all
        the same: a smaller working set is never served slower); None when nothing bounds it."""
        name, capacity = self.level_of(size)
        same = [p for p in self.curve if name != "unknown" and self.level_of(p[0])[0] == name]
        if same:
            probe = max(same, key=lambda p: p[1])
            note = f"copy probe of {_bytes(probe[0])} ({probe[2]}) in {name}"
            return Level(name, capacity, probe[1], probe[0], note)
        smaller = [p for p in self.curve if p[0] <= size]
        if smaller and name != "unknown":  # the nearest faster level that has probes
            nearest = self.level_of(max(smaller)[0])[0]
            smaller = [p for p in smaller if self.level_of(p[0])[0] == nearest]
        if smaller:
            probe = max(smaller, key=lambda p: p[1])
            note = (
                f"no probe in {name}: the best at or under {_bytes(size)}, "
                f"{_bytes(probe[0])} ({probe[2]})"
            )
            return Level(name, capacity, probe[1], probe[0], note)
        why = "no copy probe with a working set this small"
        if name == "unknown":
            why += " and no cache sizes in the environment"
        return Level(name, capacity, None, None, why)


def _bytes(size: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} B"


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


def cache_levels(env: dict[str, Any], threads: int) -> tuple[tuple[tuple[str, int], ...], str]:
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


def theoretical_peak(env: dict[str, Any], device: str, dtype: str, threads: int):
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
    if all(isinstance(v, int | float) and v > 0 for v in (per_cycle, mhz, cores)):
        used = min(threads, cores)
        value = per_cycle * mhz * 1e6 * used
        return value, f"{peak.get('isa', '?')}: {per_cycle} FLOP/cycle x {mhz} MHz x {used} cores"
    return None, f"unknown (cpu_peak from {source} has no {dtype} figure)"


def _environments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """machine -> its environment (the later file's, as for the timings)."""
    return {doc["environment"].get("machine", "?"): _normalised(doc["environment"]) for doc in docs}


def _normalised(env: dict[str, Any]) -> dict[str, Any]:
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


def _peak_record(peak: dict[str, Any]) -> dict[str, Any]:
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


def _cache_record(caches: list[dict[str, Any]], cores: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cache in caches:
        name = {1: "l1d", 2: "l2", 3: "l3"}.get(cache.get("level"))
        shared = cache.get("shared_by_cpus") or 1
        if name is None or not cache.get("bytes"):
            continue
        total = cache["bytes"] * max(1, (cores or shared) // shared)
        out[name] = {"per_core": cache["bytes"] if shared == 1 else None, "total": total}
    if out:
        out["source"] = "sysfs, as cpu0 sees them"
    return out


def _product_size(row: dict[str, Any]) -> str:
    if row["mode"] == "peak":
        return f"N={row['size']}"
    return (
        f"RNN-shaped product of {row['cell']} B={row['batch']} T={row['steps']} H={row['hidden']}"
    )


def compute_peaks(docs: list[dict], table: list[dict]) -> dict[tuple, Peak]:
    """(machine, device, dtype, threads) -> the best product measured there."""
    envs = _environments(docs)
    best: dict[tuple, dict] = {}
    for row in table:
        if row["mode"] not in ("peak", "gemm") or not row["flops"]:
            continue
        where = (row["machine"], row["device"], row["dtype"], row["threads"])
        if where not in best or row["flops"] / row["median"] > best[where]["rate"]:
            best[where] = {"rate": row["flops"] / row["median"], "row": row}
    out = {}
    for where, found in best.items():
        row = found["row"]
        _, low, high = row["median_ci"]
        theory, note = theoretical_peak(envs.get(where[0], {}), where[1], where[2], where[3])
        out[where] = Peak(
            found["rate"],
            (found["rate"], row["flops"] / high, row["flops"] / low),
            row["target"],
            _product_size(row),
            row["id"],
            theory,
            note,
        )
    return out


def memories(docs: list[dict], table: list[dict]) -> dict[tuple, Memory]:
    """(machine, device, threads) -> the copy-bandwidth curve and the cache levels."""
    envs = _environments(docs)
    curves: dict[tuple, dict[int, tuple[float, str]]] = defaultdict(dict)
    for row in table:
        if row["mode"] != "bandwidth" or not row["bytes"]:
            continue
        where = (row["machine"], row["device"], row["threads"])
        rate = row["bytes"] / row["median"]
        if rate > curves[where].get(row["bytes"], (0.0, ""))[0]:
            curves[where][row["bytes"]] = (rate, row["target"])
    out = {}
    for where in set(curves) | {(m, d, t) for m, d, _, t in _threads_seen(table)}:
        levels, note = cache_levels(envs.get(where[0], {}), where[2])
        if where[1] != "cpu":
            levels, note = (), "GPU memory levels are not modelled"
        curve = tuple(sorted((size, rate, lib) for size, (rate, lib) in curves[where].items()))
        out[where] = Memory(curve, levels, note)
    return out


def _threads_seen(table: list[dict]) -> set[tuple]:
    return {(r["machine"], r["device"], r["dtype"], r["threads"]) for r in table}


def working_set_bytes(cell: str, batch: int, hidden: int, dtype: str) -> int:
    """What one recurrent step of one layer touches at least: R and the states."""
    from harness.bench.flops import GATES

    states = 2 if cell == "lstm" else 1
    return ITEMSIZE[dtype] * (GATES[cell] * hidden * hidden + 2 * states * hidden * batch)


def library_best(table: list[dict]) -> dict[tuple, float]:
    """(machine, device, dtype, threads, library) -> that library's best product FLOP/s."""
    best: dict[tuple, float] = {}
    for row in table:
        if row["mode"] in ("peak", "gemm") and row["flops"]:
            where = (row["machine"], row["device"], row["dtype"], row["threads"], row["target"])
            best[where] = max(best.get(where, 0.0), row["flops"] / row["median"])
    return best


def openblas_note(env: dict[str, Any], model: dict[str, Any], machine: str) -> str:
    """What OPENBLAS_CORETYPE does to NumPy's GEMM here: the setting, the kernel threadpoolctl
    reports and its vector width against the ISA, and NumPy's best product against the
    machine's best."""
    variables = env.get("environment_variables") or {}
    coretype = env.get("openblas_coretype", variables.get("OPENBLAS_CORETYPE"))
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
    text = (
        f"OPENBLAS_CORETYPE {'= ' + coretype if coretype else 'unset'}: threadpoolctl reports "
        f"NumPy's OpenBLAS running its {kernel or 'unknown'} kernels"
    )
    bits = KERNEL_BITS.get(str(kernel).lower())
    isa = str((env.get("cpu_peak") or {}).get("isa") or "")
    if bits:
        text += f" ({bits}-bit vectors{' on an ' + isa + ' CPU' if isa else ''})"
    for (m, device, dtype, threads), peak in sorted(model["peaks"].items()):
        numpy_best = model["library_best"].get((m, device, dtype, threads, "numpy"))
        if m == machine and device == "cpu" and numpy_best:
            text += (
                f"; {dtype}, {threads} thread{'s' if threads > 1 else ''}: NumPy's best product "
                f"{numpy_best / 1e9:.0f} GFLOP/s, {numpy_best / peak.flops:.0%} of the "
                f"machine's best ({peak.library}, {peak.size})"
            )
    return text + "."


def model(docs: list[dict], table: list[dict]) -> dict[str, Any]:
    """The machine model of every machine in the results: peaks, per-library bests, memory,
    and a sentence per machine on NumPy's OpenBLAS kernel."""
    out = {
        "peaks": compute_peaks(docs, table),
        "library_best": library_best(table),
        "memory": memories(docs, table),
    }
    envs = _environments(docs)
    out["openblas"] = {m: openblas_note(env, out, m) for m, env in sorted(envs.items())}
    return out
