"""Where a block of values sits among an export's stored tensors, found by the values alone.

A block is found where it sits as a contiguous sub-block, or a transposed one, of some 2-D view
of a stored tensor ([d0 * ... * dk, dk+1 * ... * dn] for each split of its shape, the flat
tensor as one row or one column among them): a gate's rows of a bigger tensor, a block beside
another (W and R side by side, directions stacked), or a kernel stored transposed. A placement
is (tensor, flat index of the block's first element, flat step per block row and per column).

Every stored value is sorted once (per stored dtype); a block's anchors (a few elements spread
over it whose values are rare in the export) are looked up there, each hit gives the placements
that would put the anchor where it was found, and the placements most anchors agree on are
checked element by element. A block is located where a clear majority of its elements are equal
at the stored precision, so that a few elements that differ are still located and reported.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.files import limits

ANCHORS = 16  # elements of a block looked up
PROBES = 64  # elements examined to choose them
RARE = 32  # a value found more often is common: other elements of the block are probed
MAX_HITS = 4096  # anchor hits followed per block at most
VERIFY = 8  # candidate placements checked element by element
BITS = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}  # significand precision


@dataclasses.dataclass(frozen=True)
class Placement:
    tensor: int  # index of the stored tensor
    base: int  # flat index there of the block's first element
    steps: tuple[int, int]  # flat step per block row, per block column
    agree: int  # the block's elements equal there at the stored precision
    dtype: str  # the stored tensor's


def coarser(a: str, b: str) -> str:
    """The dtype of lesser precision: where a weight stored in another dtype is compared."""
    return a if BITS.get(a, 53) <= BITS.get(b, 53) else b


def as_2d(values: np.ndarray) -> np.ndarray:
    """A block as rows x columns: a 1-D block is one column."""
    values = np.asarray(values)
    return values.reshape(-1, 1) if values.ndim == 1 else values


class ValueIndex:
    """Every value of `arrays` (stored tensors, any float dtype), sorted once per dtype."""

    def __init__(self, arrays: list[np.ndarray], what: str = "the export"):
        self.arrays = [np.asarray(a) for a in arrays]
        total = sum(a.size for a in self.arrays)
        limits.require(total * 24, f"an index of the {total} values {what} stores")
        by_dtype: dict[str, list[int]] = {}
        for k, array in enumerate(self.arrays):
            by_dtype.setdefault(str(array.dtype), []).append(k)
        self._groups = [_Group(ids, [self.arrays[k] for k in ids]) for ids in by_dtype.values()]

    def locate(self, block: np.ndarray) -> list[Placement]:
        """The placements of `block` that anchors point at, best first, each with how many of
        its elements are equal there (the caller asks for a majority)."""
        block = as_2d(block)
        found = [p for group in self._groups for p in group.locate(block)]
        return sorted(found, key=lambda p: -p.agree)

    def stored(self, placement: Placement, shape) -> np.ndarray:
        """The stored values at a placement of a block of `shape`, in the stored dtype."""
        array = self.arrays[placement.tensor]
        return array.reshape(-1)[_flat(placement, shape)].reshape(shape)

    def stored_index(self, placement: Placement, position) -> tuple[int, ...]:
        """The stored tensor's index of the block's element at `position` (row, column)."""
        i, j = (tuple(position) + (0,))[:2]
        flat = placement.base + i * placement.steps[0] + j * placement.steps[1]
        shape = self.arrays[placement.tensor].shape
        return tuple(int(k) for k in np.unravel_index(flat, shape))


def _flat(placement: Placement, shape) -> np.ndarray:
    m, n = (tuple(shape) + (1,))[:2]
    si, sj = placement.steps
    return placement.base + np.arange(m)[:, None] * si + np.arange(n)[None, :] * sj


class _Group:
    """The stored tensors of one dtype: their values concatenated and sorted, and each one's
    2-D views (the row length of each)."""

    def __init__(self, ids: list[int], arrays: list[np.ndarray]):
        self.ids = ids
        self.dtype = arrays[0].dtype
        # numpy sorts float16/32/64; bfloat16 (ml_dtypes) is held exactly by float32
        self.sort_dtype = self.dtype if self.dtype.kind == "f" else np.dtype(np.float32)
        sizes = np.array([a.size for a in arrays], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.values = np.concatenate([a.reshape(-1).astype(self.sort_dtype) for a in arrays])
        self.order = np.argsort(self.values)  # ties in any order: equal values
        self.sorted = self.values[self.order]
        self.sizes = sizes
        self.views = np.zeros((len(arrays), max(a.ndim for a in arrays) + 1), np.int64)
        for k, a in enumerate(arrays):
            rows = [int(np.prod(a.shape[d:])) for d in range(a.ndim)] + [1]
            self.views[k, : len(rows)] = rows

    def keys(self, block: np.ndarray) -> np.ndarray:
        """The block's values as this group stores them (rounded to its dtype)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return block.astype(self.dtype).astype(self.sort_dtype)

    def locate(self, block: np.ndarray) -> list[Placement]:
        keys = self.keys(block)
        m, n = keys.shape
        anchors, lefts, counts = self._anchors(keys.reshape(-1))
        if not anchors.size:
            return []
        hit_anchor = np.repeat(np.arange(anchors.size), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        position = self.order[np.repeat(lefts, counts) + within]
        local = np.searchsorted(self.offsets, position, "right") - 1
        f = (position - self.offsets[local])[:, None]
        i, j = (a[:, None] for a in np.divmod(anchors[hit_anchor], n))
        row = self.views[local]
        live, row = row > 0, np.maximum(row, 1)
        height = self.sizes[local][:, None] // row
        found = []
        for transposed in (False, True):
            si, sj = (np.ones_like(row), row) if transposed else (row, np.ones_like(row))
            base = f - i * si - j * sj
            across, down = (m, n) if transposed else (n, m)
            ok = live & (base >= 0) & (base % row + across <= row) & (base // row + down <= height)
            hits = np.nonzero(ok)
            found.append(
                np.stack(
                    [
                        hit_anchor[hits[0]],
                        local[hits[0]],
                        base[hits],
                        si[hits] * (m > 1),
                        sj[hits] * (n > 1),
                    ],
                    axis=1,
                )
            )
        candidates = np.unique(np.concatenate(found), axis=0)[:, 1:]  # one vote per anchor
        placements, votes = np.unique(candidates, axis=0, return_counts=True)
        best = placements[np.argsort(-votes, kind="stable")[:VERIFY]]
        out = []
        for local_id, base, si, sj in best.tolist():
            trial = Placement(self.ids[local_id], base, (si, sj), 0, str(self.dtype))
            stored = self.values[self.offsets[local_id] + _flat(trial, (m, n))]
            agree = int(np.count_nonzero(stored == keys))
            out.append(dataclasses.replace(trial, agree=agree))
        return out

    def _anchors(self, flat: np.ndarray):
        """(positions in the block, first index in the sorted values, hits) of up to ANCHORS
        elements spread over the block, the rarest among the stored values first, their hits
        MAX_HITS at most."""
        probes = np.unique(np.linspace(0, flat.size - 1, min(flat.size, PROBES)).astype(np.int64))
        left, count = self._lookup(flat[probes])
        if np.count_nonzero((count >= 1) & (count <= RARE)) < 4 and flat.size > probes.size:
            # evenly spaced elements all common (a sparse block): its other values instead
            values, counts = np.unique(flat, return_counts=True)
            other = np.flatnonzero(flat != values[np.argmax(counts)])
            if other.size:
                probes = other[np.linspace(0, other.size - 1, min(other.size, PROBES)).astype(int)]
                probes = np.unique(probes)
                left, count = self._lookup(flat[probes])
        spread = np.random.default_rng(0).permutation(probes.size)  # fixed: a run repeats
        seen = spread[count[spread] >= 1]
        seen = seen[np.argsort(count[seen], kind="stable")]  # the rarest first, spread out
        within = np.cumsum(np.minimum(count[seen], MAX_HITS)) <= MAX_HITS
        chosen = seen[: max(1, int(within.sum()))][:ANCHORS]
        return probes[chosen], left[chosen], np.minimum(count[chosen], MAX_HITS)

    def _lookup(self, values: np.ndarray):
        values = np.where(np.isfinite(values), values, np.nan)  # NaN: never a match
        left = np.searchsorted(self.sorted, values, "left")
        count = np.searchsorted(self.sorted, values, "right") - left
        return left, np.where(np.isnan(values), 0, count)
