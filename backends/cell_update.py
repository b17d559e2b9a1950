"""Each cell's step equations, written once for NumPy, CuPy and torch arrays: the update from the
gate pre-activations a = R h_prev + xw to the new state, and the local derivatives back from the
new state's gradient to the pre-activations and the previous state.

The NumPy reference's loop and BPTT (numpy_cells) and the parallel-in-time solver's steps,
Jacobians, tangents and adjoints (parallel_in_time/jacobians, tangent, adjoint) all call these;
only the product R h and the layout differ between them. A `Blocks` says where gate k lies:
rows k*H:(k+1)*H of one feature-major step [G*H, B], or the last axis of a batch-major array
[..., G*H] holding any number of steps at once. Gate order is the canonical (ONNX) one: LSTM
i, o, f, c; GRU z, r, h. Updates write in place into buffers the caller owns (the reference's
loop allocates nothing per step); derivatives return new arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable
from typing import Any


def sigmoid_(a: Any, xp: types.ModuleType) -> None:
    """In place; sigmoid(a) = (1 + tanh(a/2)) / 2 never overflows, unlike 1 / (1 + exp(-a))."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _clip_(a: Any, bound: float | None, xp: types.ModuleType) -> None:
    if bound is not None:
        xp.clip(a, -bound, bound, out=a)


@functools.cache
def blocks_of(H: int, feature_major: bool) -> Blocks:
    return Blocks(H, feature_major)


class Blocks:
    """Where a step's gate blocks lie: the rows of a feature-major [G*H, B] or the last axis of a
    batch-major [..., G*H]. The index of each gate is built once (the reference's loop indexes
    every step)."""

    __slots__ = ("H", "feature_major", "gate", "first2", "first3")

    def __init__(self, H: int, feature_major: bool):
        self.H, self.feature_major = H, feature_major
        self.gate = tuple(self._index(k) for k in range(4))
        self.first2, self.first3 = self._index(0, 2), self._index(0, 3)

    def _index(self, k: int, n: int = 1) -> Any:
        span = slice(k * self.H, (k + n) * self.H)
        return span if self.feature_major else (Ellipsis, span)

    def __call__(self, a: Any, k: int, n: int = 1) -> Any:
        """Gates k..k+n-1 of a (a view)."""
        return a[self._index(k, n)]

    def unit(self, vector: Any, k: int) -> Any:
        """Block k of a per-unit vector [G*H], shaped to broadcast against one gate block."""
        block = vector[k * self.H : (k + 1) * self.H]
        return block[:, None] if self.feature_major else block


@dataclasses.dataclass(frozen=True)
class Variant:
    """The ONNX forms of a cell beyond the canonical one, as the step equations need them: one
    field per name of harness.model.spec.VARIANTS, its default the canonical cell's, except
    that `peepholes` holds this direction's P [3H] (i, o, f), or None."""

    linear_before_reset: bool = True
    peepholes: Any = None
    input_forget: bool = False
    clip: float | None = None

    @classmethod
    def of(cls, spec, P=None) -> Variant:
        """A spec's variant, with one direction's peepholes P."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: (P if n == "peepholes" else getattr(spec, n)) for n in names})

    @property
    def canonical(self) -> bool:
        return (
            all(
                getattr(self, f.name) is f.default or getattr(self, f.name) == f.default
                for f in dataclasses.fields(self)
                if f.name != "peepholes"
            )
            and self.peepholes is None
        )


CANONICAL = Variant()


# The updates. Variants as ONNX Runtime computes them: clip bounds every activation's input
# (after the peephole term), input_forget makes f = 1 - i, the output gate's peephole reads the
# new cell, and linear_before_reset = 0 applies the reset gate before R_h.


def rnn_update(a: Any, h: Any, xp: types.ModuleType, variant: Variant = CANONICAL) -> None:
    """h = tanh(a); a and h may be one buffer."""
    if variant.clip is not None:
        _clip_(a, variant.clip, xp)
    xp.tanh(a, out=h)


def lstm_update(
    a: Any, c_prev: Any, c: Any, h: Any, blocks: Blocks, xp: types.ModuleType, variant=CANONICAL
) -> None:
    """a is overwritten with the activated gates i, o, f, g; writes the new cell state c and
    h = o tanh(c) (h holds i g on the way)."""
    gi, go, gf, gg = blocks.gate
    i, o, f, g = a[gi], a[go], a[gf], a[gg]
    P, bound = variant.peepholes, variant.clip
    plain = P is None and bound is None and not variant.input_forget
    if plain:
        sigmoid_(a[blocks.first3], xp)  # i, o, f are contiguous
    else:
        if P is not None:
            i += blocks.unit(P, 0) * c_prev
            f += blocks.unit(P, 2) * c_prev
        _clip_(i, bound, xp)
        sigmoid_(i, xp)
        if variant.input_forget:
            f[...] = 1 - i
        else:
            _clip_(f, bound, xp)
            sigmoid_(f, xp)
        _clip_(g, bound, xp)
    xp.tanh(g, out=g)
    xp.multiply(f, c_prev, out=c)
    xp.multiply(i, g, out=h)
    c += h
    if not plain:
        if P is not None:
            o += blocks.unit(P, 1) * c
        _clip_(o, bound, xp)
        sigmoid_(o, xp)
    xp.tanh(c, out=h)
    h *= o


def gru_update(
    a: Any,
    recurrent: Any,
    xw: Any,
    h_prev: Any,
    h: Any,
    blocks: Blocks,
    xp: types.ModuleType,
    variant: Variant = CANONICAL,
    reset_product: Callable[[Any], Any] | None = None,
) -> None:
    """a receives the activated z, r, n; h = (1 - z) n + z h_prev. recurrent = R h_prev with
    Rb_h added to its h block (the canonical cell: linear_before_reset). With
    linear_before_reset = 0 the h block is reset_product(r h_prev) = R_h (r h_prev) instead,
    and Rb_h sits in xw with the other biases."""
    gz, gr, gn, _ = blocks.gate
    zr = a[blocks.first2]
    xp.add(recurrent[blocks.first2], xw[blocks.first2], out=zr)
    bound = variant.clip
    if bound is not None:
        _clip_(zr, bound, xp)
    sigmoid_(zr, xp)
    z, r, n = a[gz], a[gr], a[gn]
    if variant.linear_before_reset:
        xp.multiply(r, recurrent[gn], out=n)
    else:
        assert reset_product is not None, "linear_before_reset = 0 needs R_h (r h_prev)"
        n[...] = reset_product(r * h_prev)
    n += xw[gn]
    if bound is not None:
        _clip_(n, bound, xp)
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h)
    h *= z
    h += n


# The local derivatives of the canonical cells, from the gradient of the new state (dh, and dc
# for the LSTM; None is zero) and what the update left (the activated gates, the states).


@dataclasses.dataclass(frozen=True)
class Local:
    """One step's gradients: of the pre-activations per gate on the input side (what reaches W,
    Wb and xw) and on the recurrent side (what reaches R and Rb: they differ only in the GRU's
    reset-gated h block), and of the previous state directly, not through R (None: zero)."""

    inputs: tuple[Any, ...]
    recurrent: tuple[Any, ...]
    h_prev: Any = None
    c_prev: Any = None


def rnn_local(h: Any, dh: Any) -> Local:
    d = dh * (1 - h * h)
    return Local((d,), (d,))


def gru_local(a: Any, recurrent: Any, h_prev: Any, dh: Any, blocks: Blocks) -> Local:
    """a: the activated z, r, n; recurrent: as gru_update read it (R_h h_prev + Rb_h in its h
    block)."""
    gz, gr, gn, _ = blocks.gate
    z, r, n = a[gz], a[gr], a[gn]
    dn = dh * (1 - z) * (1 - n * n)
    dz = dh * (h_prev - n) * z * (1 - z)
    dr = dn * recurrent[gn] * r * (1 - r)
    return Local((dz, dr, dn), (dz, dr, dn * r), h_prev=dh * z)


def lstm_local(
    a: Any, c_prev: Any, c: Any, dh: Any, dc: Any, blocks: Blocks, xp: types.ModuleType
) -> Local:
    """a: the activated i, o, f, g. With dh None, the output gate's gradient is None (c does not
    depend on it)."""
    gi, go, gf, gg = blocks.gate
    i, o, f, g = a[gi], a[go], a[gf], a[gg]
    tanh_c = xp.tanh(c)
    dc_total = dc if dh is None else dc + dh * o * (1 - tanh_c * tanh_c)
    d_o = None if dh is None else dh * tanh_c * o * (1 - o)
    d_i, d_f = dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f)
    d = (d_i, d_o, d_f, dc_total * i * (1 - g * g))
    return Local(d, d, c_prev=dc_total * f)
