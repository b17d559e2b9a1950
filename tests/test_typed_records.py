"""The parallel-in-time and training files as typed records (harness/records/): the committed
files read and write back unchanged, a file that breaks its type is refused in one line naming
the field, and what would not read back is never written. The analysis reads typed rows: a row
is frozen, and the penalty plot draws the penalties the sentences quote (T > 1)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pydantic
import pytest

from harness.analysis import measures, plots
from harness.cli.main import main
from harness.records import parallel_in_time, training
from harness.records.store import ResultsError
from tests.synthetic_results import example_doc, views

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "results" / "cpu-2core" / "parallel-in-time.json"
TRAINING = ROOT / "results" / "trained" / "training.json"


def test_the_committed_sweep_and_training_record_read_and_write_back_unchanged():
    raw = json.loads(SWEEP.read_text())
    sweep = parallel_in_time.check_sweep(raw, SWEEP)
    assert len(sweep.rows) == len(raw["rows"]) == 144
    assert sweep.machine == raw["environment"]["machine"]
    # what is written reads back as the same record (a field the file lacked is written null)
    assert parallel_in_time.check_sweep(json.loads(parallel_in_time.dumps(sweep)), "x") == sweep
    solved = [r for r in sweep.rows if r.solved]
    off = [r for r in sweep.rows if r.off_run]
    assert solved and all(r.converged and r.iterations for r in solved)
    assert all(r.parity_passed is False for r in off) and not set(map(id, off)) & set(
        map(id, solved)
    )
    raw = json.loads(TRAINING.read_text())
    record = training.check_training(raw, TRAINING)
    assert [m.name for m in record.models] == [m["name"] for m in raw["models"]]
    assert json.loads(training.dumps(record)) == {
        **raw,
        "environment": {k: v for k, v in raw["environment"].items() if v is not None},
    }


def _broken_sweep(doc: dict) -> dict:
    doc["rows"][3]["lle"] = "chaotic"
    return doc


def _extra_field(doc: dict) -> dict:
    doc["rows"][0]["speedup"] = 2.0
    return doc


def _epochs_out_of_order(doc: dict) -> dict:
    doc["models"][1]["history"][0]["epoch"] = 5
    return doc


def _no_loss(doc: dict) -> dict:
    doc["models"][0]["history"][2] = {"epoch": 3}
    return doc


@pytest.mark.parametrize(
    "source, edit, message",
    [
        (SWEEP, _broken_sweep, r"parallel-in-time sweep .* is corrupt: rows\[3\]\.lle = 'chaotic'"),
        (SWEEP, _extra_field, r"rows\[0\]\.speedup: not a field this file may hold"),
        (
            SWEEP,
            lambda d: {**d, "schema_version": 4},
            r"schema_version 4: this rnnbench reads 1, 2, 3",
        ),
        (TRAINING, _epochs_out_of_order, r"lstm_membrane: history holds epochs out of order"),
        (TRAINING, _no_loss, r"is corrupt: models\[0\]\.history\[2\]: epoch 3 records no loss"),
        (TRAINING, lambda d: {**d, "models": "none"}, r"models = 'none': allowed a list"),
    ],
    ids=["sweep-type", "sweep-extra", "sweep-version", "epochs", "no-loss", "models"],
)
def test_a_file_that_breaks_its_type_is_refused_in_one_line(
    source, edit, message, tmp_path, capsys
):
    bench, broken = tmp_path / "bench.json", tmp_path / source.name
    bench.write_text(json.dumps(example_doc()))
    broken.write_text(json.dumps(edit(json.loads(source.read_text()))))
    assert main(["report", str(bench), str(broken), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnbench: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out" / "report.md").exists()


def test_what_would_not_read_back_is_never_written():
    sweep = parallel_in_time.check_sweep(json.loads(SWEEP.read_text()), SWEEP)
    bad_row = sweep.rows[0].model_copy(update={"iterations": -1})  # copies skip validation
    with pytest.raises(ResultsError, match=r"refusing to write .* rows\[0\]\.iterations = -1"):
        parallel_in_time.dumps(sweep.model_copy(update={"rows": [bad_row]}))
    record = training.check_training(json.loads(TRAINING.read_text()), TRAINING)
    model = record.models[0].model_copy(update={"val_loss": float("nan")})
    with pytest.raises(ResultsError, match=r"refusing to write a training .*models\[0\]\.val_loss"):
        training.dumps(record.model_copy(update={"models": [model]}))


def test_the_penalty_plot_draws_the_penalties_the_sentences_quote(tmp_path, monkeypatch):
    """The example's LSTM penalties are 3x at T = 1, 8, 64 and 512; T=1 is no recurrence:
    the findings leave it out, and so does the plot."""
    result = measures.analyse(views(example_doc()))
    assert sorted(p.steps for p in result.penalties) == [1, 8, 64, 512]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        result.penalties[0].steps = 2  # a row is read, never changed
    drawn = []
    monkeypatch.setattr(plots, "recurrence_penalty", lambda rows: drawn.append(rows))
    monkeypatch.setattr(plots.Figures, "save", lambda self, name, fig: name)
    names = plots.plot_all(result, None, plots.Figures(tmp_path))
    assert "recurrence_penalty" in names
    (rows,) = drawn
    assert sorted(p.steps for p in rows) == [8, 64, 512]
