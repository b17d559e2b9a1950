"""A parity record (`rnnbench parity --json`) as a typed record, schema version 1."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from harness.records.results import Check, Finite, NonNegative
from harness.records.results import Record as _Record


class Record(_Record):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class SummaryRow(Record):
    backend: str
    cell: str
    dtype: str
    quantity: str
    cases: int
    max_abs: Finite
    max_rel: Finite
    worst_of_tolerance: float = Field(description="inf for a check that failed structurally")
    rtol: float | None = None
    status: str
    reason: str = ""


class BackendResult(Record):
    backend: str
    case: str
    status: Literal["passed", "failed", "skipped", "error"]
    reason: str = ""
    comparisons: list[Check] = []
    audit: dict[str, Any] | None = None


class Trajectory(Record):
    cell: str
    dtype: str
    backend: str
    status: str
    losses: list[float]
    max_loss_rel: float = 0.0
    max_weight_abs: float = 0.0
    failure: str = ""
    reason: str = ""


class ModelInfo(Record):
    path: str
    kind: str
    direction: str
    spec: dict[str, Any]
    weights_digest: str
    notes: list[str] = []


class ParityRecord(Record):
    schema_version: Literal[1] = 1
    command: Literal["parity"] = "parity"
    passed: bool | None = Field(None, description="absent in files before it was written")
    seconds: NonNegative | None = None
    model: ModelInfo | None = Field(None, description="parity --model: the file checked")
    against: str | None = Field(None, description="parity --against: the export checked")
    summary: list[SummaryRow]
    results: list[BackendResult]
    training: list[Trajectory] = []
