"""A reverse-only model (an ONNX node's direction="reverse"), which no backend builds from a
ModelSpec (it says forward or bidirectional): checked on the numpy backend as the forward model
run on each sample's time-reversed valid steps, against the reference's reverse direction."""

from __future__ import annotations

import numpy as np

from harness import registry
from harness.model.spec import Cell
from harness.model.weights import CanonicalWeights, float32_exact
from harness.model_file.reference import reference
from harness.parity.checks import compare_all

T, B = 7, 3


def check_reverse_numpy(model, dtype: str, with_lens: bool, seed: int = 0):
    """Comparisons of the numpy backend's y, h_n (, c_n) with the reverse-direction reference."""
    spec = model.spec.replace(dtype=dtype, batch_first=False)
    rng = np.random.default_rng(seed)
    x = float32_exact(rng.standard_normal((T, B, spec.input_size)))
    lens = rng.integers(1, T + 1, size=B) if with_lens else np.full(B, T)
    lens[0] = T
    states = (spec.num_layers, B, spec.hidden_size)
    h0, drawn_c0 = (float32_exact(0.5 * rng.standard_normal(states)) for _ in range(2))
    c0 = drawn_c0 if spec.cell is Cell.LSTM else None
    received = {"lens": lens, **{f"h{k}": h0[k : k + 1] for k in range(spec.num_layers)}}
    if c0 is not None:
        received.update({f"c{k}": c0[k : k + 1] for k in range(spec.num_layers)})
    nodes = [_Slots(k) for k in range(spec.num_layers)]
    want = reference(model.weights, model.direction, nodes, x, received)
    want = {k: v for k, v in want.items() if k in ("y", "h_n", "c_n")}
    weights = CanonicalWeights(spec, dict(model.weights.astype(dtype)))
    prepared = registry.get_backend("numpy").build(spec, weights)
    cast = (None if a is None else a.astype(dtype) for a in (_reverse_each(x, lens), h0, c0))
    got = prepared.forward(next(cast), lens if with_lens else None, *cast).as_dict()
    got["y"] = _reverse_each(got["y"], lens)
    return compare_all(want, {k: v for k, v in got.items() if k in want}, dtype)


class _Slots:
    """The names under which layer k's lens and initial states sit in `received`."""

    layout = 0
    outputs: dict = {}

    def __init__(self, k: int):
        self.inputs = {"sequence_lens": "lens", "initial_h": f"h{k}", "initial_c": f"c{k}"}


def _reverse_each(a, lens):
    """[T, B, ...] with each sample's first lens[b] steps in reverse order (the rest kept)."""
    out = np.array(a, copy=True)
    for b, n in enumerate(lens):
        out[:n, b] = a[n - 1 :: -1, b]
    return out
