"""Training-trajectory parity: the same initial weights, data and clipped SGD for 20 steps in
every framework; the loss curves and the final weights must agree with the NumPy float64 run.

The task is a noisy sine forecast: read T samples of a sine of random phase and frequency,
predict the next one through a Dense(1) head, mean squared error.

For RNN and LSTM the recurrent biases Rb stay fixed: Keras trains one bias b = Wb + Rb, and SGD
on two biases that enter only as a sum moves that sum twice as far as SGD on one (and counts it
twice in the clipping norm). With Rb fixed, all three train the same parameters.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness import registry
from harness.json_values import JsonObject
from harness.model.errors import describe_error
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import init_weights
from harness.parity.checks import TOLERANCES, compare_all

STEPS, T, B, HIDDEN = 20, 16, 8, 12
LR, MAX_NORM = 0.5, 0.25  # every cell's first step is clipped (tests/test_optim.py)


def sine_batches(steps=STEPS, T=T, B=B, seed=0):
    """xs [steps, T, B, 1] and next-value targets ys [steps, B, 1], float32-representable."""
    rng = np.random.default_rng(seed)
    t = np.arange(T + 1)[:, None]
    xs, ys = [], []
    for _ in range(steps):
        freq, phase = rng.uniform(0.2, 0.6, B), rng.uniform(0, 2 * np.pi, B)
        wave = np.sin(freq * t + phase) + 0.05 * rng.standard_normal((T + 1, B))
        xs.append(wave[:T, :, None])
        ys.append(wave[T, :, None])
    return np.asarray(xs, np.float32).astype(np.float64), np.asarray(ys, np.float32).astype(
        np.float64
    )


def _fold_biases(spec: ModelSpec, weights) -> dict[str, np.ndarray]:
    """Keras keeps one bias Wb + Rb for RNN, LSTM and the linear_before_reset=0 GRU: compare
    the sum, which is what the model uses."""
    out = {k: np.asarray(v) for k, v in weights.items()}
    if spec.cell is not Cell.GRU or not spec.linear_before_reset:
        for layer in range(spec.num_layers):
            out[f"l{layer}.Wb"] = out[f"l{layer}.Wb"] + out.pop(f"l{layer}.Rb")
    return out


@dataclasses.dataclass
class Trajectory:
    cell: str
    dtype: str
    backend: str
    status: str  # passed | failed | skipped | error
    losses: list[float]
    max_loss_rel: float = 0.0
    max_weight_abs: float = 0.0
    failure: str = ""
    reason: str = ""  # why it was skipped

    def as_dict(self) -> JsonObject:
        return dataclasses.asdict(self)


def run_trajectories(cell: str, dtype: str, backends) -> list[Trajectory]:
    spec64 = ModelSpec(Cell(cell), 1, HIDDEN, head=Head(1), dtype="float64")
    initial = init_weights(spec64.replace(dtype="float32"), seed=5).astype("float64")
    xs, ys = sine_batches()
    reference = registry.get_backend(registry.REFERENCE).build(spec64, initial)
    frozen = () if spec64.cell is Cell.GRU else tuple(f"l{n}.Rb" for n in range(spec64.num_layers))
    ref_losses, ref_final = reference.train_sgd(xs, ys, LR, MAX_NORM, frozen)
    ref_weights = _fold_biases(spec64, ref_final)
    results = []
    for name in (b for b in backends if b in registry.trainable()):
        reason = registry.unavailable_reason(name)
        if reason:
            results.append(Trajectory(cell, dtype, name, "skipped", [], reason=reason))
            continue
        weights = initial.astype(dtype)
        try:
            prepared = registry.get_backend(name).build(weights.spec, weights)
            losses, final = prepared.train_sgd(
                xs.astype(dtype), ys.astype(dtype), LR, MAX_NORM, frozen
            )
        except NotSupported as exc:
            results.append(Trajectory(cell, dtype, name, "skipped", [], reason=str(exc)))
            continue
        except Exception as exc:  # reported, and the others still run
            failure = f"training {cell} {dtype} {name}: {describe_error(exc)}"
            results.append(Trajectory(cell, dtype, name, "error", [], failure=failure))
            continue
        results.append(_judge(cell, dtype, name, spec64, ref_losses, ref_weights, losses, final))
    return results


def _judge(cell, dtype, name, spec64, ref_losses, ref_weights, losses, final) -> Trajectory:
    ref_l, got_l = np.array(ref_losses), np.array(losses, dtype=np.float64)
    loss_rel = float(np.max(np.abs(got_l - ref_l) / np.abs(ref_l)))
    curve = compare_all({"loss": ref_l.astype(dtype)}, {"loss": got_l.astype(dtype)}, dtype)
    ref_cast = {k: v.astype(dtype) for k, v in ref_weights.items()}
    weights = compare_all(ref_cast, _fold_biases(spec64, final), dtype, prefix="final:")
    failed = [c for c in curve + weights if not c.passed]
    tol = TOLERANCES[dtype]
    return Trajectory(
        cell,
        dtype,
        name,
        "failed" if failed else "passed",
        [float(v) for v in losses],
        loss_rel,
        max(c.max_abs for c in weights),
        f"training {cell} {dtype} {name}: {failed[0].message} (rtol {tol.rtol})" if failed else "",
    )


TRAJECTORY_HEADER = (
    "cell",
    "dtype",
    "backend",
    "loss 0 -> last",
    "max loss rel",
    "max weight abs",
    "status",
)


def trajectory_cells(trajectories: list[Trajectory]) -> list[list[str]]:
    """One row per trajectory under TRAJECTORY_HEADER."""
    rows = []
    for t in trajectories:
        if not t.losses:
            rows.append(
                [t.cell, t.dtype, t.backend, "-", "-", "-", f"{t.status}: {t.reason or t.failure}"]
            )
            continue
        curve = f"{t.losses[0]:.4f} -> {t.losses[-1]:.4f}"
        rows.append(
            [
                t.cell,
                t.dtype,
                t.backend,
                curve,
                f"{t.max_loss_rel:.1e}",
                f"{t.max_weight_abs:.1e}",
                t.status,
            ]
        )
    return rows


MODEL_STEPS, MODEL_T, MODEL_B, MODEL_LR = 5, 12, 4, 0.05


def run_model_trajectories(weights, dtype: str, backends, steps: int = MODEL_STEPS):
    """A user's model trained for a few plain SGD steps on mean((y - goal)^2) in each trainable
    backend, from the file's own weights: the losses and the weights after the last step must
    agree with the NumPy float64 run (a parameter a backend keeps under another form, Keras'
    one bias, is compared as that form's sum)."""
    spec64 = weights.spec.replace(dtype="float64", batch_first=False)
    start = weights.astype("float32").astype("float64")
    start = type(start)(spec64, dict(start))
    rng = np.random.default_rng(7)
    x = np.float32(rng.standard_normal((MODEL_T, MODEL_B, spec64.input_size))).astype(np.float64)
    width = spec64.num_directions * spec64.hidden_size
    goal = np.float32(rng.standard_normal((MODEL_T, MODEL_B, width))).astype(np.float64)
    reference = registry.get_backend(registry.REFERENCE).build(spec64, start)
    try:
        ref_losses, ref_final = _sgd(reference, x, goal, steps)
    except NotSupported as exc:
        return [Trajectory(spec64.cell.value, dtype, "numpy", "skipped", [], reason=str(exc))]
    ref_weights = _fold_biases(spec64, ref_final)
    results = []
    for name in (b for b in backends if b in registry.trainable()):
        reason = registry.spec_reason(name, spec64) or registry.unavailable_reason(name)
        if reason:
            results.append(Trajectory(spec64.cell.value, dtype, name, "skipped", [], reason=reason))
            continue
        cast = start.astype(dtype)
        try:
            prepared = registry.get_backend(name).build(cast.spec, cast)
            losses, final = _sgd(prepared, x.astype(dtype), goal.astype(dtype), steps)
        except NotSupported as exc:
            results.append(
                Trajectory(spec64.cell.value, dtype, name, "skipped", [], reason=str(exc))
            )
            continue
        except Exception as exc:  # reported, and the others still run
            failure = f"training {spec64.cell.value} {dtype} {name}: {describe_error(exc)}"
            results.append(Trajectory(spec64.cell.value, dtype, name, "error", [], failure=failure))
            continue
        results.append(
            _judge(spec64.cell.value, dtype, name, spec64, ref_losses, ref_weights, losses, final)
        )
    return results


def _sgd(prepared, x, goal, steps: int):
    run, fetch = prepared.train_step_runner(x, goal, MODEL_LR)
    losses = []
    for _ in range(steps):
        losses.append(float(run()))
    _, final = fetch(losses[-1])
    return losses, final
