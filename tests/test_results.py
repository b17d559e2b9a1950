"""The results store: atomic, versioned, typed, and loud about files it cannot trust. Every
statistic a reader uses is derived from the raw samples; a stored one that disagrees, NaN, a
duplicate id or a record without what its status needs makes the file refused in one line."""

from __future__ import annotations

import json

import pytest

from harness.bench.suites import load_suite
from harness.records import store as results
from harness.records.results import CaseRecord
from harness.stats import summarize


def _environment(label="m", cpu="EPYC"):
    return {"machine": label, "cpu": {"model": cpu, "logical_cores": 2}, "libraries": {}}


def _case(steps=8):
    return {
        "backend": "numpy",
        "mode": "forward",
        "cell": "lstm",
        "dtype": "float32",
        "batch": 1,
        "steps": steps,
        "input_size": 4,
        "hidden": 8,
        "layers": 1,
        "threads": 1,
    }


A = "numpy/forward/lstm/float32/B1/T8/I4/H8/L1/th1"  # the ids _case(8) and _case(16) make
B = "numpy/forward/lstm/float32/B1/T16/I4/H8/L1/th1"


def _doc():
    doc = results.new_document(load_suite("quick"), {"machine": "m"}, "2026-01-01T00:00:00")
    results.add_machine(doc, _environment(), {"loop_overhead_s": 1e-8}, host="h1")
    ok = {"id": A, "case": _case(), "status": "ok", "samples_s": [0.1, 0.2], "machine": "m"}
    ok["stats"] = summarize(ok["samples_s"])
    error = {"id": B, "case": _case(16), "status": "error", "reason": "x"}
    doc.cases += [CaseRecord.model_validate(ok), CaseRecord.model_validate(error)]
    return doc


def _raw():
    return json.loads(results.dumps(_doc()))


def _version_1():
    """A file as rnnbench wrote it before schema version 2: one machine, at the top level."""
    return {
        "schema_version": 1,
        "kind": results.KIND,
        "suite": {"name": "quick", "timing": {}},
        "environment": _environment("old-box"),
        "selfcheck": {"loop_overhead_s": 2e-8},
        "cases": [{"id": A, "case": _case(), "status": "ok", "samples_s": [0.1]}],
    }


def test_round_trip_and_done_ids(tmp_path):
    path = tmp_path / "r.json"
    results.save_results(path, _doc())
    doc = results.load_results(path)
    assert doc.schema_version == results.SCHEMA_VERSION == 6
    assert results.done_ids(doc) == {A}  # an error is measured again on resume
    assert doc.suite.identity.case_ids == [c.id for c in load_suite("quick").cases]


def test_upsert_replaces_by_id():
    doc = _doc()
    results.upsert(doc, CaseRecord(id=B, case=_case(16), status="skipped", reason="y"))
    assert [c.status for c in doc.cases] == ["ok", "skipped"]


def _with_case(**change):
    def mutate(d):
        d["cases"][0].update(change)
        return d

    return mutate


def _stats_times(factor):
    def mutate(d):
        case = d["cases"][0]
        case["stats"] = {**case["stats"], "median": case["stats"]["median"] * factor}
        return d

    return mutate


def _samples_times(factor):
    def mutate(d):
        case = d["cases"][0]
        case["samples_s"] = [s * factor for s in case["samples_s"]]
        return d

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "{not json", r"is corrupt: not JSON"),
        (
            lambda d: {**d, "schema_version": 99},
            r"schema_version 99: this rnnbench reads 1, 2, 3, 4, 5, 6",
        ),
        (lambda d: {**d, "kind": "other"}, r"is not an rnnbench results file"),
        (lambda d: {k: v for k, v in d.items() if k != "suite"}, r"suite: missing"),
        (_with_case(status="fine"), r"cases\[0\]\.status = 'fine': allowed 'ok', 'failed'"),
        (_with_case(samples_s=[0.1, -1]), r"cases\[0\]\.samples_s\[1\] = -1: allowed a number > 0"),
        (_with_case(samples_s=[], stats=None), r"status ok without samples_s"),
        (_with_case(machine="elsewhere"), r"machine 'elsewhere' is not among the file's machines"),
        (_with_case(machine=None), rf"case '{A}': status ok names no machine"),
        (_stats_times(10), rf"case '{A}': stats.median = .* disagrees with its samples_s"),
        (_samples_times(10), rf"case '{A}': stats.min = .* disagrees with its samples_s"),
        (_with_case(samples_s=[], status="error"), r"a stats block but no samples_s"),
        (lambda d: {**d, "cases": [d["cases"][0], d["cases"][0]]}, rf"case id '{A}' appears twice"),
        (
            lambda d: (d["cases"][0]["case"].pop("backend"), d)[1],
            r"cases\[0\]\.case\.backend: missing",
        ),
        (lambda d: (d["cases"][0].update(stats="x"), d)[1], r"cases\[0\]\.stats = 'x'"),
        (
            lambda d: {**d, "machines": {"m": {"selfcheck": {}}}},
            r"machines\.m\.environment: missing",
        ),
        (lambda d: {**_version_1(), "environment": "x"}, r"environment"),
        (
            lambda d: json.dumps(d).replace('"samples_s": [', '"samples_s": [NaN, ', 1),
            r"NaN, which is not a number",
        ),
        # numbers as strings, booleans for integers, counts below 1 and absurd sizes: refused
        # as written, never converted
        (_with_case(samples_s=["0.1", "0.2"], stats=None), r"samples_s\[0\] = '0\.1'"),
        (_with_case(loops=-5), r"cases\[0\]\.loops = -5"),
        (_with_case(loops="227"), r"cases\[0\]\.loops = '227'"),
        (lambda d: (d["cases"][0]["case"].update(batch=True), d)[1], r"case\.batch = True"),
        (lambda d: (d["cases"][0]["case"].update(hidden=10**30), d)[1], r"case\.hidden"),
        (_with_case(samples_s=[1e300, 2e300], stats=None), r"samples_s\[0\] = 1e\+300"),
        (lambda d: "[" * 100000 + "]" * 100000, r"nested too deeply"),
        (lambda d: {**_version_1(), "cases": {"a": 1}}, r"cases = \{'a': 1\}: allowed a list"),
        (lambda d: {**d, "schema_version": "4"}, r"schema_version = '4': allowed an integer"),
        (lambda d: {**d, "schema_version": True}, r"schema_version = True: allowed an integer"),
        (
            lambda d: (d["cases"][0]["case"].update(hidden=999), d)[1],
            rf"case '{A}' holds the fields of .*H999.*: an id names its fields",
        ),
    ],
)
def test_untrustworthy_files_are_refused_in_one_line(tmp_path, mutate, message):
    path = tmp_path / "r.json"
    bad = mutate(_raw())
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(results.ResultsError, match=message) as info:
        results.load_results(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_missing_stats_block_is_derived_not_needed(tmp_path):
    data = _raw()
    data["cases"][0]["stats"] = None
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    record = results.load_results(path).cases[0]
    assert record.derived().median == pytest.approx(0.15)


def test_missing_file(tmp_path):
    with pytest.raises(results.ResultsError, match="cannot read results file"):
        results.load_results(tmp_path / "nothing.json")


def test_nothing_invalid_is_ever_written(tmp_path):
    """A NaN is refused as it is set; one that gets in past validation is refused at the write."""
    from pydantic import ValidationError

    doc = _doc()
    with pytest.raises(ValidationError, match="finite number"):
        doc.cases[0].samples_s = [0.1, float("nan")]
    fields = {**doc.cases[0].__dict__, "samples_s": [0.1, float("nan")]}
    doc.cases[0] = CaseRecord.model_construct(**fields)  # unvalidated, as a bug might make it
    with pytest.raises(results.ResultsError, match="refusing to write"):
        results.save_results(tmp_path / "r.json", doc)
    assert not (tmp_path / "r.json").exists()


def test_a_version_1_file_reads_as_one_machine_and_is_written_back_as_version_4(tmp_path):
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(_version_1()))
    doc = results.load_results(path)
    assert doc.schema_version == results.SCHEMA_VERSION and doc.suite.identity is None
    assert doc.machines["old-box"].environment.cpu["model"] == "EPYC"
    assert doc.machines["old-box"].selfcheck == {"loop_overhead_s": 2e-8}
    assert [r.machine for r in doc.cases] == ["old-box"]
    results.save_results(path, doc)
    assert results.load_results(path) == doc


def test_machine_views_split_a_file_by_the_machine_that_timed_each_case():
    doc = _doc()
    results.add_machine(doc, _environment("gpu-box", cpu="Xeon"), {}, host="g1", worker="tcp://g")
    other = {"id": "c", "case": _case(), "status": "ok", "samples_s": [1.0], "machine": "gpu-box"}
    doc.cases.append(CaseRecord.model_validate(other))
    views = {v.machine: v for v in results.machine_views(doc)}
    assert [r.id for r in views["m"].cases] == [A]  # B was lost: no machine
    assert [r.id for r in views["m"].lost] == [B] and views["gpu-box"].lost == []
    assert [r.id for r in views["gpu-box"].cases] == ["c"]
    assert views["gpu-box"].environment.cpu["model"] == "Xeon"
    assert views["gpu-box"].hosts == ["g1"] and views["m"].selfcheck["loop_overhead_s"]


def test_a_label_names_one_environment_and_gathers_its_hosts():
    doc = _doc()
    assert results.add_machine(doc, _environment(), {}, host="h2", worker="tcp://w2") == "m"
    assert doc.machines["m"].hosts == ["h1", "h2"]
    assert doc.machines["m"].workers == ["tcp://w2"]
    with pytest.raises(results.ResultsError, match=r"label 'm' already names another .*Xeon"):
        results.add_machine(doc, _environment(cpu="Xeon"), {}, host="h3")
    assert doc.machines["m"].hosts == ["h1", "h2"]


def test_the_committed_results_validate():
    """Every results, parity and training file under results/ reads as its typed record."""
    from pathlib import Path

    from harness.analysis.report import load_inputs

    root = Path(__file__).resolve().parents[1] / "results"
    # not records: the schemas, the probes' and selfcheck's own files, the prediction check's
    # summary (benchmarks/prediction_check.py)
    skipped = ("selfcheck.json", "gpu_speed.json", "tf32.json", "summary.json")
    files = [
        str(p)
        for p in sorted(root.rglob("*.json"))
        if "schema" not in p.parts
        and "parallel-in-time-iteration-cost" not in p.name
        and p.name not in skipped
    ]
    assert any("prediction" in f for f in files)  # the prediction check's records read too
    assert files
    inputs = load_inputs(files)
    assert inputs.benches and inputs.parities and inputs.sweeps and inputs.trainings


def test_the_published_schemas_and_tables_are_the_codes(tmp_path):
    from pathlib import Path

    from harness.records import publish

    root = Path(__file__).resolve().parents[1] / "results"
    for path in publish.write_schemas(tmp_path):
        committed = root / "schema" / path.name
        assert committed.read_text() == path.read_text(), (
            f"{path.name} is stale: run rnnbench schema --readme results/README.md"
        )
    readme = (root / "README.md").read_text()
    from harness.records.results import SCHEMA_VERSION

    assert f"schema version {SCHEMA_VERSION}; versions 1 to {SCHEMA_VERSION - 1} are read" in (
        readme
    ), "results/README.md's prose names another schema version than the code's"
    assert f"{publish.BEGIN}\n{publish.tables()}{publish.END}" in readme, (
        "results/README.md's tables are stale: rnnbench schema --readme results/README.md"
    )


def test_a_version_3_file_names_its_solve_pit_and_reads_as_parallel_in_time(tmp_path):
    doc = json.loads(results.dumps(_doc()))
    solve = {"method": "newton", "tol": 1e-6, "max_iter": 9, "lle": -0.5, "converged": True}
    doc["cases"][0]["pit"] = {**solve, "iterations": 4}
    doc["schema_version"] = 3
    path = tmp_path / "v3.json"
    path.write_text(json.dumps(doc))
    loaded = results.load_results(path)
    assert loaded.schema_version == results.SCHEMA_VERSION
    assert loaded.cases[0].parallel_in_time.iterations == 4
    doc["schema_version"] = 4  # a version 4 file with the old name is refused, naming it
    path.write_text(json.dumps(doc))
    with pytest.raises(results.ResultsError, match="pit"):
        results.load_results(path)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "read-only"])
def test_an_out_that_a_results_file_would_destroy_is_refused(tmp_path, kind):
    """A link, a device or a pipe would be replaced by a regular file (as /dev/null once
    was); a read-only file is not the user's to overwrite."""
    import os

    out = tmp_path / "r.json"
    if kind == "symlink":
        (tmp_path / "target.json").write_text("{}")
        out.symlink_to(tmp_path / "target.json")
    elif kind == "fifo":
        os.mkfifo(out)
    else:
        out.write_text("{}")
        out.chmod(0o444)
    with pytest.raises(results.ResultsError, match="cannot write results file") as info:
        results.check_writable(out)
    assert "\n" not in str(info.value)
    assert out.is_symlink() or out.exists()  # left as it was


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["results"][0].update(status="failed"), "a verdict is derived"),
        (lambda d: d.update(passed="yes"), "passed = 'yes'"),
        (
            lambda d: d["results"][0]["comparisons"][0].update(passed=False),
            "status passed over a comparison that failed",
        ),
        (lambda d: d["results"][0].update(layers="1"), "layers = '1'"),
    ],
)
def test_a_parity_record_whose_verdict_or_types_do_not_hold_is_refused(change, words):
    """A parity JSON's verdicts are derived from its comparisons, and its values typed as
    written: the committed reference record, edited, is refused in one line."""
    from pathlib import Path

    from harness.parity.report import read_parity

    path = Path(__file__).resolve().parents[1] / "results" / "cpu-reference" / "parity.json"
    doc = json.loads(path.read_text())
    read_parity(path, doc)  # as committed: it holds
    first = next(r for r in doc["results"] if r["status"] == "passed" and r["comparisons"])
    doc["results"].remove(first)
    doc["results"].insert(0, first)
    change(doc)
    with pytest.raises(results.ResultsError, match="parity record .* is corrupt") as info:
        read_parity(path, doc)
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "writer, expected",
    [
        # a newer rnnbench: read it with that one
        (
            "rnnbench 9.0.0",
            [
                "cases[0].case.colour: not a field rnnbench",
                "written by rnnbench 9.0.0; read it with that rnnbench or newer",
            ],
        ),
        # this very rnnbench, yet a field it does not know: edited by hand, or written by a
        # changed copy whose record gained a field without a schema version bump
        (
            results.WRITER,
            [f"though the file says {results.WRITER} wrote it", "schema_version bump", "colour"],
        ),
    ],
    ids=["newer-version", "this-version"],
)
def test_a_field_unknown_here_names_who_wrote_the_file(tmp_path, writer, expected):
    doc = json.loads(results.dumps(_doc()))
    assert doc["written_by"] == results.WRITER
    doc["written_by"] = writer
    doc["cases"][0]["case"]["colour"] = "blue"
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(results.ResultsError) as refused:
        results.load_results(path)
    message = str(refused.value)
    assert all(words in message for words in expected), message
    assert "\n" not in message
