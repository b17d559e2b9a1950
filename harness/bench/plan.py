"""The rounds each group gets, planned to fit the suite's budget: on a slow or busy machine
every case gets fewer rounds (down to MIN_ROUNDS) before any case is left untimed.

A group costs a fixed part (its workers started and built together, each parity-checked, then
each warmed up and calibrated) and one pass per round (a pause and a round of each case).
Before the first group both are estimated from the timing settings alone (`estimate_s`). As the
run goes, a group's fixed part is estimated from the builds its backends took in the groups so
far (the slowest of its workers) and the calibrations seen, and a pass from the settings scaled
by how long the passes so far took over their estimates. After the first pass of a group its
own pass is known, and it gets the most rounds, up to the suite's, for which that group and
every later one at the same count are expected to fit in what is left of the budget, the later
groups' fixed parts at MARGIN times their estimate; MIN_ROUNDS when none fits. The budget
itself is enforced by the engine: once spent, no new group starts."""

from __future__ import annotations

import statistics

from harness.bench.case import BenchCase
from harness.records.results import CaseRecord, Timing

MIN_ROUNDS = 3  # the fewest rounds a case is given: a median and an interval still mean something
# What is still to come is planned at this many times its estimate: a group can take far longer
# than the ones before it (a busy spell; on a shared 2-core machine a torch GRU at T=1024 built
# in 32 s, not 5), and a case left untimed costs more than rounds a case did not need.
MARGIN = 1.5
WORKER_START_S = 3.0  # importing a framework and building a case: the estimate's allowance


def fixed_estimate_s(group: list[BenchCase], settings: Timing) -> float:
    """Starting the group's workers together, then warming up and calibrating each case."""
    return WORKER_START_S + len(group) * (settings.warmup_s + 2 * settings.min_round_s)


def pass_estimate_s(group: list[BenchCase], settings: Timing) -> float:
    """One round of every case of the group, each after its pause."""
    return len(group) * (settings.min_round_s + settings.pause_s)


def estimate_s(groups: list[list[BenchCase]], settings: Timing, rounds: int | None = None) -> float:
    """A rough time for the groups at `rounds` rounds each (default: the settings')."""
    rounds = settings.rounds if rounds is None else rounds
    return sum(
        fixed_estimate_s(g, settings) + rounds * pass_estimate_s(g, settings) for g in groups
    )


def least_rounds(settings: Timing) -> int:
    return min(MIN_ROUNDS, settings.rounds)


class RoundPlan:
    """Plans the rounds of `groups` (in the order they run) within budget_s seconds of the
    run (None: every group gets the settings' rounds)."""

    def __init__(self, groups: list[list[BenchCase]], settings: Timing, budget_s: float | None):
        self.groups, self.settings, self.budget_s = groups, settings, budget_s
        self.passes = [0.0, 0.0]  # the first passes so far: estimated, measured
        self.builds: dict[str, list[float]] = {}  # backend -> its workers' build seconds
        self.calibrations: list[float] = []

    def learn(self, records: list[CaseRecord]) -> None:
        """What a finished group's records say its backends take to build and its cases to
        calibrate."""
        for record in records:
            if record.build_s is not None:
                self.builds.setdefault(record.case.backend, []).append(record.build_s)
            if record.calibrate_s is not None:
                self.calibrations.append(record.calibrate_s)

    def fixed_s(self, group: list[BenchCase]) -> float:
        """The group's slowest build (a backend not seen yet: WORKER_START_S), then each
        case's calibration (the median seen, else the settings')."""
        slowest = max(
            statistics.median(self.builds[c.backend]) if c.backend in self.builds else 0.0
            for c in group
        )
        if any(c.backend not in self.builds for c in group):
            slowest = max(slowest, WORKER_START_S)
        settings = self.settings
        calibration = settings.warmup_s + 2 * settings.min_round_s
        if self.calibrations:
            calibration = statistics.median(self.calibrations)
        return slowest + len(group) * calibration

    def pass_scale(self) -> float:
        """Measured over estimated for the first passes so far; 1 before any."""
        return self.passes[1] / self.passes[0] if self.passes[0] else 1.0

    def rounds(self, index: int, spent_s: float, pass_s: float) -> int:
        """The rounds of group `index`, whose first pass took pass_s, when spent_s seconds
        of the run have passed (that first pass included)."""
        self.passes[0] += pass_estimate_s(self.groups[index], self.settings)
        self.passes[1] += pass_s
        most = self.settings.rounds
        if self.budget_s is None:
            return most
        later = self.groups[index + 1 :]
        fixed_later = sum(self.fixed_s(g) for g in later)
        pass_later = self.pass_scale() * sum(pass_estimate_s(g, self.settings) for g in later)
        left = self.budget_s - spent_s
        for count in range(most, least_rounds(self.settings), -1):
            if (count - 1) * pass_s + MARGIN * fixed_later + count * pass_later <= left:
                return count
        return least_rounds(self.settings)
