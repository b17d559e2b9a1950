"""How float32 rounding accumulates through recurrence: each backend's float32 run against the
NumPy float64 reference as the sequence grows from 1 to 1000 steps."""

from __future__ import annotations

import numpy as np

from harness import registry
from harness.model.spec import Cell, ModelSpec
from harness.model.weights import init_weights

LENGTHS = (1, 3, 10, 30, 100, 300, 1000)


def error_growth(
    cell: str, backends, lengths=LENGTHS, batch=4, input_size=8, hidden=32, seed=0, gain=1.0
) -> list[dict]:
    """One row per (backend, T): max |float32 - float64| over y and over the final states.
    `gain` scales R: the default init is contractive and the error levels off; a gain of a few
    units pushes the dynamics towards chaos, where rounding errors grow with T."""
    spec64 = ModelSpec(Cell(cell), input_size, hidden, dtype="float64")
    weights32 = init_weights(spec64.replace(dtype="float32"), seed=seed)
    weights32 = weights32.replace(
        **{
            name: (weights32[name] * np.float32(gain)).astype(np.float32)
            for name in weights32
            if name.endswith(".R")
        }
    )
    rng = np.random.default_rng(seed)
    x_all = rng.standard_normal((max(lengths), batch, input_size)).astype(np.float32)
    rows, prepared = [], {}
    for name in backends:
        reason = registry.unavailable_reason(name)
        if reason:
            rows.append({"backend": name, "T": None, "skipped": reason})
            continue
        prepared[name] = registry.get_backend(name).build(weights32.spec, weights32)
    params64 = dict(weights32.astype("float64"))
    for T in lengths:
        x = x_all[:T]
        ref = registry.reference().forward(spec64, params64, x.astype(np.float64))
        for name, model in prepared.items():
            out = model.forward(x)
            states = [(out.h_n, ref.h_n)] + (
                [(out.c_n, ref.c_n)] if spec64.cell is Cell.LSTM else []
            )
            rows.append(
                {
                    "backend": name,
                    "cell": cell,
                    "T": T,
                    "gain": gain,
                    "max_abs_y": _max_abs(out.y, ref.y),
                    "max_abs_final_state": max(_max_abs(a, b) for a, b in states),
                    "rms_y": float(np.sqrt(np.mean((out.y.astype(np.float64) - ref.y) ** 2))),
                }
            )
    return rows


def _max_abs(a, b) -> float:
    diff = np.abs(np.asarray(a, dtype=np.float64) - b)
    return float("nan") if not np.all(np.isfinite(diff)) else float(diff.max())


def growth_table(rows: list[dict]) -> tuple[list[str], list[list[str]], list[str]]:
    """T down the side, one column per backend: max |error| of y (float32 vs float64); then
    a line per skipped backend."""
    measured = [r for r in rows if r.get("T") is not None]
    backends = list(dict.fromkeys(r["backend"] for r in measured))
    table = []
    for T in sorted({r["T"] for r in measured}):
        cells = {r["backend"]: r["max_abs_y"] for r in measured if r["T"] == T}
        table.append([str(T), *(f"{cells[b]:.2e}" for b in backends)])
    skipped = [f"skipped {r['backend']}: {r['skipped']}" for r in rows if r.get("T") is None]
    return ["T", *backends], table, skipped
