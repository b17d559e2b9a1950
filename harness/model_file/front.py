"""What a model file takes before its recurrence, and the inputs that exercise it.

A file's sequence input is x [T, B, I] itself, or integer tokens [T, B] looked up in an
embedding table [V, I] (nn.Embedding, keras Embedding, an ONNX Gather); a Keras model may mask
steps (a Masking layer: every feature equal to its mask_value; Embedding(mask_zero=True): token
0). A masked step leaves every layer's state as it was; the layer's output there repeats its
last output (Keras's default) or is zero (`zero_output_for_mask`, which Bidirectional forces).

`draw` makes the inputs a check runs every runtime on: tokens across the vocabulary, and, where
the model masks, padded batches of varied lengths (one sample full, others padded after their
steps, before them, or with a gap). `recurrence_input` and `mask_of` turn what a file takes into
what the reference computes from."""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.model.front_end import PLAIN, FrontEnd
from harness.model.weights import float32_exact

__all__ = ["PLAIN", "FrontEnd", "Drawn", "draw", "padding_mask", "mask_of", "compress", "spread"]


@dataclasses.dataclass(frozen=True)
class Drawn:
    """One check's inputs: what the file takes (time-major), the recurrence's x [T, B, I]
    (float64) and the valid steps [T, B] (None: every step)."""

    file_input: np.ndarray
    x: np.ndarray
    mask: np.ndarray | None


def draw(front: FrontEnd, input_size: int, T: int, B: int, seed: int) -> Drawn:
    """Inputs at (T, B), the same for every runtime. Sample b's steps come from its own stream
    (seed, b), so that a shorter or narrower draw is a prefix of a longer or wider one: a
    runtime right at every size gives the same outputs on the steps two sizes share. Where the
    model masks, the padding is drawn from (seed, T, B)."""
    mask = None
    if front.masks:
        mask = padding_mask(T, B, np.random.default_rng([seed, T, B]))
    if front.tokens:
        low, V = (1 if front.mask_zero else 0), front.vocabulary
        columns = [np.random.default_rng([seed, b]).integers(low, V, size=T) for b in range(B)]
        tokens = np.stack(columns, axis=1)
        tokens[0, 0] = V - 1  # both ends of the vocabulary, on steps every size holds
        tokens[min(1, T - 1), 0] = low if T > 1 else tokens[0, 0]
        if mask is not None:
            tokens[~mask] = 0
        x = np.asarray(front.table, np.float64)[tokens]
        return Drawn(tokens.astype(np.int64), x, mask)
    drawn = [np.random.default_rng([seed, b]).standard_normal((T, input_size)) for b in range(B)]
    x = float32_exact(np.stack(drawn, axis=1))
    if front.mask_value is not None and mask is not None:
        x[~mask] = front.mask_value
        # a valid step that happens to equal mask_value everywhere would be masked too
        same = np.all(x == front.mask_value, axis=-1) & mask
        x[same] = front.mask_value + 1.0
    return Drawn(x, x, mask)


def padding_mask(T: int, B: int, rng) -> np.ndarray:
    """[T, B] valid steps: sample 0 full length; then, in turn, padded after its steps (most
    common), padded before them (Keras's pad_sequences default) and with a gap inside."""
    mask = np.ones((T, B), bool)
    if T == 1:
        return mask
    for b in range(1, B):
        n = int(rng.integers(1, T))  # valid steps, 1 to T-1
        kind = (b - 1) % 3
        if kind == 0:
            mask[n:, b] = False
        elif kind == 1:
            mask[: T - n, b] = False
        else:
            start = int(rng.integers(1, T))
            mask[start : start + max(1, (T - n) // 2), b] = False
    return mask


def mask_of(front: FrontEnd, file_input: np.ndarray) -> np.ndarray | None:
    """The valid steps [T, B] of a time-major input as the model masks it."""
    if front.mask_zero:
        return np.asarray(file_input) != 0
    if front.mask_value is not None:
        return ~np.all(np.asarray(file_input) == front.mask_value, axis=-1)
    return None


def recurrence_input(front: FrontEnd, file_input: np.ndarray) -> np.ndarray:
    """x [T, B, I] float64 from what the file takes (tokens looked up in the table)."""
    if front.table is None:
        return np.asarray(file_input, np.float64)
    return np.asarray(front.table, np.float64)[np.asarray(file_input)]


def compress(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x with each sample's valid steps moved to the front in order, their counts, the order
    used): a masked model computes what the unmasked one computes on these, to each length."""
    order = np.argsort(~mask, axis=0, kind="stable")
    return np.take_along_axis(x, order[:, :, None], axis=0), mask.sum(axis=0), order


def spread(y_c: np.ndarray, mask: np.ndarray, directions: int, zero: bool) -> np.ndarray:
    """A layer's output on the compressed steps [T, B, D*H] put back at its time steps; at a
    masked step the last output of each direction in its own order (forward: the step before,
    backward: the step after) or, `zero`, zeros."""
    T, B = mask.shape
    H = y_c.shape[-1] // directions
    out = np.zeros_like(y_c)
    index = np.cumsum(mask, axis=0) - 1  # compressed position of the last valid step <= t
    counts = mask.sum(axis=0)
    for b in range(B):
        valid = mask[:, b]
        for d in range(directions):
            cols = slice(d * H, (d + 1) * H)
            # forward: the last valid step <= t; backward: the first valid step >= t
            after = np.where(valid, index[:, b], index[:, b] + 1)
            source = index[:, b] if d == 0 else after
            keep = (source >= 0) & (source < counts[b]) & (valid | (not zero))
            out[keep, b, cols] = y_c[source[keep], b, cols]
    return out
