"""How many Newton / quasi-Newton iterations a solve takes, as a law in the model's largest
Lyapunov exponent (LLE, lambda < 0), the sequence length T and the stopping tolerance, fitted on
the parallel-in-time sweep's counted iterations.

The law, per (cell, method), with fitted c, a, p:

    quasi-newton:  k_inf = c + a * ln(1/tol) * (-lambda)^(-p)
    newton:        k_inf = c + log2(ln(1/tol) / ln(1/TOL_REF)) + a * (-lambda)^(-p)
    k = min(T + 1, k_inf)

Quasi-Newton converges linearly, so the iterations to reach tol grow with ln(1/tol); Newton
converges quadratically once it is close, so tol moves the count by log2 of the ratio of the
digits it asks for (TOL_REF: the sweep's own tol, where that term is 0); both need
more iterations the more slowly the model forgets (-lambda small). After k updates the first k
states are exact, so T updates and one that confirms always suffice: k <= T + 1.

Not converging is predicted (no iteration count) where lambda >= 0 (the iterations run out before
the error shrinks: the sweeps' chaotic points never converge), or where the law's count exceeds
the solve's max_iter.

The points: every converged sweep row that parity held (a row whose change fell under tol while
still off the sequential run does not count), at its own tol and, from its recorded residuals,
at every looser tol of TOLS (the first iteration whose change is <= that tol). A point at
k = T + 1 is capped by T, not by the law, and is left out of the fit. The fit: for each c on a
grid, ln(k - c - tol term) is linear in ln(-lambda) (least squares for ln a and p); the c with
the smallest squared error of ln k wins. Residuals are ln(k predicted / k counted).

Which rows fit and which are held out: FIT_ROLE.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np

from harness.records.parallel_in_time import IterationLaw, LawResiduals, SweepLaw, SweepRow

METHODS = ("newton", "quasi-newton")
TOLS = (1e-4, 1e-6, 1e-8, 1e-10, 1e-12)
TOL_REF = 1e-12
OFFSETS = tuple(x / 2 for x in range(0, 17))  # the grid of c
FIT: Final = "fit"
HELD_OUT: Final = "held out"


def fit_role(row: SweepRow, fit_hidden: int) -> str:
    """The gain grid and the T grid at the sweep's smallest H fit the law; the T grid at wider
    H is held out (a check of the law at sizes it never saw)."""
    return FIT if row.grid == "gain" or row.hidden <= fit_hidden else HELD_OUT


def tol_term(method: str, tol: float) -> float:
    """The factor (quasi-newton) or the addend (newton) tol contributes."""
    if not 0 < tol < 1:
        raise ValueError(f"tol = {tol!r}: allowed 0 < tol < 1")
    if method == "quasi-newton":
        return math.log(1 / tol)
    return math.log2(math.log(1 / tol) / math.log(1 / TOL_REF))


@dataclasses.dataclass(frozen=True)
class Point:
    """One counted solve at one tol."""

    cell: str
    method: str
    lle: float
    steps: int
    tol: float
    iterations: int
    role: str
    hidden: int = 0

    @property
    def capped(self) -> bool:
        """Took T + 1 updates: the count says T, not the law."""
        return self.iterations >= self.steps + 1


@dataclasses.dataclass(frozen=True)
class Law:
    """One (cell, method)'s fitted law; rms and worst are of ln(predicted / counted) over the
    points it was fitted on (n of them)."""

    cell: str
    method: str
    c: float
    a: float
    p: float
    n: int
    rms: float
    worst: float

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method = {self.method!r}: allowed {', '.join(METHODS)}")
        if not (self.a > 0 and math.isfinite(self.p) and self.c >= 0):
            raise ValueError(f"law of {self.cell} {self.method}: a > 0, finite p, c >= 0 needed")

    def unbounded(self, lle: float, tol: float) -> float:
        """k_inf: the iterations without the T + 1 cap; inf for lambda >= 0."""
        if not lle < 0:
            return math.inf
        scale = self.a * (-lle) ** (-self.p)
        if self.method == "quasi-newton":
            return self.c + scale * tol_term(self.method, tol)
        return self.c + tol_term(self.method, tol) + scale

    def iterations(self, lle: float, steps: int, tol: float) -> float:
        return min(steps + 1.0, self.unbounded(lle, tol))

    def formula(self) -> str:
        power = f"(-LLE)^-{self.p:.3g}"
        if self.method == "quasi-newton":
            return f"min(T+1, {self.c:g} + {self.a:.3g} ln(1/tol) {power})"
        return f"min(T+1, {self.c:g} + log2(ln(1/tol) / ln(1e12)) + {self.a:.3g} {power})"

    def record(self) -> IterationLaw:
        return IterationLaw.model_validate({**dataclasses.asdict(self), "formula": self.formula()})


@dataclasses.dataclass(frozen=True)
class Predicted:
    """A law's answer for one solve: iterations (rounded up), or None with the reason."""

    iterations: int | None
    unbounded: float  # k_inf, inf where lambda >= 0
    reason: str | None

    def __post_init__(self) -> None:
        if (self.iterations is None) == (self.reason is None):
            raise ValueError("a prediction has iterations or a reason, not both")


def predict(law: Law, lle: float | None, steps: int, tol: float, max_iter: int) -> Predicted:
    if lle is None or not math.isfinite(lle):
        return Predicted(None, math.nan, "no finite largest Lyapunov exponent to predict from")
    if lle >= 0:
        return Predicted(
            None, math.inf, f"LLE {lle:+.3f} >= 0: the iterations run out before the error shrinks"
        )
    k = math.ceil(law.iterations(lle, steps, tol) - 1e-9)
    if k > max_iter:
        return Predicted(
            None,
            law.unbounded(lle, tol),
            f"the law's {k} iterations at LLE {lle:+.3f} exceed max_iter = {max_iter}",
        )
    return Predicted(max(k, 1), law.unbounded(lle, tol), None)


# ---- points and the fit ----------------------------------------------------------------


def _fit_hidden(rows: Sequence[SweepRow]) -> int:
    steps_rows = [r.hidden for r in rows if r.grid == "steps"]
    return min(steps_rows) if steps_rows else 0


def points(rows: Iterable[SweepRow]) -> list[Point]:
    """The counted solves of a sweep's rows, at every tol the residuals give."""
    rows = list(rows)
    fit_hidden = _fit_hidden(rows)
    out = []
    for row in rows:
        if not row.solved or row.lle is None or row.iterations is None or row.tol is None:
            continue
        role = fit_role(row, fit_hidden)
        for tol, k in _counts_by_tol(row.tol, row.iterations, row.residuals or []):
            out.append(Point(row.cell, row.method, row.lle, row.steps, tol, k, role, row.hidden))
    return out


def _counts_by_tol(
    own_tol: float, iterations: int, residuals: Sequence[float | None]
) -> list[tuple[float, int]]:
    found = {float(own_tol): int(iterations)}
    for tol in TOLS:
        if tol <= own_tol or tol in found:
            continue
        first = next((k for k, r in enumerate(residuals, 1) if r is not None and r <= tol), None)
        if first is not None:
            found[tol] = first
    return sorted(found.items())


def fit(found: Iterable[Point], cell: str, method: str) -> Law | None:
    """The law of one (cell, method) from its fit points not capped by T; None with fewer than
    three distinct LLE among them."""
    use = [
        p
        for p in found
        if (p.cell, p.method, p.role) == (cell, method, FIT) and not p.capped and p.lle < 0
    ]
    if len({round(p.lle, 6) for p in use}) < 3:
        return None
    k = np.array([p.iterations for p in use], float)
    x = np.log([-p.lle for p in use])
    tols = [tol_term(method, p.tol) for p in use]
    best = None
    for c in OFFSETS:
        if method == "quasi-newton":
            rest, divide = k - c, np.array(tols)
        else:
            rest, divide = k - c - np.array(tols), np.ones(len(use))
        if (rest <= 0).any():
            continue
        y = np.log(rest / divide)
        slope, intercept = np.polyfit(x, y, 1)
        law = Law(cell, method, c, float(np.exp(intercept)), float(-slope), len(use), 0.0, 0.0)
        error = np.log([law.unbounded(p.lle, p.tol) / p.iterations for p in use])
        score = float((error**2).mean())
        if best is None or score < best[0]:
            best = (score, law, error)
    if best is None:
        return None
    score, law, error = best
    return dataclasses.replace(law, rms=math.sqrt(score), worst=float(np.abs(error).max()))


def fit_all(found: list[Point]) -> dict[tuple[str, str], Law]:
    laws = {}
    for cell, method in sorted({(p.cell, p.method) for p in found}):
        law = fit(found, cell, method)
        if law is not None:
            laws[(cell, method)] = law
    return laws


@dataclasses.dataclass(frozen=True)
class Residual:
    """One point against its law: predicted (ceil, T + 1 cap) and ln(predicted / counted)."""

    point: Point
    predicted: int
    log_error: float


def residuals(laws: dict[tuple[str, str], Law], found: Iterable[Point]) -> list[Residual]:
    out = []
    for p in found:
        law = laws.get((p.cell, p.method))
        if law is None:
            continue
        predicted = math.ceil(law.iterations(p.lle, p.steps, p.tol) - 1e-9)
        out.append(Residual(p, predicted, math.log(predicted / p.iterations)))
    return out


def annotate(rows: Sequence[SweepRow]) -> tuple[list[SweepRow], SweepLaw]:
    """Fit the laws on the rows' fit points; (the rows, each with its predicted_iterations (at
    its own tol and max_iter: None where the law predicts no convergence) and law_role; the
    laws with their residuals on the fit and on the held-out points)."""
    found = points(rows)
    laws = fit_all(found)
    fit_hidden = _fit_hidden(rows)
    out = []
    for row in rows:
        law = laws.get((row.cell, row.method))
        predicted = None
        if law is not None and row.lle is not None and row.tol is not None and row.max_iter:
            predicted = predict(law, row.lle, row.steps, row.tol, row.max_iter).iterations
        update = {"law_role": fit_role(row, fit_hidden), "predicted_iterations": predicted}
        out.append(row.model_copy(update=update))
    errors = residuals(laws, found)
    fitted = SweepLaw(
        doc=__doc__ or "",
        fit_on="the gain grid and the T grid at the smallest H",
        held_out="the T grid at every wider H",
        laws=[law.record() for law in laws.values()],
        residuals={FIT: _summary(errors, FIT), HELD_OUT: _summary(errors, HELD_OUT)},
    )
    return out, fitted


def _summary(errors: list[Residual], role: str) -> LawResiduals:
    values = sorted(abs(e.log_error) for e in errors if e.point.role == role)
    if not values:
        return LawResiduals(points=0)
    return LawResiduals(
        points=len(values),
        median_abs_log_error=values[len(values) // 2],
        worst_abs_log_error=values[-1],
        within_2x=sum(v <= math.log(2) for v in values) / len(values),
    )
