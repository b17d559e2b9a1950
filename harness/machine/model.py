"""The machine model the bounds are drawn from, per (machine, device, dtype, threads):

- compute: the best matrix product measured on it, over every size and library in the results
  (the square `peak` sweep and the RNN-shaped `gemm` baselines alike), named by library and
  size, beside the theoretical peak the environment states (`cpu_peak`), or "unknown";
- memory: the copy bandwidth per working-set size (the `bandwidth` sweep) and the cache sizes
  (`caches`), so that `bandwidth_at(bytes)` answers where a working set of that size lives and
  what bandwidth was measured there.

Old results files lack the sweeps, the caches and `cpu_peak`: then a level or a peak is
"unknown", never guessed. What the environment states is read in
harness/machine/facts.py."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from harness import registry
from harness.json_values import JsonObject
from harness.machine.facts import KERNEL_BITS, cache_levels, numpy_kernel, theoretical_peak
from harness.model.flops import ITEMSIZE

DRAM = "DRAM"
PeakKey = tuple[str, str, str, int]  # (machine, device, dtype, threads)
MemoryKey = tuple[str, str, int]  # (machine, device, threads)
Environments = dict[str, JsonObject]  # machine -> its environment (facts.environments)


class TimedRow(Protocol):
    """What the machine model reads of a timed case (harness.analysis.rows.TimedRow)."""

    @property
    def id(self) -> str: ...
    @property
    def machine(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def device(self) -> str | None: ...
    @property
    def dtype(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @property
    def cell(self) -> str: ...
    @property
    def batch(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def hidden(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def flops(self) -> float | None: ...
    @property
    def bytes(self) -> float | None: ...
    @property
    def median(self) -> float: ...
    @property
    def median_ci(self) -> tuple[float, float, float]: ...


@dataclasses.dataclass(frozen=True)
class Peak:
    """The best product measured: FLOP/s with its interval, the backend and the size."""

    flops: float
    flops_ci: tuple[float, float, float]
    backend: str
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
class Probe:
    """One copy probe: what it moved a second, and on how many threads."""

    size: int  # working-set bytes (source and destination)
    rate: float  # bytes/s, read + write, the probe's median
    backend: str
    copy_threads: int  # threads the copy ran on (registry.copy_threads)

    @property
    def per_thread(self) -> float:
        return self.rate / self.copy_threads


@dataclasses.dataclass(frozen=True)
class Memory:
    """The bandwidth bound for work on `threads` threads. From each probe it takes what one
    thread moved and allows `threads` times that (n threads never move more than n times what
    one moves), and at each working set the best of the probes at that size or larger (a
    smaller working set is never served slower): both only raise the bandwidth, so a bound
    drawn from it stays a bound when a probe was slowed by call overhead or ran on fewer
    threads than the work it bounds."""

    probes: tuple[Probe, ...]  # sorted by working set
    threads: int
    levels: tuple[tuple[str, int], ...]  # (L1|L2|L3, capacity in bytes for these threads)
    caches_note: str

    @property
    def curve(self) -> tuple[tuple[int, float, str], ...]:
        """(working-set bytes, bound bytes/s at these threads, the probe that gives it)."""
        out = []
        for probe in self.probes:
            best = max((p for p in self.probes if p.size >= probe.size), key=_per_thread)
            out.append((probe.size, best.per_thread * self.threads, best.backend))
        return tuple(out)

    def level_of(self, size: int) -> tuple[str, int | None]:
        if not self.levels:
            return "unknown", None
        for name, capacity in self.levels:
            if size <= capacity:
                return name, capacity
        return DRAM, None

    def bandwidth_at(self, size: int) -> Level:
        """The level a working set of `size` bytes lives in and its bandwidth bound: from the
        smallest probe in that level (its bound already the best of every larger probe), else
        from the nearest probe under `size` (a faster level: a bound all the same); None when
        no probe is that small (a larger one's bandwidth does not bound a faster level)."""
        name, capacity = self.level_of(size)
        curve = self.curve
        same = [p for p in curve if name != "unknown" and self.level_of(p[0])[0] == name]
        under = [p for p in curve if p[0] <= size]
        if not same and not under:
            why = "no copy probe with a working set this small"
            if name == "unknown":
                why += " and no cache sizes in the environment"
            return Level(name, capacity, None, None, why)
        probe_size, rate, library = min(same) if same else max(under)
        where = "" if same else f" (no probe in {name})"
        note = (
            f"copy probes of {_bytes(probe_size)} and larger{where}, best {library}, "
            f"{_threads_note(self.threads)}"
        )
        return Level(name, capacity, rate, probe_size, note)


def _per_thread(probe: Probe) -> float:
    return probe.per_thread


def _threads_note(threads: int) -> str:
    return "one thread's bandwidth" if threads == 1 else f"one thread's bandwidth x {threads}"


def _bytes(size: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} B"


def _product_size(row: TimedRow) -> str:
    if row.mode == "peak":
        return f"N={row.size}"
    return f"RNN-shaped product of {row.cell} B={row.batch} T={row.steps} H={row.hidden}"


def compute_peaks(envs: Environments, table: Sequence[TimedRow]) -> dict[PeakKey, Peak]:
    """(machine, device, dtype, threads) -> the best product measured there."""
    best: dict[PeakKey, tuple[float, TimedRow]] = {}
    for row in table:
        if row.mode not in ("peak", "gemm") or not row.flops:
            continue
        where = (row.machine, row.device or "", row.dtype, row.threads)
        if where not in best or row.flops / row.median > best[where][0]:
            best[where] = (row.flops / row.median, row)
    out = {}
    for where, (rate, row) in best.items():
        _, low, high = row.median_ci
        flops = row.flops or 0.0
        theory, note = theoretical_peak(envs.get(where[0], {}), where[1], where[2], where[3])
        out[where] = Peak(
            rate,
            (rate, flops / high, flops / low),
            row.backend,
            _product_size(row),
            row.id,
            theory,
            note,
        )
    return out


def memories(envs: Environments, table: Sequence[TimedRow]) -> dict[MemoryKey, Memory]:
    """(machine, device, threads) -> the copy probes of that machine and device, and the cache
    levels for those threads, for every thread count its cases ran at."""
    probes: dict[tuple[str, str], dict[int, Probe]] = defaultdict(dict)
    for row in table:
        if row.mode != "bandwidth" or not row.bytes:
            continue
        copied = registry.copy_threads(row.backend, row.size, row.threads)
        probe = Probe(int(row.bytes), row.bytes / row.median, row.backend, copied)
        kept = probes[(row.machine, row.device or "")].get(probe.size)
        if kept is None or probe.per_thread > kept.per_thread:
            probes[(row.machine, row.device or "")][probe.size] = probe
    out = {}
    for machine, device, _, threads in _threads_seen(table):
        levels, note = cache_levels(envs.get(machine, {}), threads)
        if device != "cpu":
            levels, note = (), "GPU memory levels are not modelled"
        found = tuple(sorted(probes[(machine, device)].values(), key=lambda p: p.size))
        out[(machine, device, threads)] = Memory(found, threads, levels, note)
    return out


def _threads_seen(table: Sequence[TimedRow]) -> set[PeakKey]:
    return {(r.machine, r.device or "", r.dtype, r.threads) for r in table}


def working_set_bytes(cell: str, batch: int, hidden: int, dtype: str) -> int:
    """What one recurrent step of one layer touches at least: R and the states."""
    from harness.model.flops import GATES

    states = 2 if cell == "lstm" else 1
    return ITEMSIZE[dtype] * (GATES[cell] * hidden * hidden + 2 * states * hidden * batch)


def library_best(table: Sequence[TimedRow]) -> dict[tuple[str, str, str, int, str], float]:
    """(machine, device, dtype, threads, backend) -> that backend's best product FLOP/s."""
    best: dict[tuple[str, str, str, int, str], float] = {}
    for row in table:
        if row.mode in ("peak", "gemm") and row.flops:
            where = (row.machine, row.device or "", row.dtype, row.threads, row.backend)
            best[where] = max(best.get(where, 0.0), row.flops / row.median)
    return best


@dataclasses.dataclass(frozen=True)
class MachineModel:
    """Every machine in the results: its best products (peaks), each backend's best product,
    its copy bandwidth per thread count (memory), and a sentence per machine on NumPy's
    OpenBLAS kernel."""

    peaks: dict[PeakKey, Peak]
    library_best: dict[tuple[str, str, str, int, str], float]
    memory: dict[MemoryKey, Memory]
    openblas: dict[str, str]


def model(envs: Environments, table: Sequence[TimedRow]) -> MachineModel:
    """The machine model of every machine in the results; envs: facts.environments."""
    peaks, best = compute_peaks(envs, table), library_best(table)
    return MachineModel(
        peaks,
        best,
        memories(envs, table),
        {m: openblas_note(env, peaks, best, m) for m, env in sorted(envs.items())},
    )


def openblas_note(
    env: JsonObject,
    peaks: dict[PeakKey, Peak],
    library_best: dict[tuple[str, str, str, int, str], float],
    machine: str,
) -> str:
    """What OPENBLAS_CORETYPE does to NumPy's GEMM here: the setting, the kernel threadpoolctl
    reports and its vector width against the ISA, and NumPy's best product against the
    machine's best."""
    variables = env.get("environment_variables") or {}
    coretype = env.get("openblas_coretype", variables.get("OPENBLAS_CORETYPE"))
    kernel = numpy_kernel(env)
    text = (
        f"OPENBLAS_CORETYPE {'= ' + coretype if coretype else 'unset'}: threadpoolctl reports "
        f"NumPy's OpenBLAS running its {kernel or 'unknown'} kernels"
    )
    bits = KERNEL_BITS.get(str(kernel).lower())
    isa = str((env.get("cpu_peak") or {}).get("isa") or "")
    if bits:
        text += f" ({bits}-bit vectors{' on an ' + isa + ' CPU' if isa else ''})"
    for (m, device, dtype, threads), peak in sorted(peaks.items()):
        numpy_best = library_best.get((m, device, dtype, threads, registry.REFERENCE))
        if m == machine and device == "cpu" and numpy_best:
            text += (
                f"; {dtype}, {threads} thread{'s' if threads > 1 else ''}: NumPy's best product "
                f"{numpy_best / 1e9:.0f} GFLOP/s, {numpy_best / peak.flops:.0%} of the "
                f"machine's best ({peak.backend}, {peak.size})"
            )
    return text + "."
