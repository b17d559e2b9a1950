"""The NumPy (or CuPy) step: each layer's input projection for one step, then the reference's
own cell equations (backends/numpy_cells.py) run for T = 1 from the carried state. The state
stays feature-major ([H, B] per layer, as the cells keep it), so a call transposes nothing but
its input and output."""

from __future__ import annotations

import numpy as np

from backends import numpy_cells, numpy_ref
from backends.streaming.base import StepRunner, check_streamable
from harness.model.spec import Cell


def numpy_step_runner(prepared) -> StepRunner:
    """prepared: a backends.numpy_backend.PreparedNumpy."""
    spec, arrays, params = prepared.spec, prepared.arrays, prepared.params
    check_streamable(spec)
    xp, lstm = arrays.xp, spec.cell is Cell.LSTM
    layers = []
    for layer in range(spec.num_layers):
        W, R, Wb, Rb = (params[f"l{layer}.{k}"][0] for k in ("W", "R", "Wb", "Rb"))
        P = params.get(f"l{layer}.P")
        variant = numpy_ref.variant_of(spec, None if P is None else P[0])
        bias = numpy_cells.projection_bias(spec.cell, Wb, Rb, variant.linear_before_reset)
        layers.append((W, R, Rb, bias[:, None], variant))

    def step(x_t, state):
        inp = arrays.put(x_t, spec.dtype).T  # [I, B]
        new = []
        for (W, R, Rb, bias, variant), (h, c) in zip(layers, state, strict=True):
            xw = W @ inp
            xw += bias
            tape = numpy_cells.forward(spec.cell, xw[None], R, Rb, h, c, None, False, variant)
            h = tape.states[1]
            new.append((h, tape.cells[1 % len(tape.cells)] if lstm else None))
            inp = h
        head = None
        if spec.head is not None:
            head = arrays.to_numpy(numpy_ref.head_forward(spec, params, inp.T, xp))
        y = arrays.to_numpy(inp.T)
        arrays.sync()
        return (y, head), new

    def to_state(h, c):
        return [
            (arrays.put(h[k].T, spec.dtype), None if c is None else arrays.put(c[k].T, spec.dtype))
            for k in range(spec.num_layers)
        ]

    def from_state(state):
        h = np.stack([arrays.to_numpy(s[0]).T for s in state])
        return h, (np.stack([arrays.to_numpy(s[1]).T for s in state]) if lstm else None)

    def zero_state(batch):
        shape = (spec.num_layers, batch, spec.hidden_size)
        return to_state(np.zeros(shape, spec.dtype), np.zeros(shape, spec.dtype) if lstm else None)

    def noop(x_t):
        out = arrays.to_numpy(xp.add(arrays.put(x_t, spec.dtype), 0))
        arrays.sync()
        return out

    library = "CuPy" if arrays.name == "cupy" else "NumPy"
    return StepRunner(
        step,
        zero_state,
        to_state,
        from_state,
        noop,
        f"{library}: per layer W x_t, then the reference's cell step from the carried state",
        f"{library}: the input in, one add of 0, the output out",
    )
