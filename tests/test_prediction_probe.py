"""The probe of the machine's costs (harness/predict/probe.py), on a solver whose calls advance
a virtual clock: every length whose warm-up and one timed call fit BUDGET_S is probed, a call of
ALONE_S or more runs alone in a timed call and a shorter one is repeated to span it (at most
MOST_PER_CALL), and each curve holds seconds per call (per iteration) whatever a timed call
held."""

from __future__ import annotations

import math
import types

import pytest

from harness.model.spec import Cell, ModelSpec
from harness.predict import probe as probe_module

SPEC = ModelSpec(cell=Cell.LSTM, input_size=1, hidden_size=64)


class Clock:
    def __init__(self, per_step_s: float):
        self.now, self.per_step_s = 0.0, per_step_s
        self.built: list[tuple[str, int, int]] = []  # (curve, T, iterations a call)

    def call(self, T: int, times: int = 1):
        def run() -> None:
            self.now += self.per_step_s * T * times

        return run


@pytest.fixture
def clock_of(monkeypatch):
    def make(per_step_s: float) -> Clock:
        clock = Clock(per_step_s)

        def iteration_call(spec, weights, method, batch, steps, framework, device, iterations=1):
            clock.built.append((method, steps, iterations))
            return clock.call(steps, iterations)

        def first_solve_call(spec, weights, method, batch, steps, framework, device):
            return clock.call(steps)

        def fastest_seconds(calls, repeats, budget_s):
            assert len(calls) == 1, "each curve is timed alone, not between the others"
            out = {}
            for name, call in calls.items():
                start = clock.now
                call()
                out[name] = clock.now - start
            return out

        def loop_call(*args):
            def build(T):
                clock.built.append(("loop", T, 1))
                return clock.call(T)

            return build

        fake = types.SimpleNamespace(
            iteration_call=iteration_call,
            first_solve_call=first_solve_call,
            fastest_seconds=fastest_seconds,
        )
        monkeypatch.setattr(probe_module.registry, "parallel_in_time", lambda: fake)
        monkeypatch.setattr(probe_module, "_loop_call", loop_call)
        return clock

    return make


def test_long_calls_run_alone_and_are_probed_while_two_calls_fit(clock_of):
    """1e-4 s a step: 0.4 ms an iteration at T = 4 (four a call at the first length), 1.6 ms at
    16 on (alone); T = 4096 would take 2 x 410 ms > BUDGET_S: not probed."""
    clock = clock_of(1e-4)
    costs = probe_module.probe(SPEC, None, 1, 1024, "torch-cpu", ("newton",))  # type: ignore[arg-type]
    newton = [(t, k) for name, t, k in clock.built if name == "newton"]
    assert newton == [(4, 4), (16, 1), (64, 1), (256, 1), (1024, 1)]
    for name in ("newton", "newton first", "loop"):
        curve = costs.curves[name]
        assert curve.lengths == (4, 16, 64, 256, 1024)
        assert curve.seconds == pytest.approx([1e-4 * t for t in curve.lengths])
    assert 2 * 1e-4 * 4096 > probe_module.BUDGET_S >= 2 * 1e-4 * 1024


def test_a_length_is_probed_while_its_warm_up_and_one_call_fit(clock_of):
    """2e-4 s a step: T = 256 (2 x 51 ms) fits BUDGET_S, T = 1024 (2 x 205 ms) does not; one
    call alone (205 ms) would, six (REPEATS + 1: 307 ms at 256) would stop at 64."""
    clock = clock_of(2e-4)
    costs = probe_module.probe(SPEC, None, 1, 1024, "torch-cpu", ("newton",))  # type: ignore[arg-type]
    assert costs.curves["newton"].lengths == (4, 16, 64, 256)
    assert [t for name, t, _ in clock.built if name == "newton"] == [4, 16, 64, 256]


def test_short_calls_are_repeated_to_span_alone_s(clock_of):
    """1e-6 s a step: each timed call of an iteration holds enough to span ALONE_S (4 at the
    first length, where nothing is known yet), and every curve reads per call."""
    clock = clock_of(1e-6)
    costs = probe_module.probe(SPEC, None, 1, 4096, "torch-cpu", ("quasi-newton",))  # type: ignore[arg-type]
    quasi = [(t, k) for name, t, k in clock.built if name == "quasi-newton"]
    expected = [(4, probe_module.ITERATIONS_PER_CALL)]
    for t in (16, 64, 256, 1024, 4096):
        one = 1e-6 * t
        k = 1 if one >= probe_module.ALONE_S else max(4, math.ceil(probe_module.ALONE_S / one))
        expected.append((t, min(k, probe_module.MOST_PER_CALL)))
    assert quasi == expected
    assert [k for _, k in quasi] == [4, 63, 16, 4, 1, 1]
    for name in ("quasi-newton", "quasi-newton first", "loop"):
        curve = costs.curves[name]
        assert curve.seconds == pytest.approx([1e-6 * t for t in curve.lengths])


def test_repeats_are_capped(clock_of):
    clock = clock_of(1e-9)
    probe_module.probe(SPEC, None, 1, 64, "torch-cpu", ("quasi-newton",))  # type: ignore[arg-type]
    quasi = [k for name, _, k in clock.built if name == "quasi-newton"]
    assert quasi[0] == probe_module.ITERATIONS_PER_CALL
    assert quasi[1:] == [probe_module.MOST_PER_CALL] * (len(quasi) - 1) and len(quasi) > 1


def test_a_time_well_above_its_neighbours_line_is_timed_again(clock_of):
    """A burst of load triples the step loop's time at T = 256: it stands 3x above the line
    through T = 64 and 1024, is timed again, and the faster is kept; a curve on its line is
    timed once a length."""
    clock_of(1e-6)
    fake = probe_module.registry.parallel_in_time()
    real, timed = fake.fastest_seconds, {"loop": 0, "quasi-newton": 0}

    def disturbed(calls, repeats, budget_s):
        out = real(calls, repeats, budget_s)
        for name in calls:
            timed[name] = timed.get(name, 0) + 1
        if "loop" in calls and timed["loop"] == 4:  # the fourth length: T = 256
            out["loop"] *= 3
        return out

    fake.fastest_seconds = disturbed
    costs = probe_module.probe(SPEC, None, 1, 4096, "torch-cpu", ("quasi-newton",))  # type: ignore[arg-type]
    loop = costs.curves["loop"]
    assert loop.lengths[3] == 256
    assert loop.seconds == pytest.approx([1e-6 * t for t in loop.lengths])
    assert timed["loop"] == len(loop.lengths) + 1
    assert timed["quasi-newton"] == len(costs.curves["quasi-newton"].lengths)


def test_bumps_are_read_against_the_work_and_the_furthest_first():
    """A cache step (cost per unit of work rising with T) lies under the line: not a bump."""
    work = {"a": (None, float), "b": (None, lambda t: t * t)}
    lengths = {"a": [4, 16, 64, 256], "b": [4, 16, 64]}
    seconds = {"a": [4.0, 16.0 * 1.3, 64.0 * 2, 256.0 * 4], "b": [16.0, 2 * 256.0, 4096.0]}
    # a: at 16 the line through 4 and 64 reads 4 + 124 * 12 / 60 = 28.8 (20.8 is under it); at
    # 64, 20.8 + 1003.2 * 48 / 240 = 221.4 (128 under): a rising cost per unit, no bump there;
    # b, in the work t^2: at 16 the line reads 16 + 4080 * 240 / 4080 = 256, 512 is 2x over it;
    # a's last, 1024 against the line through 16 and 64 extrapolated, 20.8 + 107.2 * 5 = 556.8,
    # is over it too (the cache step): an end, after every interior one
    assert probe_module._bumps(work, lengths, seconds) == [("b", 1), ("a", 3)]
    seconds["a"][2] = 64.0 * 8  # 512 against 20.8 + 1003.2 * 0.2 = 221.4: 2.3x, the furthest
    # and a's last now lies under the line through 16 and 64: 20.8 + 491.2 * 5 = 2476.8
    assert probe_module._bumps(work, lengths, seconds) == [("a", 2), ("b", 1)]
    # the first, against the line through 16 and 64 read back at 4: 4 is on it, 8 is 2x over
    line = {"c": (None, float)}
    assert probe_module._bumps(line, {"c": [4, 16, 64]}, {"c": [4.0, 16.0, 64.0]}) == []
    # (and the last, against the line through that 8 and 16: 48, is then over it too)
    bumped = probe_module._bumps(line, {"c": [4, 16, 64]}, {"c": [8.0, 16.0, 64.0]})
    assert bumped == [("c", 0), ("c", 2)]
    assert probe_module._bumps(line, {"c": [4, 16]}, {"c": [80.0, 16.0]}) == []  # two: none
