"""A parity record (`rnnbench parity --json`) as a typed record, schema version 1."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from harness.json_values import JsonObject
from harness.records.base import Finite, NonNegative
from harness.records.base import Record as _Record
from harness.records.results import Check


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
    case: str = Field(description="the case's name, a label")
    status: Literal["passed", "failed", "skipped", "error"]
    reason: str = ""
    comparisons: list[Check] = []
    audit: JsonObject | None = Field(None, description="an ONNX backend's export form")
    cell: str = Field(description="rnn | lstm | gru")
    dtype: str = Field(description="float32 | float64")
    layers: int
    directions: int = Field(description="1, or 2 for a bidirectional model")

    @model_validator(mode="after")
    def _status_of_its_checks(self) -> BackendResult:
        """A verdict is derived from its comparisons, never trusted."""
        if self.status == "passed" and any(not c.passed for c in self.comparisons):
            raise ValueError(
                f"{self.backend} {self.case}: status passed over a comparison that failed"
            )
        return self


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
    spec: JsonObject
    weights_digest: str
    notes: list[str] = []


class ParityRecord(Record):
    schema_version: Literal[2] = Field(2, description="version 1 is read too")
    command: Literal["parity"] = "parity"
    passed: bool | None = Field(None, description="absent in files before it was written")
    seconds: NonNegative | None = None
    model: ModelInfo | None = Field(None, description="parity --model: the file checked")
    against: str | None = Field(None, description="parity --against: the export checked")
    notes: list[str] = Field(
        [], description="what the check covered: sizes a file fixes, the error budget"
    )
    summary: list[SummaryRow]
    results: list[BackendResult]
    training: list[Trajectory] = []

    @model_validator(mode="after")
    def _passed_is_derived(self) -> ParityRecord:
        """`passed` is what the results and the trajectories say: something compared and
        nothing failed."""
        if self.passed is None:
            return self
        checked = any(r.status in ("passed", "failed", "error") for r in self.results)
        failed = any(
            r.status in ("failed", "error") or any(not c.passed for c in r.comparisons)
            for r in self.results
        ) or any(t.failure for t in self.training)
        if self.passed != (checked and not failed):
            said = "a check failed" if failed else "every check passed"
            raise ValueError(
                f"passed = {self.passed} while its results say "
                f"{said if checked else 'nothing was compared'}: a verdict is derived, never "
                "trusted"
            )
        return self


def upgrade(doc: Any) -> Any:
    """A version 1 record as version 2. Version 1 named each case only by its id
    (cell-Lk-uni|bi-full|lens-dtype): the fields version 2 records are read from that name
    here, once, for files written before the fields existed."""
    if not isinstance(doc, dict) or doc.get("schema_version") != 1:
        return doc
    results = []
    for result in doc.get("results") or []:
        if isinstance(result, dict) and "cell" not in result:
            parts = str(result.get("case", "")).split("-")
            layers = parts[1][1:] if len(parts) > 1 and parts[1][1:].isdigit() else "1"
            result = {
                **result,
                "cell": parts[0],
                "dtype": parts[-1],
                "layers": int(layers),
                "directions": 2 if "bi" in parts else 1,
            }
        results.append(result)
    return {**doc, "schema_version": 2, "results": results}
