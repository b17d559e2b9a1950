"""The probe of the machine's costs (harness/predict/probe.py), on a solver whose calls report
synthetic seconds: every length whose warm-up and one timed call fit BUDGET_S is probed, an
iteration of ALONE_S or more runs alone in a call (four short ones share one), and the curve
holds seconds per iteration whatever a call held."""

from __future__ import annotations

import types

import pytest

from harness.model.spec import Cell, ModelSpec
from harness.predict import probe as probe_module

SPEC = ModelSpec(cell=Cell.LSTM, input_size=1, hidden_size=64)


def _per_iteration_s(T: int) -> float:
    return 1e-4 * T  # 0.4 ms at T = 4, 102 ms at T = 1024, 410 ms at 4096


@pytest.fixture
def calls(monkeypatch):
    """Each built call is (name, T, iterations); fastest_seconds answers from _per_iteration_s."""
    made: list[tuple[str, int, int]] = []

    def iteration_call(spec, weights, method, batch, steps, framework, device, iterations=1):
        made.append((method, steps, iterations))
        return ("iteration", steps, iterations)

    def first_solve_call(spec, weights, method, batch, steps, framework, device):
        return ("first", steps, 1)

    def fastest_seconds(built, repeats, budget_s):
        return {name: _per_iteration_s(T) * k for name, (_, T, k) in built.items()}

    fake = types.SimpleNamespace(
        iteration_call=iteration_call,
        first_solve_call=first_solve_call,
        fastest_seconds=fastest_seconds,
    )
    monkeypatch.setattr(probe_module.registry, "parallel_in_time", lambda: fake)
    monkeypatch.setattr(
        probe_module, "_loop_call", lambda *a: lambda T: ("loop", T, 1), raising=True
    )
    return made


def test_long_iterations_run_alone_and_are_probed_while_two_calls_fit(calls):
    costs = probe_module.probe(SPEC, None, 1, 1024, "torch-cpu", ("newton",))  # type: ignore[arg-type]
    curve = costs.curves["newton"]
    # 4 * 0.4 ms at T = 4 (short: four a call), then one a call from 1.6 ms at T = 16 on;
    # T = 4096 would take 2 x 410 ms > BUDGET_S = 0.3 s: not probed
    assert calls == [("newton", 4, 4), ("newton", 16, 1), ("newton", 64, 1)] + [
        ("newton", 256, 1),
        ("newton", 1024, 1),
    ]
    assert curve.lengths == (4, 16, 64, 256, 1024)
    assert curve.seconds == pytest.approx([_per_iteration_s(t) for t in curve.lengths])
    assert 2 * _per_iteration_s(4096) > probe_module.BUDGET_S >= 2 * _per_iteration_s(1024)


def test_short_iterations_share_a_call(calls, monkeypatch):
    monkeypatch.setattr(probe_module, "ALONE_S", 1.0)
    costs = probe_module.probe(SPEC, None, 1, 256, "torch-cpu", ("quasi-newton",))  # type: ignore[arg-type]
    assert {k for _, _, k in calls} == {probe_module.ITERATIONS_PER_CALL}
    # four a call: 4 x 25.6 ms at T = 256 fits twice in 0.3 s, 4 x 102 ms at 1024 does not
    assert costs.curves["quasi-newton"].lengths == (4, 16, 64, 256)
    curve = costs.curves["quasi-newton"]
    assert curve.seconds == pytest.approx([_per_iteration_s(t) for t in curve.lengths])
