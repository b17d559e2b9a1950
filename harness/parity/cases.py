"""The parity matrix's cases and their data. Weights, inputs and cotangents are drawn in
float32, so that the float64 reference sees exactly the numbers a float32 backend sees and any
difference is the backend's arithmetic."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from harness.model.arrays import Arrays
from harness.model.outputs import Outputs
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights, float32_exact, init_weights, load_weights


@dataclasses.dataclass(frozen=True)
class ParityCase:
    spec: ModelSpec  # its dtype is the dtype the backends run in
    T: int = 20
    B: int = 4
    with_lens: bool = False
    seed: int = 0
    weights_file: str | None = None  # canonical .npz; seeded init when None

    @property
    def id(self) -> str:
        s = self.spec
        parts = [
            s.cell.value,
            f"L{s.num_layers}",
            "bi" if s.bidirectional else "uni",
            "lens" if self.with_lens else "full",
            s.dtype,
        ]
        return "-".join(parts)


def default_cases(
    cells=("rnn", "lstm", "gru"), dtypes=("float32", "float64"), input_size=5, hidden_size=16
) -> list[ParityCase]:
    """cells x {1, 2 layers} x {uni, bidirectional} x {with, without sequence_lens} x dtypes;
    the 2-layer models carry a softmax head."""
    cases = []
    for cell, layers, bi, lens, dtype in itertools.product(
        cells, (1, 2), (False, True), (False, True), dtypes
    ):
        head = Head(3, "softmax") if layers == 2 else None
        spec = ModelSpec(
            cell,
            input_size,
            hidden_size,
            num_layers=layers,
            bidirectional=bi,
            head=head,
            dtype=dtype,
        )
        cases.append(ParityCase(spec, with_lens=lens))
    return cases


def case_data(case: ParityCase) -> tuple[CanonicalWeights, Arrays]:
    """float32-representable weights and inputs, in float64 (the reference's dtype)."""
    spec64 = case.spec.replace(dtype="float64")
    spec32 = spec64.replace(dtype="float32")
    if case.weights_file:
        stored = load_weights(case.weights_file)
        weights32 = CanonicalWeights(spec32, dict(stored.astype("float32")))
    else:
        weights32 = init_weights(spec32, seed=case.seed)
    weights = weights32.astype("float64")
    rng = np.random.default_rng(case.seed + 1)
    shape_x = (
        (case.B, case.T, spec64.input_size)
        if spec64.batch_first
        else (case.T, case.B, spec64.input_size)
    )
    states = (spec64.num_layers * spec64.num_directions, case.B, spec64.hidden_size)
    inputs = {
        "x": float32_exact(rng.standard_normal(shape_x)),
        "seq_lens": None,
        "h0": float32_exact(0.5 * rng.standard_normal(states)),
        "c0": None,
    }
    if spec64.cell is Cell.LSTM:
        inputs["c0"] = float32_exact(0.5 * rng.standard_normal(states))
    if case.with_lens:
        lens = rng.integers(1, case.T + 1, size=case.B)
        lens[0] = case.T  # one full-length sample, so T is not inferred from the lengths
        inputs["seq_lens"] = lens.astype(np.int64)
    return weights, inputs


def cotangents_for(outputs: Outputs, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 2)
    return {k: float32_exact(rng.standard_normal(v.shape)) for k, v in outputs.as_dict().items()}


def model_cases(spec, weights_file, dtypes, T=None, B=None):
    """One model in each dtype, with and without sequence_lens, at T and B when given (a file's
    static sizes) else the matrix's; weights that do not fit the spec are refused before
    anything runs."""
    sizes = {k: v for k, v in (("T", T), ("B", B)) if v is not None}
    cases = [
        ParityCase(spec.replace(dtype=d), with_lens=lens, weights_file=weights_file, **sizes)
        for d in dtypes
        for lens in (False, True)
    ]
    if weights_file:
        case_data(cases[0])
    return cases
