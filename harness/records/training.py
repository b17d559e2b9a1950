"""The training record of the trained examples (benchmarks/trained/train.py writes
results/trained/training.json, kind rnnbench-training, schema version 1) as typed records: the
data each model learned from, every epoch's losses (its trajectory), the final validation loss
beside a baseline, and the files it saved. Validated before it is written and when the report
reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, ValidationError, model_validator

from harness.records.base import Finite, NonNegative, Record
from harness.records.errors import one_line
from harness.records.results import Environment
from harness.records.store import ResultsError

KIND: Final = "rnnbench-training"
SCHEMA_VERSION: Final = 1
Count = Annotated[int, Field(ge=0)]


class Epoch(Record):
    """One epoch's losses: mean squared error (train_mse, val_mse) for a regression, loss and
    accuracy (train_loss, val_loss, val_accuracy) for a classifier."""

    epoch: Annotated[int, Field(ge=1)]
    train_mse: Finite | None = None
    val_mse: Finite | None = None
    train_loss: Finite | None = None
    val_loss: Finite | None = None
    val_accuracy: Annotated[float, Field(ge=0, le=1)] | None = None

    @model_validator(mode="after")
    def _some_loss(self) -> Epoch:
        if all(v is None for v in (self.train_mse, self.val_mse, self.train_loss, self.val_loss)):
            raise ValueError(f"epoch {self.epoch} records no loss")
        return self


class Baseline(Record):
    """What the model has to beat: a trivial predictor's validation loss."""

    name: str = Field(description="persistence, chance, ...")
    val_loss: Finite


class TrainedFiles(Record):
    """The model saved before training, after, and its ONNX export (paths from the repo)."""

    initial: str
    trained: str
    onnx: str


class TrainedModel(Record):
    name: str = Field(description="the example's name: NAME_init and NAME are its files")
    framework: Literal["torch", "keras"]
    model: str = Field(description="the architecture, in the framework's words")
    task: str
    loss: str = Field(description="the loss trained on")
    epochs: Annotated[int, Field(ge=1)]
    optimizer: str
    history: list[Epoch] = Field(description="every epoch's losses: the training trajectory")
    val_loss: Finite = Field(description="the validation loss of the weights kept")
    val_accuracy: Annotated[float, Field(ge=0, le=1)] | None = None
    baseline: Baseline
    seconds: NonNegative = Field(description="the training's wall time")
    files: TrainedFiles

    @model_validator(mode="after")
    def _every_epoch(self) -> TrainedModel:
        if [e.epoch for e in self.history] != list(range(1, len(self.history) + 1)):
            raise ValueError(f"{self.name}: history holds epochs out of order or missing")
        if len(self.history) > self.epochs:
            raise ValueError(f"{self.name}: {len(self.history)} epochs for epochs {self.epochs}")
        return self


class Dataset(Record):
    """Where a data set came from and how it was split."""

    source: str
    samples: Annotated[int, Field(ge=1)]
    split: str
    window: Annotated[int, Field(ge=1)] | None = Field(None, description="steps per window")
    train_windows: Count | None = None
    val_windows: Count | None = None
    mean: Finite | None = Field(None, description="the training part's mean (standardising)")
    std: Finite | None = Field(None, description="the training part's standard deviation")
    cut: Count | None = Field(None, description="the first validation sample")


class TrainingDocument(Record):
    """What training did to each example model."""

    kind: Literal["rnnbench-training"] = KIND
    schema_version: Literal[1] = SCHEMA_VERSION
    environment: Environment
    data: dict[str, Dataset] = Field(description="name -> the data set")
    models: list[TrainedModel]

    @model_validator(mode="after")
    def _unique_names(self) -> TrainingDocument:
        names = [m.name for m in self.models]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"model {repeated[0]!r} appears twice: one entry per model")
        return self


def is_training(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == KIND


def check_training(doc: Any, path: str | Path) -> TrainingDocument:
    """The typed record if `doc` is a training record this rnnbench reads, else a ResultsError
    of one line naming the file, the field and what is allowed."""
    if not is_training(doc):
        raise ResultsError(f"{path} is not a training record (kind {KIND!r} missing)")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"training record {path} has schema_version {version!r}: this rnnbench reads "
            f"{SCHEMA_VERSION}"
        )
    try:
        return TrainingDocument.model_validate(doc)
    except ValidationError as exc:
        raise ResultsError(one_line(exc, f"training record {path} is corrupt")) from None


def dumps(doc: TrainingDocument) -> str:
    """The record as JSON, validated again first: what is written is what a reader accepts."""
    data = doc.model_dump(mode="json", exclude_none=True)
    try:
        TrainingDocument.model_validate(data)
    except ValidationError as exc:
        raise ResultsError(one_line(exc, "refusing to write a training record")) from None
    return json.dumps(data, indent=1, allow_nan=False) + "\n"
