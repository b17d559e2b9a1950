"""What the timings mean, computed from results documents (several machines merge; each row
carries its machine label): one dict of plain lists, which the report turns into tables and
plots. Each measure lives in its own module: table (rows, pairing of rounds), fits (a + b*T,
batch scaling), machine (peaks, bandwidth by working-set size), penalty (recurrence penalty,
share of peak), roofline (per-step bound, Amdahl), mingru (minGRU against GRU), crossover (CPU
against GPU); invariants then checks that no measurement beats a limit drawn from them."""

from __future__ import annotations

from typing import Any

from harness.analysis import invariants, own_model
from harness.analysis.crossover import crossover
from harness.analysis.fits import batch_scaling, step_fits
from harness.analysis.mingru import mingru_vs_gru
from harness.analysis.penalty import efficiency, penalties, without_baseline
from harness.analysis.roofline import amdahl, roofline
from harness.analysis.rows import rows
from harness.machine import model as machine


def analyse(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every measure of the built-in suites' cases, and, apart, each user's model's."""
    table, own = own_model.split(rows(docs))
    fits = step_fits(table)
    shapes = {
        (r["cell"], r["input_size"], r["hidden"], r["layers"])
        for r in table
        if r["mode"] == "forward"
    }
    model = machine.model(docs, table)
    result = {
        "rows": table,
        "fits": fits,
        "batch": batch_scaling(table),
        "machine": model,
        "penalties": penalties(table),
        "without_baseline": without_baseline(table),
        "efficiency": efficiency(table, model),
        "roofline": roofline(fits, model),
        "amdahl": [
            {"cell": c, "input_size": i, "hidden": h, "layers": n, **amdahl(c, i, h, n)}
            for c, i, h, n in sorted(shapes)
        ],
        "mingru": mingru_vs_gru(table),
        "crossover": crossover(table),
        "models": own_model.analyse(own, docs),
    }
    result["inconsistencies"] = invariants.check(result)
    return result
