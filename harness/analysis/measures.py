"""What the timings mean, computed from results documents (several machines merge; each row
carries its machine label): one dict of plain lists, which the report turns into tables and
plots. Each measure lives in its own module: table (rows, pairing of rounds), fits (a + b*T,
batch scaling), penalty (recurrence penalty, share of peak), roofline (per-step bound, Amdahl),
mingru (minGRU against GRU), crossover (CPU against GPU)."""

from __future__ import annotations

from typing import Any

from harness.analysis.crossover import crossover
from harness.analysis.fits import batch_scaling, step_fits
from harness.analysis.mingru import mingru_vs_gru
from harness.analysis.penalty import efficiency, machine_peaks, penalties
from harness.analysis.roofline import amdahl, roofline
from harness.analysis.table import rows


def analyse(docs: list[dict[str, Any]]) -> dict[str, Any]:
    table = rows(docs)
    fits = step_fits(table)
    shapes = {
        (r["cell"], r["input_size"], r["hidden"], r["layers"])
        for r in table
        if r["mode"] == "forward"
    }
    return {
        "rows": table,
        "fits": fits,
        "batch": batch_scaling(table),
        "penalties": penalties(table),
        "peaks": {f"{m} {d} {t} threads": v for (m, d, t), v in machine_peaks(table).items()},
        "efficiency": efficiency(table),
        "roofline": roofline(fits, table),
        "amdahl": [
            {"cell": c, "input_size": i, "hidden": h, "layers": n, **amdahl(c, i, h, n)}
            for c, i, h, n in sorted(shapes)
        ],
        "mingru": mingru_vs_gru(table),
        "crossover": crossover(table),
    }
