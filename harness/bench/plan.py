"""The rounds each group gets, planned to fit the suite's budget: on a slow or busy machine
every case gets fewer rounds (down to MIN_ROUNDS) before any case is left untimed.

A group costs a fixed part (its workers started, built, parity-checked, calibrated) and one
pass per round (a pause and a round of each case). Before the first group both are estimated
from the timing settings alone (`estimate_s`); each group measured scales the estimates of the
groups still to come (measured over estimated, summed over the groups so far). After the first
pass of a group its own pass is known, and it gets the most rounds, up to the suite's, for
which that group and every later one at the same count are expected to fit in what is left of
the budget; MIN_ROUNDS when none fits. The budget itself is enforced by the engine: once spent,
no new group starts."""

from __future__ import annotations

from harness.bench.case import BenchCase
from harness.records.results import Timing

MIN_ROUNDS = 3  # the fewest rounds a case is given: a median and an interval still mean something
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
        self.estimated = [0.0, 0.0]  # fixed, pass: the estimates of the groups measured
        self.measured = [0.0, 0.0]

    def scale(self, part: int) -> float:
        """Measured over estimated for the fixed part (0) or a pass (1); 1 before any group."""
        return self.measured[part] / self.estimated[part] if self.estimated[part] else 1.0

    def rounds(self, index: int, spent_s: float, fixed_s: float, pass_s: float) -> int:
        """The rounds of group `index`, whose workers took fixed_s and whose first pass took
        pass_s, when spent_s seconds of the run have passed (that first pass included)."""
        group = self.groups[index]
        self.estimated[0] += fixed_estimate_s(group, self.settings)
        self.estimated[1] += pass_estimate_s(group, self.settings)
        self.measured[0] += fixed_s
        self.measured[1] += pass_s
        most = self.settings.rounds
        if self.budget_s is None:
            return most
        later = self.groups[index + 1 :]
        fixed_later = self.scale(0) * sum(fixed_estimate_s(g, self.settings) for g in later)
        pass_later = self.scale(1) * sum(pass_estimate_s(g, self.settings) for g in later)
        left = self.budget_s - spent_s
        for count in range(most, least_rounds(self.settings), -1):
            if (count - 1) * pass_s + fixed_later + count * pass_later <= left:
                return count
        return least_rounds(self.settings)
