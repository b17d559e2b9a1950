"""The results store: atomic, versioned, and loud about files it cannot trust."""

from __future__ import annotations

import json

import pytest

from harness.bench import results
from harness.bench.suites import load_suite


def _environment(label="m", cpu="EPYC"):
    return {"machine": label, "cpu": {"model": cpu, "logical_cores": 2}, "libraries": {}}


def _doc():
    doc = results.new_document(load_suite("quick"), {"machine": "m"}, "2026-01-01T00:00:00")
    results.add_machine(doc, _environment(), {"loop_overhead_s": 1e-8}, host="h1")
    ok = {"id": "a", "case": {}, "status": "ok", "samples_s": [0.1, 0.2], "machine": "m"}
    doc["cases"] += [ok, {"id": "b", "case": {}, "status": "error", "reason": "x"}]
    return doc


def _version_1():
    """A file as rnnbench wrote it before schema version 2: one machine, at the top level."""
    return {
        "schema_version": 1,
        "kind": results.KIND,
        "suite": {"name": "quick"},
        "environment": _environment("old-box"),
        "selfcheck": {"loop_overhead_s": 2e-8},
        "cases": [{"id": "a", "case": {}, "status": "ok", "samples_s": [0.1]}],
    }


def test_round_trip_and_done_ids(tmp_path):
    path = tmp_path / "r.json"
    results.save_results(path, _doc())
    doc = results.load_results(path)
    assert doc["schema_version"] == results.SCHEMA_VERSION
    assert results.done_ids(doc) == {"a"}  # an error is measured again on resume


def test_upsert_replaces_by_id():
    doc = _doc()
    results.upsert(doc, {"id": "b", "case": {}, "status": "skipped", "reason": "y"})
    assert [c["status"] for c in doc["cases"]] == ["ok", "skipped"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "{not json", r"is corrupt: not JSON"),
        (lambda d: {**d, "schema_version": 99}, r"schema_version 99: this rnnbench reads 1..2"),
        (lambda d: {**d, "kind": "other"}, r"is not an rnnbench results file"),
        (lambda d: {k: v for k, v in d.items() if k != "cases"}, r"corrupt: missing cases"),
        (
            lambda d: {**d, "cases": [{"id": "a", "case": {}, "status": "fine"}]},
            r"case 0: status 'fine': allowed ok, failed",
        ),
        (
            lambda d: {
                **d,
                "cases": [{"id": "a", "case": {}, "status": "ok", "samples_s": [0.1, -1]}],
            },
            r"samples_s must be positive finite",
        ),
        (
            lambda d: {**d, "cases": [{"id": "a", "case": {}, "status": "ok", "samples_s": []}]},
            r"status ok without samples_s",
        ),
        (
            lambda d: {**d, "cases": [{**d["cases"][0], "machine": "elsewhere"}]},
            r"case 0: a: machine 'elsewhere' is not among the file's machines",
        ),
        (
            lambda d: {**d, "cases": [{**d["cases"][0], "machine": None}]},
            r"case 0: a: machine None is not among",  # only a lost group names none
        ),
        (lambda d: {**d, "machines": {"m": {"selfcheck": {}}}}, r"machines must map each label"),
        (lambda d: {**_version_1(), "environment": "x"}, r"environment is not an object"),
    ],
)
def test_untrustworthy_files_are_refused_in_one_line(tmp_path, mutate, message):
    path = tmp_path / "r.json"
    bad = mutate(_doc())
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(results.ResultsError, match=message) as info:
        results.load_results(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(results.ResultsError, match="cannot read results file"):
        results.load_results(tmp_path / "nothing.json")


def test_a_version_1_file_reads_as_one_machine_and_is_written_back_as_version_2(tmp_path):
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(_version_1()))
    doc = results.load_results(path)
    assert doc["schema_version"] == 2 and "environment" not in doc
    assert doc["machines"]["old-box"]["environment"]["cpu"]["model"] == "EPYC"
    assert doc["machines"]["old-box"]["selfcheck"] == {"loop_overhead_s": 2e-8}
    assert [r["machine"] for r in doc["cases"]] == ["old-box"]
    results.save_results(path, doc)
    assert results.load_results(path) == doc


def test_machine_views_split_a_file_by_the_machine_that_timed_each_case():
    doc = _doc()
    results.add_machine(doc, _environment("gpu-box", cpu="Xeon"), {}, host="g1", worker="tcp://g")
    doc["cases"].append({"id": "c", "case": {}, "status": "ok", "samples_s": [1.0]})
    doc["cases"][-1]["machine"] = "gpu-box"
    views = {v["environment"]["machine"]: v for v in results.machine_views(doc)}
    assert [r["id"] for r in views["m"]["cases"]] == ["a"]  # b was lost: no machine
    assert [r["id"] for r in views["m"]["lost"]] == ["b"] and views["gpu-box"]["lost"] == []
    assert [r["id"] for r in views["gpu-box"]["cases"]] == ["c"]
    assert views["gpu-box"]["environment"]["cpu"]["model"] == "Xeon"
    assert views["gpu-box"]["hosts"] == ["g1"] and views["m"]["selfcheck"]["loop_overhead_s"]


def test_a_label_names_one_environment_and_gathers_its_hosts():
    doc = _doc()
    assert results.add_machine(doc, _environment(), {}, host="h2", worker="tcp://w2") == "m"
    assert doc["machines"]["m"]["hosts"] == ["h1", "h2"]
    assert doc["machines"]["m"]["workers"] == ["tcp://w2"]
    with pytest.raises(results.ResultsError, match=r"label 'm' already names another .*Xeon"):
        results.add_machine(doc, _environment(cpu="Xeon"), {}, host="h3")
    assert doc["machines"]["m"]["hosts"] == ["h1", "h2"]
