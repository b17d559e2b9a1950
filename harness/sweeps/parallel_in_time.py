"""The parallel-in-time sweep: how many Newton / quasi-Newton iterations each cell needs against
T and against its largest Lyapunov exponent (R scaled by a gain), with the work and depth they
cost (parallel_in_time_work.py). Iteration counts and exponents are deterministic properties
of a model on given inputs, not timings: each solve runs once, in float64, in this process, on
NumPy.

Every row is reproducible alone: `rnnbench parallel-in-time --cell C --hidden H --input I
--steps T --batch B --gain G --seed S --method M --max-iter N` builds the same weights
(init_weights(spec, seed), R x gain) and inputs (N(0, 1) from seed + 1).

A row is "solved" (converged or not: iterations null and the reason when not) or "skipped"
(dense Newton over the grid's dense_limit_mib or dense_limit_gflop, or the solver's own
limit), with the reason. Converged rows are held to the sequential float64 run (max_abs_error,
parity_passed): near LLE = 0 the change between iterates can fall under tol while the iterate
is still off the sequential run (a slow contraction), and such a row says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness import registry
from harness.json_values import JsonObject, nulls_for_nonfinite
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, ModelSpec, SpecError, tomllib
from harness.model.weights import init_weights
from harness.parity.checks import compare_with_sequential
from harness.records.parallel_in_time import SweepDocument
from harness.sweeps import iteration_law
from harness.sweeps import parallel_in_time_work as counts

CELLS = ("rnn", "lstm", "gru")


class SweepError(SpecError):
    """A bad sweep grid or document: one line, exit 2."""


@dataclasses.dataclass(frozen=True)
class Grid:
    """Cells x methods x (hidden x steps, and wide_hidden x wide_steps) at gain 1, and cells x
    methods x gains at gain_steps and gain_hidden. max_iter per method. Dense Newton is skipped
    where its Jacobians (3 arrays of [T, B, N, N] float64) would exceed dense_limit_mib, or one
    iteration's [N x N] compositions (2 T B N^3 FLOPs) dense_limit_gflop: NumPy's stacked
    small products run at about 1 GFLOP/s on 2 cores."""

    cells: tuple[str, ...] = CELLS
    methods: tuple[str, ...] = counts.METHODS
    hidden: tuple[int, ...] = (32,)
    steps: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096, 16384)
    wide_hidden: tuple[int, ...] = (128,)
    wide_steps: tuple[int, ...] = (1, 4, 16, 64, 256, 1024, 4096)
    gains: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
    gain_steps: int = 1024
    gain_hidden: int = 32
    input_size: int = 8
    batch: int = 2
    seed: int = 0
    tol: float = 1e-12
    max_iter: tuple[tuple[str, int], ...] = (("newton", 50), ("quasi-newton", 1000))
    dense_limit_mib: int = 1024
    dense_limit_gflop: float = 2.2

    def __post_init__(self) -> None:
        for name, allowed in (("cells", CELLS), ("methods", counts.METHODS)):
            values = getattr(self, name)
            if not values or any(v not in allowed for v in values):
                raise SweepError(f"{name} = {list(values)}: allowed a list of {', '.join(allowed)}")
        for name in ("hidden", "steps", "wide_hidden", "wide_steps", "gain_steps", "gain_hidden"):
            values = getattr(self, name)
            for v in values if isinstance(values, tuple) else (values,):  # empty: none
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise SweepError(f"{name} = {values!r}: allowed integers >= 1")
        if (
            any(not _is_finite_number(g) for g in self.gains)
            or not _is_finite_number(self.tol)
            or self.tol < 0
        ):
            raise SweepError(f"gains {list(self.gains)}, tol {self.tol!r}: allowed finite numbers")
        limits = dict(self.max_iter)
        if set(limits) != set(counts.METHODS) or any(
            not isinstance(n, int) or n < 1 for n in limits.values()
        ):
            raise SweepError(f"max_iter = {limits}: allowed an integer >= 1 for each method")
        for name, least in (("input_size", 1), ("batch", 1), ("seed", 0), ("dense_limit_mib", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise SweepError(f"{name} = {value!r}: allowed an integer >= {least}")
        if not _is_finite_number(self.dense_limit_gflop) or self.dense_limit_gflop <= 0:
            raise SweepError(
                f"dense_limit_gflop = {self.dense_limit_gflop!r}: allowed a number > 0"
            )

    def as_dict(self) -> JsonObject:
        return {**dataclasses.asdict(self), "max_iter": dict(self.max_iter)}

    def points(self) -> list[tuple[str, str, str, int, int, float]]:
        """(grid, cell, method, H, T, gain) in run order; T-grid first."""
        sizes = [(h, t) for h in self.hidden for t in self.steps]
        sizes += [(h, t) for h in self.wide_hidden for t in self.wide_steps]
        out = [
            ("steps", c, m, h, t, 1.0) for c in self.cells for h, t in sizes for m in self.methods
        ]
        out += [
            ("gain", c, m, self.gain_hidden, self.gain_steps, float(g))
            for c in self.cells
            for g in self.gains
            for m in self.methods
        ]
        return out


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_grid(source: str) -> Grid:
    """'default', or a TOML file whose [sweep] table overrides Grid's fields."""
    if source == "default":
        return Grid()
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepError(f"sweep grid {source}: cannot read it ({exc.strerror})") from None
    return load_grid_text(text, source)


def load_grid_text(text: str, source: str = "the grid") -> Grid:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"sweep grid {source}: not TOML ({exc})") from None
    table = data.get("sweep")
    if not isinstance(table, dict):
        raise SweepError(f"sweep grid {source}: expected a [sweep] table")
    known = {f.name for f in dataclasses.fields(Grid)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SweepError(f"sweep grid {source}: unknown keys {unknown}; allowed {sorted(known)}")
    values: JsonObject = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    if "max_iter" in values:
        if not isinstance(values["max_iter"], dict):
            raise SweepError(f"sweep grid {source}: max_iter is a table of method = count")
        values["max_iter"] = tuple({**dict(Grid.max_iter), **values["max_iter"]}.items())
    return Grid(**values)


def model(cell: str, hidden: int, input_size: int, gain: float, seed: int):
    """(spec, canonical float64 weights with R x gain) as `rnnbench parallel-in-time` builds."""
    spec = ModelSpec(Cell(cell), input_size, hidden, dtype="float64")
    weights = init_weights(spec, seed).astype("float64")
    return spec, {k: weights[k] * (gain if k.endswith(".R") else 1.0) for k in weights}


def inputs(steps: int, batch: int, input_size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 1).standard_normal((steps, batch, input_size))


def run_sweep(grid: Grid, progress: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Every point of the grid, each solved once (a point in both grids is copied)."""
    solved: dict[tuple, dict] = {}
    exponents: dict[tuple, float] = {}
    rows = []
    points = grid.points()
    for index, (which, cell, method, hidden, steps, gain) in enumerate(points):
        progress(f"{index + 1}/{len(points)} {cell} {method} H={hidden} T={steps} gain={gain:g}")
        key = (cell, method, hidden, steps, gain)
        if key not in solved:
            solved[key] = solve_point(grid, cell, method, hidden, steps, gain, exponents)
        rows.append({"grid": which, **solved[key]})
    return rows


def solve_point(grid: Grid, cell, method, hidden, steps, gain, exponents) -> JsonObject:
    pt = registry.parallel_in_time()
    spec, params = model(cell, hidden, grid.input_size, gain, grid.seed)
    x = inputs(steps, grid.batch, grid.input_size, grid.seed)
    where = (cell, hidden, steps, gain)
    if where not in exponents:
        exponents[where] = pt.model_lyapunov(spec, params, x).lle
    row = dict(cell=cell, method=method, hidden=hidden, input_size=grid.input_size)
    row.update(batch=grid.batch, steps=steps, gain=gain, seed=grid.seed, dtype="float64")
    row.update(tol=grid.tol, max_iter=dict(grid.max_iter)[method], lle=exponents[where])
    row.update(status="solved", converged=None, iterations=None, reason=None)
    row.update(max_abs_error=None, parity_passed=None, seconds=None, residuals=None)
    skip = _dense_skip(grid, cell, method, hidden, steps)
    if skip is None:
        skip = _solve(pt, spec, params, x, row)
    if skip is not None:
        row.update(status="skipped", reason=skip)
    size = (grid.batch, steps, grid.input_size, hidden)
    row.update(counts.work(method, cell, *size, row["iterations"]))
    return row


def _dense_skip(grid: Grid, cell: str, method: str, hidden: int, steps: int) -> str | None:
    N = counts.state_size(cell, hidden)
    need = 3 * steps * grid.batch * N * N * 8
    work = 2 * steps * grid.batch * N**3 / 1e9
    if method != "newton":
        return None
    if need > grid.dense_limit_mib << 20:
        return (
            f"dense Jacobians need {need / 2**20:.0f} MiB (T={steps}, B={grid.batch}, N={N}), "
            f"over the sweep's dense_limit_mib = {grid.dense_limit_mib}"
        )
    if work > grid.dense_limit_gflop:
        return (
            f"one iteration's dense compositions take {work:.2g} GFLOP (T={steps}, "
            f"B={grid.batch}, N={N}), over the sweep's dense_limit_gflop = "
            f"{grid.dense_limit_gflop:g}"
        )
    return None


def _solve(pt, spec, params, x, row: JsonObject) -> str | None:
    """Solve into row; the reason when the solver refuses the size."""
    started = time.perf_counter()
    try:
        result = pt.solve_model(spec, params, x, row["method"], row["tol"], row["max_iter"])
    except NotSupported as exc:
        return str(exc)
    row["seconds"] = time.perf_counter() - started
    row.update(converged=result.converged, iterations=result.iterations, reason=result.reason)
    row["residuals"] = list(result.residuals)  # the iterations any looser tol would take
    if result.outputs is not None and result.converged:
        reference = pt.sequential_reference(spec, params, x)
        error, comparisons = compare_with_sequential(result.outputs, reference, "float64")
        row["max_abs_error"] = error if math.isfinite(error) else None
        row["parity_passed"] = all(c.passed for c in comparisons)
    return None


def document(
    grid: Grid, rows: list[JsonObject], environment: JsonObject, wall_s: float
) -> SweepDocument:
    """The sweep as its typed record (harness/records/parallel_in_time.py), its rows each with
    the iterations the law fitted on the rows predicts for it (iteration_law.annotate), and the
    law; a value that is not finite becomes null."""
    data = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "commit": (environment.get("git") or {}).get("commit"),
        "grid": grid.as_dict(),
        "counting": counts.__doc__,
        "wall_s": wall_s,
        "rows": rows,
    }
    doc = SweepDocument.model_validate(nulls_for_nonfinite(data))
    annotated, law = iteration_law.annotate(doc.rows)
    return SweepDocument.model_validate({**dict(doc), "rows": annotated, "law": law})


def sweep(grid: Grid, environment: JsonObject, progress=lambda _: None) -> SweepDocument:
    started = time.perf_counter()
    rows = run_sweep(grid, progress)
    return document(grid, rows, environment, time.perf_counter() - started)
