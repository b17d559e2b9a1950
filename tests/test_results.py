"""The results store: atomic, versioned, and loud about files it cannot trust."""

from __future__ import annotations

import json

import pytest

from harness.bench import results
from harness.bench.suites import load_suite


def _doc():
    doc = results.new_document(load_suite("quick"), {"machine": "m"}, "2026-01-01T00:00:00")
    doc["cases"].append({"id": "a", "case": {}, "status": "ok", "samples_s": [0.1, 0.2]})
    doc["cases"].append({"id": "b", "case": {}, "status": "error", "reason": "x"})
    return doc


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
        (lambda d: {**d, "schema_version": 99}, r"schema_version 99: this rnnbench reads 1..1"),
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
