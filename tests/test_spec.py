from __future__ import annotations

import json

import pytest

from harness.model.spec import Cell, Head, ModelSpec, SpecError, load_spec, save_spec

VALID = {"cell": "lstm", "input_size": 8, "hidden_size": 16}


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"cell": "transformer"}, "ModelSpec.cell = 'transformer' is invalid: allowed rnn | lstm"),
        ({"input_size": 0}, "ModelSpec.input_size = 0 is invalid: allowed an integer >= 1"),
        ({"hidden_size": 2.5}, "ModelSpec.hidden_size = 2.5 is invalid"),
        ({"hidden_size": True}, "ModelSpec.hidden_size = True is invalid"),
        ({"num_layers": -1}, "ModelSpec.num_layers = -1 is invalid"),
        ({"bidirectional": "yes"}, "ModelSpec.bidirectional = 'yes' is invalid: allowed true or"),
        ({"batch_first": 1}, "ModelSpec.batch_first = 1 is invalid"),
        ({"dtype": "float16"}, "ModelSpec.dtype = 'float16' is invalid: allowed float32 | float64"),
        ({"head": {"units": 0}}, "ModelSpec.head.units = 0 is invalid"),
        ({"head": {"units": 3, "activation": "relu"}}, "head.activation = 'relu' is invalid: allo"),
        ({"head": {"size": 3}}, "unknown field head.'size'"),
        ({"head": 7}, "ModelSpec.head = 7 is invalid"),
        ({"layers": 2}, "unknown field 'layers': allowed cell, input_size, hidden_size"),
    ],
)
def test_invalid_values_name_field_value_and_allowed(changes, message):
    with pytest.raises(SpecError) as info:
        ModelSpec.from_dict({**VALID, **changes})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_field_is_named():
    with pytest.raises(SpecError, match="missing field 'hidden_size'"):
        ModelSpec.from_dict({"cell": "gru", "input_size": 3})


def test_spec_is_frozen_and_derives_sizes():
    spec = ModelSpec("gru", 8, 16, num_layers=2, bidirectional=True)
    assert spec.cell is Cell.GRU and spec.gates == 3 and spec.num_directions == 2
    assert spec.layer_input_size(0) == 8 and spec.layer_input_size(1) == 32
    with pytest.raises(AttributeError):
        spec.hidden_size = 3


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_round_trip_through_files(tmp_path, suffix):
    spec = ModelSpec(
        "rnn", 5, 64, num_layers=2, batch_first=True, head=Head(10, "softmax"), dtype="float64"
    )
    path = tmp_path / f"model{suffix}"
    save_spec(spec, path)
    assert load_spec(path) == spec


def test_reads_hand_written_toml(tmp_path):
    path = tmp_path / "seed.toml"
    path.write_text(
        '[model]\ncell = "rnn"\ninput_size = 1\nhidden_size = 64\n'
        '[model.head]\nunits = 10\nactivation = "softmax"\n'
    )
    assert load_spec(path) == ModelSpec("rnn", 1, 64, head=Head(10, "softmax"))


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("bad.toml", "cell = ", "is not valid TOML"),
        ("bad.json", "{", "is not valid JSON"),
        ("bad.yaml", "cell: rnn", "has suffix '.yaml': allowed .toml, .json"),
        ("list.json", json.dumps([1]), "must be a table of fields, got list"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "absent.toml")
