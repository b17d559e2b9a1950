"""Work counts of one case: matrix-product FLOPs (the elementwise gate math, O(T*B*H), is left
out and is a few percent at most for H >= 64) and the bytes one recurrent step must move."""

from __future__ import annotations

GATES = {"rnn": 1, "lstm": 4, "gru": 3, "mingru": 2}
ITEMSIZE = {"float32": 4, "float64": 8}


def layer_inputs(input_size: int, hidden: int, layers: int, directions: int = 1) -> list[int]:
    return [input_size] + [directions * hidden] * (layers - 1)


def input_projection_flops(cell, B, T, I, H, layers=1, directions=1) -> int:  # noqa: N803
    """x_t @ W for every step at once: the part of the work that can run in parallel over T."""
    G = GATES[cell]
    return sum(2 * T * B * i * G * H for i in layer_inputs(I, H, layers, directions)) * directions


def recurrent_flops(cell, B, T, H, layers=1, directions=1) -> int:  # noqa: N803
    """h_{t-1} @ R for every step: the serial part (minGRU has none)."""
    if cell == "mingru":
        return 0
    return 2 * T * B * H * GATES[cell] * H * layers * directions


def forward_flops(cell, B, T, I, H, layers=1, directions=1) -> int:  # noqa: N803
    return input_projection_flops(cell, B, T, I, H, layers, directions) + recurrent_flops(
        cell, B, T, H, layers, directions
    )


def case_flops(mode: str, cell, B, T, I, H, layers=1, size=0, directions=1) -> int:  # noqa: N803
    """FLOPs of one timed call, before the workload says what it computes (a training step's
    count then comes from train_flops with the implementation's own input_grad)."""
    if mode == "peak":
        return 2 * size**3
    if mode == "bandwidth":
        return 0
    if mode == "train":
        return train_flops(cell, B, T, I, H, layers, directions)
    if mode in ("stream", "load"):  # one call is one step (T is the length it was proven on)
        return forward_flops(cell, B, 1, I, H, layers, directions)
    return forward_flops(cell, B, T, I, H, layers, directions)


def of_case(case) -> int:
    """case_flops of a BenchCase (its own fields)."""
    return case_flops(
        case.mode,
        case.cell,
        case.batch,
        case.steps,
        case.input_size,
        case.hidden,
        case.layers,
        case.size,
        case.directions,
    )


def train_flops(cell, B, T, I, H, layers=1, directions=1, input_grad=True) -> int:  # noqa: N803
    """Products of one training step, counted from what the implementation computes: the
    forward, then per layer dW (the size of x.W), dR and dh through R (each the size of h.R),
    and dx through W for every layer but the first, whose dx only an implementation that
    returns input gradients (the NumPy reference's BPTT) computes; torch and Keras skip it
    when x needs no gradient."""
    forward = forward_flops(cell, B, T, I, H, layers, directions)
    inputs = input_projection_flops(cell, B, T, I, H, layers, directions)
    first = input_projection_flops(cell, B, T, I, H, 1, directions)
    recurrent = recurrent_flops(cell, B, T, H, layers, directions)
    return forward + inputs + 2 * recurrent + (inputs - first) + (first if input_grad else 0)


def step_bytes(cell, B, H, dtype="float32") -> int:  # noqa: N803
    """Bytes one recurrent step of one layer reads and writes at least: R once, the step's
    precomputed input gates, the previous state(s) and the new one(s)."""
    G, item = GATES[cell], ITEMSIZE[dtype]
    states = 2 if cell == "lstm" else 1
    return item * (G * H * H + G * H * B + 2 * states * H * B)


def case_bytes(mode: str, size: int, dtype="float32") -> int:
    """Bytes a bandwidth probe moves: one read and one write of `size` elements."""
    return 2 * size * ITEMSIZE[dtype] if mode == "bandwidth" else 0
