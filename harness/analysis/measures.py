"""What the timings mean, computed from results documents (several machines merge; each row
carries its machine label): one typed Analysis, which the report turns into tables and plots.
Each measure lives in its own module: rows (the typed table, pairing of rounds), fits (a + b*T,
batch scaling), harness.machine.model (peaks, bandwidth by working-set size), penalty
(recurrence penalty, share of peak), roofline (per-step bound, Amdahl), mingru (minGRU against
GRU), crossover (CPU against GPU); invariants then checks that no measurement beats a limit
drawn from them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from harness.analysis import invariants, own_model
from harness.analysis.crossover import Crossover, crossover
from harness.analysis.fits import BatchSeries, Fit, batch_scaling, step_fits
from harness.analysis.mingru import MinGRURow, mingru_vs_gru
from harness.analysis.own_model import OwnModel
from harness.analysis.parallel_in_time import ParallelInTime
from harness.analysis.parity_files import ParityCheck
from harness.analysis.penalty import (
    EfficiencyRow,
    PenaltyRow,
    WithoutBaseline,
    efficiency,
    penalties,
    without_baseline,
)
from harness.analysis.roofline import Amdahl, RooflineRow, amdahl, roofline
from harness.analysis.rows import TimedRow, rows
from harness.analysis.streaming import Streaming
from harness.analysis.trained import TrainedEntry
from harness.machine import model as machine
from harness.machine.facts import environments
from harness.records.store import MachineView


@dataclasses.dataclass(frozen=True, kw_only=True)
class Analysis:
    """Every measure of the built-in suites' cases (a user's model's: `models`), the limits
    they beat, and what the report adds from other files: the parallel-in-time section, the
    trained examples and the parity files' checks."""

    rows: list[TimedRow]
    fits: list[Fit]
    batch: list[BatchSeries]
    machine: machine.MachineModel
    penalties: list[PenaltyRow]
    without_baseline: list[WithoutBaseline]
    efficiency: list[EfficiencyRow]
    roofline: list[RooflineRow]
    amdahl: list[Amdahl]
    mingru: list[MinGRURow]
    crossover: list[Crossover]
    models: list[OwnModel]
    inconsistencies: list[invariants.Inconsistency]
    parallel_in_time: ParallelInTime | None = None
    trained: list[TrainedEntry] = dataclasses.field(default_factory=list)
    parity_files: list[ParityCheck] = dataclasses.field(default_factory=list)
    streaming: Streaming | None = None  # the stream and load cases (harness/analysis/streaming.py)


def analyse(docs: Sequence[MachineView]) -> Analysis:
    """Every measure of the built-in suites' cases, and, apart, each user's model's."""
    table, own = own_model.split(rows(docs))
    fits = step_fits(table)
    shapes = {(r.cell, r.input_size, r.hidden, r.layers) for r in table if r.mode == "forward"}
    model = machine.model(
        environments((doc.machine, doc.environment.model_dump()) for doc in docs), table
    )
    found_penalties = penalties(table)
    found_efficiency = efficiency(table, model)
    found_roofline = roofline(fits, model)
    return Analysis(
        rows=table,
        fits=fits,
        batch=batch_scaling(table),
        machine=model,
        penalties=found_penalties,
        without_baseline=without_baseline(table),
        efficiency=found_efficiency,
        roofline=found_roofline,
        amdahl=[amdahl(c, i, h, n) for c, i, h, n in sorted(shapes)],
        mingru=mingru_vs_gru(table),
        crossover=crossover(table),
        models=own_model.analyse(own),
        inconsistencies=invariants.check(model, found_efficiency, found_roofline, found_penalties),
    )
