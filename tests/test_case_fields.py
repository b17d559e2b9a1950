"""Case fields are declared once (harness/records/case_fields.py); the case id, the
interleaved group, the analysis's table key, a suite's identity and its sweep axes follow from
the declaration. Each test below fails naming what a new field lacks, and where to add it."""

from __future__ import annotations

import pytest
from pydantic import Field

from harness.analysis.rows import KEY_FIELDS
from harness.bench.case import BenchCase, make_case, model_case
from harness.bench.group import new_record
from harness.bench.suites import load_suite
from harness.model.spec import ModelSpec
from harness.records import case_fields
from harness.records.case_fields import CaseFields, case_id, roles
from harness.records.suite import Sweep

TIMED = make_case("torch-cpu", "forward", "gru", batch=4, steps=9, threads=2, sweep="x")
PROBE = make_case("numpy", "peak", size=64, threads=2)


def test_every_case_field_says_its_role():
    assert list(roles()) == list(CaseFields.model_fields)

    class Grown(CaseFields):
        compiled: bool = Field(False, description="a new axis declared without its Role")

    with pytest.raises(KeyError, match=r"Grown\.compiled has no Role: declare it as Annotated"):
        roles(Grown)


def test_what_makes_a_case_is_in_its_id_or_decided_by_a_field_that_is():
    named = {name for name, role in roles().items() if role.id}
    for name, role in roles().items():
        if role.identity and not role.id:
            assert role.follows in named, (
                f"CaseFields.{name} changes what a case is but not its id: give it "
                "Role(id=...) (its part of the id), Role(follows=FIELD) where a field of the "
                "id decides it, or Role(identity=False) if it only labels the case"
            )


def _other(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return f"{value}x" if value else "x"


@pytest.mark.parametrize("case", [TIMED, PROBE], ids=["timed", "probe"])
def test_every_part_of_the_id_shows_its_fields_value(case):
    fields = case.as_dict()
    for name, role in roles().items():
        shown = {"always": True, "timed": not case.is_probe, "probe": case.is_probe}
        if not role.id or not shown.get(role.shown, True):
            continue
        changed = {**fields, name: _other(fields.get(name))}
        assert case_id(changed, case.is_probe) != case.id, (
            f"CaseFields.{name}'s id part {role.id!r} does not show its value: write '{{}}' "
            "where the value goes"
        )


def test_the_ids_are_those_results_files_hold():
    assert TIMED.id == "torch-cpu/forward/gru/float32/B4/T9/I128/H256/L1/th2"
    assert PROBE.id == "numpy/peak/float32/N64/th2"
    spec = ModelSpec("lstm", 8, 16, bidirectional=True)
    own = model_case("numpy", "forward", spec, "m.onnx", "w.npz", "m.onnx", 1, 16, 1)
    assert own.id == "numpy/forward/lstm/float32/B1/T16/I8/H16/L1/bi/model-m.onnx/th1"
    assert own.spec == spec and own.model_file == "" and own.weights_file == "w.npz"


def test_every_sweep_axis_sets_a_case_field_and_every_settable_field_has_one():
    axes = set(case_fields.sweep_axes())
    in_suites = set(Sweep.model_fields) - {"name"}  # name: the sweep's label, the case's sweep
    assert not in_suites - axes, (
        f"the suite's [[sweep]] has {sorted(in_suites - axes)}, which no case field takes: "
        "name it in that field's Role(axis=...) in harness/records/case_fields.py"
    )
    assert not axes - in_suites, (
        f"case fields {sorted(case_fields.sweep_axes()[a] for a in axes - in_suites)} have no "
        "[[sweep]] axis: add one to Sweep in harness/records/suite.py, or declare "
        "Role(axis='') where a suite cannot set it"
    )


@pytest.mark.parametrize("suite", ["quick", "full", "gpu"])
def test_a_case_round_trips_through_its_record(suite):
    for case in load_suite(suite).cases:
        assert BenchCase.from_dict(case.as_dict()) == case
        record = new_record(case)
        assert record.case == CaseFields.model_validate(case.as_dict())
        assert record.id == case.id == case_id(record.case.model_dump(), case.is_probe)


def test_keys_and_groups_derive_from_the_declaration():
    assert ("machine", *case_fields.key_fields()) == KEY_FIELDS
    assert set(case_fields.not_shared()) == {"backend", "mode", "sweep", "device", "model_file"}
    assert "sweep" not in case_fields.identity_fields()
    gemm = make_case("torch-cpu", "gemm", "gru", batch=4, steps=9, threads=2, sweep="y")
    assert gemm.group == TIMED.group  # they differ only in what a group does not share
    longer = make_case("torch-cpu", "forward", "gru", batch=4, steps=10, threads=2)
    assert longer.group != TIMED.group
