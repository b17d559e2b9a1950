"""The load generator: a seeded Poisson process's arrival statistics, the batcher's policy, the
server's latencies on a fake clock worked out by hand, every stream's state carried right
through batches of other streams, the search for the most streams under a target, and the
records that refuse a trial not of the load asked for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.load import arrivals, search, server
from harness.load.arrivals import Schedule
from harness.load.batcher import BatchPolicy
from harness.records.streaming import LoadTest, LoadTrial, capacities, percentiles_of


def test_a_seeded_poisson_process_has_exponential_gaps():
    schedule = arrivals.poisson(20, 50.0, 60.0, seed=7)  # 1,000 arrivals a second for a minute
    assert len(schedule.times) == 60_000
    assert schedule.offered_hz == pytest.approx(schedule.requested_hz) == 1000.0
    gaps = arrivals.inter_arrivals(schedule)
    assert gaps.mean() == pytest.approx(1e-3, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)  # CV of an exponential
    assert np.mean(gaps > gaps.mean()) == pytest.approx(math.exp(-1), abs=0.01)
    for stream in range(5):  # each stream on its own: Poisson at 50 a second
        own = arrivals.inter_arrivals(schedule, stream)
        assert own.mean() == pytest.approx(1 / 50, rel=0.06)
        assert own.std() / own.mean() == pytest.approx(1.0, abs=0.07)
    again = arrivals.poisson(20, 50.0, 60.0, seed=7)
    assert np.array_equal(again.times, schedule.times)
    assert np.array_equal(again.streams, schedule.streams)


def test_the_offered_rate_is_the_requested_one_within_one_request():
    for streams, rate, window in ((1, 100.0, 2.0), (7, 33.3, 0.37), (3000, 100.0, 0.2)):
        schedule = arrivals.poisson(streams, rate, window, seed=1)
        assert abs(len(schedule.times) - streams * rate * window) <= 0.5
        assert schedule.offered_hz / schedule.requested_hz == pytest.approx(1, abs=0.05)
    with pytest.raises(ValueError, match="must be > 0"):
        arrivals.poisson(0, 100.0, 1.0, seed=1)


def test_the_batcher_takes_the_oldest_one_per_stream_up_to_max_batch():
    stream_of = [5, 6, 5, 7, 6, 8]
    assert BatchPolicy(2, 0.0).take([0, 1, 2, 3, 4], stream_of) == ([0, 1], [2, 3, 4])
    assert BatchPolicy(10, 0.0).take([0, 1, 2, 3, 4], stream_of) == ([0, 1, 3], [2, 4])
    assert BatchPolicy(10, 0.0).take([2, 4, 5], stream_of) == ([2, 4, 5], [])


def test_the_batcher_waits_for_a_full_batch_no_longer_than_max_wait():
    greedy = BatchPolicy(8, 0.0)
    assert greedy.due(1, 0.0) and not greedy.due(0, 1.0)
    patient = BatchPolicy(8, 2e-3)
    assert not patient.due(3, 1e-3)
    assert patient.wait_left(1e-3) == pytest.approx(1e-3)
    assert patient.due(3, 2e-3) and patient.due(8, 0.0)
    with pytest.raises(ValueError, match="max_batch"):
        BatchPolicy(0, 0.0)
    with pytest.raises(ValueError, match="max_wait_s"):
        BatchPolicy(4, -1.0)


class FakeClock:
    """Time moves only when the server waits or a batch is served (service: a + b per request)."""

    def __init__(self, a: float, b: float = 0.0):
        self.now, self.a, self.b, self.batches = 0.0, a, b, []

    def __call__(self) -> float:
        return self.now

    def wait(self, deadline: float, clock) -> None:
        self.now = max(self.now, deadline)

    def serve(self, requests) -> None:
        self.batches.append(list(requests))
        self.now += self.a + self.b * len(requests)


def _schedule(times, streams) -> Schedule:
    return Schedule(np.array(times), np.array(streams), window_s=1.0, requested_hz=len(times))


def test_greedy_batching_latencies_by_hand():
    clock = FakeClock(0.1)
    schedule = _schedule([0.0, 0.1, 0.15, 0.16, 1.0], [0, 1, 2, 0, 1])
    served = server.serve(schedule, clock.serve, BatchPolicy(8, 0.0), 10.0, clock, clock.wait)
    # 0 alone (done 0.1); 1 (done 0.2); 2 and 3 waited meanwhile (done 0.3); 4 at 1.0 (1.1)
    assert clock.batches == [[0], [1], [2, 3], [4]]
    assert served.latencies_s == pytest.approx([0.1, 0.1, 0.15, 0.14, 0.1])
    assert (served.served, served.calls, served.gave_up) == (5, 4, False)
    assert served.achieved_hz == pytest.approx(5 / 1.1)


def test_a_stream_never_has_two_steps_in_one_batch():
    clock = FakeClock(0.1)
    schedule = _schedule([0.0, 0.01, 0.02, 0.03], [0, 1, 1, 2])
    served = server.serve(schedule, clock.serve, BatchPolicy(8, 0.0), 10.0, clock, clock.wait)
    assert clock.batches == [[0], [1, 3], [2]]  # 2 waits for 1's state
    assert served.latencies_s == pytest.approx([0.1, 0.19, 0.28, 0.17])


def test_a_patient_batcher_holds_the_oldest_for_max_wait_at_most():
    clock = FakeClock(0.1)
    schedule = _schedule([0.0, 0.1, 0.15, 0.16, 1.0], [0, 1, 2, 0, 1])
    served = server.serve(schedule, clock.serve, BatchPolicy(2, 0.05), 10.0, clock, clock.wait)
    # 0 waits 0.05 for company (none comes): done 0.15; 1 and 2 fill a batch at 0.15: 0.25;
    # 3 has waited 0.09 by then: 0.35; 4 waits its 0.05 from 1.0: 1.15
    assert clock.batches == [[0], [1, 2], [3], [4]]
    assert served.latencies_s == pytest.approx([0.15, 0.15, 0.1, 0.19, 0.15])


def test_an_overloaded_server_gives_up_with_the_waits_so_far():
    clock = FakeClock(1.0)
    schedule = _schedule([0.1 * k for k in range(10)], list(range(10)))
    served = server.serve(schedule, clock.serve, BatchPolicy(1, 0.0), 0.5, clock, clock.wait)
    # one a second against ten a second: at 1.0, request 1 has waited 0.9 > 0.5: stop
    assert served.gave_up and served.served == 1 and served.end_s == pytest.approx(1.0)
    assert served.latencies_s == pytest.approx(
        [1.0 - 0.1 * k for k in range(10)][:1] + [1.0 - 0.1 * k for k in range(1, 10)]
    )


def test_each_stream_carries_its_own_state_through_batches_of_others():
    """A trial's state table, served in batches of mixed streams, ends where each stream's own
    sequence of inputs, run at once by the reference, ends."""
    from harness import registry
    from harness.bench.load_mode import StateTable
    from harness.model.spec import ModelSpec
    from harness.model.weights import init_weights

    spec = ModelSpec("lstm", 3, 5, num_layers=2)
    weights = init_weights(spec, seed=2)
    runner = registry.get_backend("numpy").build(spec, weights).step_runner()
    schedule = arrivals.poisson(6, 40.0, 1.0, seed=4)
    inputs = np.random.default_rng(5).standard_normal((64, 3)).astype("float32")
    table = StateTable(runner, spec, 6, schedule.streams, inputs)
    clock = FakeClock(0.01, 0.002)

    def serve_batch(requests):
        table(requests)
        clock.serve(requests)

    served = server.serve(schedule, serve_batch, BatchPolicy(4, 0.0), 10.0, clock, clock.wait)
    assert served.served == len(schedule.times) and max(map(len, clock.batches)) > 1
    reference = registry.reference()
    for stream in range(6):
        mine = np.flatnonzero(schedule.streams == stream)
        x = inputs[mine % len(inputs)][:, None, :].astype("float64")
        out = reference.forward(spec.replace(dtype="float64"), dict(weights), x)
        assert table.h[:, stream] == pytest.approx(out.h_n[:, 0], abs=1e-5)
        assert table.c[:, stream] == pytest.approx(out.c_n[:, 0], abs=1e-5)


def _trial(streams: int, p99_s: float, gave_up: bool = False, latencies=None) -> LoadTrial:
    latencies = latencies or [max(1, round(p99_s * 1e6))] * 100
    return LoadTrial(
        streams=streams,
        requested_hz=100.0 * streams,
        window_s=1.0,
        requests=100 * streams,
        offered_hz=100.0 * streams,
        achieved_hz=100.0 * streams,
        kept_every=streams,
        latencies_us=latencies,
        served=100 * streams - (1 if gave_up else 0),
        calls=10 * streams,
        mean_batch=(100 * streams - (1 if gave_up else 0)) / (10 * streams),
        gave_up=gave_up,
        percentiles=percentiles_of(latencies, 1e-6),
    )


def test_the_search_finds_where_p99_crosses_each_target():
    def p99(streams: int) -> float:  # 0.1 ms at one stream, 10 ms at 9,900
        return 1e-4 * (1 + streams / 100)

    ran = []

    def trial(streams: int) -> LoadTrial:
        ran.append(streams)
        return _trial(streams, p99(streams))

    trials = search.search(trial, [1e-3, 10e-3], start=300)
    ten, one = capacities(trials, [10e-3, 1e-3])
    assert 9900 / 1.05 <= ten.streams <= 9900 and 900 / 1.05 <= one.streams <= 900
    assert trials[ten.trial].streams == ten.streams
    assert len(ran) == len(set(ran)) <= 24  # no N run twice; the tighter target reuses
    assert any(n > ten.streams for n in ran)  # a failing trial bounds each answer


def test_not_one_stream_when_a_single_step_is_over_the_target():
    trials = search.search(lambda n: _trial(n, 2e-3 * n), [1e-3], start=64)
    (found,) = capacities(trials, [1e-3])
    assert (found.streams, found.trial) == (0, None)
    assert min(t.streams for t in trials) == 1


def test_the_answer_is_what_the_trials_settle_however_noisy():
    trials = [_trial(10, 1e-3), _trial(20, 20e-3), _trial(30, 1e-3), _trial(15, 1e-3, True)]
    # 30 passes above 20, which fails: not counted; 15 gave up: it fails every target
    (found,) = capacities(trials, [10e-3])
    assert (found.streams, found.trial) == (10, 0)
    # two hiccups in 100 requests put p99 at 30 ms, but its interval reaches down to 1 ms: a
    # trial that does not pass yet settles nothing bounds nothing
    hiccup = _trial(5, 0, latencies=[1000] * 98 + [30000] * 2)
    assert not hiccup.passes(10e-3) and not hiccup.fails(10e-3)
    (found,) = capacities([hiccup, *trials], [10e-3])
    assert (found.streams, found.trial) == (10, 1)


def test_a_trial_not_of_the_load_asked_for_is_refused():
    good = _trial(10, 1e-3).model_dump()
    with pytest.raises(ValueError, match="more than 5% apart"):
        LoadTrial.model_validate({**good, "requests": 1100, "offered_hz": 1100.0})
    with pytest.raises(ValueError, match="is not its 1000 requests"):
        LoadTrial.model_validate({**good, "offered_hz": 990.0})
    with pytest.raises(ValueError, match=r"percentiles\.p50"):
        LoadTrial.model_validate({**good, "percentiles": {**good["percentiles"], "p50": 1.0}})
    from harness.bench.load_mode import default_policy

    policy = default_policy(8)
    trials = [_trial(10, 1e-3), _trial(20, 20e-3)]
    test = LoadTest(policy=policy, trials=trials, capacity=capacities(trials, policy.targets_s))
    forged = test.model_dump()
    forged["capacity"][0]["streams"] = 20
    with pytest.raises(ValueError, match="capacity disagrees with its trials"):
        LoadTest.model_validate(forged)


def test_a_load_test_of_the_numpy_step_in_real_time():
    from harness import registry
    from harness.bench.load_mode import default_policy, load_test
    from harness.model.spec import ModelSpec
    from harness.model.weights import init_weights

    spec = ModelSpec("gru", 4, 8)
    runner = registry.get_backend("numpy").build(spec, init_weights(spec, seed=1)).step_runner()
    policy = default_policy(
        4, (50e-3,), rate_hz=200.0, trial_s=0.05, max_trial_s=0.1, min_requests=64
    )
    test = load_test(runner, spec, policy)
    assert LoadTest.model_validate(test.model_dump()) == test
    (found,) = test.capacity
    assert found.streams >= 1  # a step of an H=8 GRU: well under 50 ms however busy the machine
    for trial in test.trials:
        assert abs(trial.offered_hz / trial.requested_hz - 1) <= 0.05
        assert trial.window_s <= 0.1
