"""The answer's sentences (harness/analysis/answer.py) on results that lack parts of the data,
mix devices or hold several machines: each sentence is left out when its data is missing, never
made up, and nothing crashes."""

from __future__ import annotations

import dataclasses

from harness.analysis import measures
from harness.analysis.answer import answers
from harness.analysis.parallel_in_time import analyse
from harness.analysis.sections import figure_name
from harness.bench.case import make_case
from tests.synthetic_results import document, example_doc, record, spread, views

STANDARD = {"cell": "lstm", "batch": 32, "steps": 100, "input_size": 128, "hidden": 256}


def _answer(*docs) -> dict[str, list[str]]:
    benches = views(*docs)
    result = measures.analyse(benches)
    solves = analyse([], result.rows, result.penalties)
    return dict(answers(dataclasses.replace(result, parallel_in_time=solves)))


def test_the_fastest_backend_ranks_a_gpu_at_one_thread_against_a_cpu_at_two():
    cpu = record(make_case("torch-cpu", "forward", threads=2, **STANDARD), spread(20e-3))
    gpu = record(make_case("torch-cuda", "forward", threads=1, **STANDARD), spread(2e-3))
    (sentences,) = _answer(document([cpu, gpu], "box")).values()
    fastest = next(s for s in sentences if s.startswith("Fastest"))
    assert "**torch-cuda** (gpu, 1 thread)" in fastest and "; 2 backends timed." in fastest
    assert "the next, torch-cpu, takes 10.00x [" in fastest


def test_mingru_at_b1_and_no_bandwidth_make_no_floor_and_no_compute_bound_claim():
    records = [
        record(make_case("torch-cpu", "forward", "mingru", batch=1, steps=t, threads=2), spread(t))
        for t in (16, 64, 256)
    ]
    records.append(record(make_case("torch-cpu", "peak", size=512, threads=2), spread(1e-3)))
    answer = _answer(document(records, "box"))
    assert answer == {}  # nothing it could say: no standard case, no cell with a roofline


def test_a_floor_without_a_copy_probe_claims_no_batch_and_says_no_bound():
    doc = example_doc("box")
    doc["cases"] = [c for c in doc["cases"] if c["case"]["mode"] != "bandwidth"]
    (sentences,) = _answer(doc).values()
    floor = "One step at B=1 costs at least (fastest backend timed): LSTM"
    assert any(s.startswith(floor) for s in sentences)
    assert not any("compute-bound" in s for s in sentences)


def test_several_machines_answer_each_with_files_of_their_own():
    answer = _answer(example_doc("a-b"), example_doc("a_b", scale=0.5))
    assert sorted(answer) == ["a-b", "a_b"]
    assert figure_name("a-b") != figure_name("a_b")
    floors = [next(s for s in answer[m] if s.startswith("One step")) for m in ("a-b", "a_b")]
    assert "10.0 us [" in floors[0] and "5.0 us [" in floors[1]  # B = 10 us, scaled by 0.5
