"""An export's weights proven against its source's whatever form the export takes: native
nodes, a Loop or Scan (tf2onnx writes Keras GRU and SimpleRNN so), an unrolled graph, or ops the
reader does not map. Outputs on random inputs can hide a weight off by 0.1% under float32
noise; the weights themselves cannot hide it.

Each unit of the source (weight_blocks.py: a gate's block, or two biases of which only the sum
enters the outputs) is looked for among every floating-point tensor the export stores, main
graph and subgraph bodies (stored.py), then among the values its constant subgraphs fold to
(value_index.py finds a block transposed, sliced out of a bigger tensor or beside others, by its
values). Where found it is compared element by element at the coarser of the two dtypes: exact
(weights are copied, not computed), a sum of biases within one unit in the last place (the
exporter added them). A required unit that is not found, or differs, fails naming the source
tensor, gate, index, both values and where the export holds it. A block whose values are all
equal cannot be located by value: zero, it is "zero in the source, not located"; otherwise "not
identifiable"; neither fails, both are said.

compare_read does the same unit by unit for an export with native nodes, whose weights the
reader has read into the canonical layout (the places are known: no search)."""

from __future__ import annotations

import math

import numpy as np

from harness.model_file.value_index import BITS, ValueIndex, as_2d, coarser
from harness.model_file.weight_blocks import (
    Unit,
    canonical_units,
    keras_units,
    torch_units,
    whole,
)
from harness.parity.checks import TOLERANCES, Comparison

SHOWN = 3  # differing elements named per weight
LISTED = 4  # units named per kind in the note


def source_units(source) -> list[Unit]:
    """The units of a source: a ModelFile's canonical weights (and the embedding table its
    front end looks tokens up in), the raw arrays of a Keras or torch runtime (a source the
    reference does not compute), or units already made."""
    if isinstance(source, list):
        return source
    weights = getattr(source, "weights", None)
    if weights is not None and hasattr(weights, "spec"):
        units = canonical_units(weights)
        front = getattr(source, "front", None)  # an embedding looked up before the recurrence
        table = getattr(front, "table", None)
        if front is not None and table is not None:
            units.append(whole(f"{(front.layers or ('embedding',))[0]} table", table))
        return units
    if getattr(source, "kind", "") == "keras":
        return keras_units(source.model)
    return torch_units(source.module)


def check_export_weights(role: str, export, source):
    """Every weight of `source` (a ModelFile, or a Keras or torch runtime) found in `export`
    (an OnnxRuntime) and compared: match_weights over the tensors the file stores."""
    from harness.model_file.stored import stored_tensors

    stored = [(t.name, t.values) for t in stored_tensors(export.model, export.label)]
    return match_weights(
        role, export.label, source_units(source), stored, lambda: _folded(export.model)
    )


def match_weights(role: str, label: str, units: list[Unit], stored, folded=None):
    """A RuntimeCheck of `units` found among `stored` ((name, array) pairs) and, for those not
    found there, among `folded()`'s: one comparison per unit, named by it (a required unit not
    found is a failure), its summary "k of n weights matched" and what was not located."""
    from harness.model_file.outcome import RuntimeCheck

    search = _Search([a for _, a in stored], [n for n, _ in stored], label)
    outcomes = [search.match(u, f"{role}: weights {u.label}") for u in units]
    missing = [k for k, o in enumerate(outcomes) if o.status == "missing"]
    values = folded() if missing and folded is not None else {}
    if values:
        names = [f"{n} (folded from a constant subgraph)" for n in values]
        again = _Search(list(values.values()), names, label)
        for k in missing:
            found = outcomes[k].comparison
            retry = again.match(
                units[k], found.quantity if found else f"{role}: weights {units[k].label}"
            )
            outcomes[k] = outcomes[k] if retry.status == "missing" else retry
        search.dtypes_used |= again.dtypes_used
    comparisons = _required(units, outcomes)
    bad = [c for c in comparisons if not c.passed]
    return RuntimeCheck(
        role,
        label,
        "failed" if bad else "passed",
        bad[0].message if bad else "",
        comparisons,
        summary=_summary(units, outcomes, search.dtypes_used, _source_dtype(units)),
    )


def _required(units, outcomes) -> list[Comparison]:
    """The comparisons that count: every unit compared, and every required unit missing."""
    return [
        o.comparison
        for u, o in zip(units, outcomes, strict=True)
        if o.comparison is not None and (u.required or o.status != "missing")
    ]


def _folded(model) -> dict[str, np.ndarray]:
    from harness.onnx.reader import folded_values

    values = {k: np.asarray(v) for k, v in folded_values(model).items()}
    return {k: v for k, v in values.items() if v.dtype.kind == "f" and v.ndim >= 1 and v.size}


def _source_dtype(units) -> str:
    return str(units[0].blocks[0].values.dtype) if units else "float32"


class _Outcome:
    """A unit's fate: matched | differs | missing | zero | constant, and its comparison."""

    def __init__(self, status: str, comparison: Comparison | None = None):
        self.status, self.comparison = status, comparison


class _Search:
    """Units found among stored tensors (`names` shown for each) and compared."""

    def __init__(self, arrays, names, label):
        self.index, self.names = ValueIndex(arrays, label), names
        self.dtypes_used: set[str] = set()

    def _place(self, values: np.ndarray):
        """('zero' | 'constant' | 'located' | 'missing', placements with a clear majority, or
        the best agreement seen)."""
        block = as_2d(values)
        if block.size and np.all(block == block.flat[0]):
            if block.flat[0] == 0:
                return "zero", []
            if block.size > 1:
                return "constant", []
        placements = self.index.locate(block)
        majority = [p for p in placements if 2 * p.agree > block.size]
        if majority:
            return "located", majority
        return "missing", placements[:1]

    def match(self, unit: Unit, quantity: str) -> _Outcome:
        if len(unit.blocks) == 1:
            block = unit.blocks[0]
            state, placements = self._place(block.values)
            if state == "located":
                return self._compared(quantity, [(block.values, _at(block), placements, False)])
            return self._unfound(quantity, unit, state, placements)
        places = [self._place(b.values) for b in unit.blocks]
        states = {state for state, _ in places}
        if states == {"zero"}:
            return _Outcome("zero")
        if states <= {"located", "zero"}:  # each stored apart (a zero addend may be absent)
            return self._compared(
                quantity,
                [
                    (b.values, _at(b), placements, False)
                    for b, (state, placements) in zip(unit.blocks, places, strict=True)
                    if state == "located"
                ],
            )
        state, placements = self._place(unit.values)  # stored as the sum
        if state == "located":
            return self._compared(quantity, [(unit.values, _at_sum(unit), placements, True)])
        if state == "missing" and "constant" in states:
            state = "constant"
        return self._unfound(quantity, unit, state, placements)

    def _unfound(self, quantity, unit, state, best) -> _Outcome:
        if state != "missing":
            return _Outcome(state)
        size = as_2d(unit.values).size
        near = ""
        if best:
            p = best[0]
            near = f"; at most {p.agree} of its {size} values in one place ({self.names[p.tensor]})"
        message = (
            f"{quantity}: not found in the export: no stored tensor holds a clear majority of "
            f"its {size} values as a block, transposed or not, alone or within a bigger tensor"
            f"{near}"
        )
        return _Outcome("missing", _failure(quantity, message))

    def _compared(self, quantity, parts) -> _Outcome:
        """Each (source values, source index naming, placements, summed) compared where found;
        one comparison for the unit: the worst, naming every difference found."""
        results = []
        for values, where, placements, summed in parts:
            for p in placements:
                stored = self.index.stored(p, as_2d(values).shape)
                self.dtypes_used.add(p.dtype)
                locate = self._locator(p)
                results.append(_judge(quantity, values, stored, summed, where, locate))
        return _combined(quantity, results)

    def _locator(self, placement):
        """Where the export holds a block's element: its tensor's name and index."""
        name = self.names[placement.tensor]
        return lambda pos: f"{name}{list(self.index.stored_index(placement, pos))}"


def _at(block):
    return lambda pos: f"{block.tensor}{list(block.source_index(pos))}"


def _at_sum(unit: Unit):
    a, b = unit.blocks
    return lambda pos: (
        f"{a.tensor}{list(a.source_index(pos))} + {b.tensor}{list(b.source_index(pos))}"
    )


def _judge(quantity, values, stored, summed: bool, where, locate) -> Comparison:
    """Source values against stored ones at the coarser dtype: exact, or (a sum the exporter
    computed) within one unit in the last place."""
    values, stored = as_2d(values), as_2d(stored)
    dtype = _coarser_dtype(values.dtype, stored.dtype)
    want = values.astype(dtype).astype(np.float64)
    got = stored.astype(dtype).astype(np.float64)
    limit = _ulp(want, dtype) if summed else np.zeros_like(want)
    return _verdict(
        quantity,
        want,
        got,
        limit,
        where,
        locate,
        f" (at {dtype})" if str(dtype) != str(values.dtype) else "",
    )


def _coarser_dtype(a: np.dtype, b: np.dtype) -> np.dtype:
    return a if coarser(str(a), str(b)) == str(a) else b


def _ulp(values: np.ndarray, dtype) -> np.ndarray:
    """One unit in the last place of each value at `dtype`'s precision."""
    exponent = np.frexp(np.abs(values))[1]
    return np.ldexp(1.0, exponent - BITS.get(str(dtype), 53))


def _verdict(quantity, want, got, limit, where, locate, precision="", rtol=0.0) -> Comparison:
    """One comparison of a unit's values: passed where every |got - want| <= limit; failed
    naming the first SHOWN elements that differ (source index, both values, and `locate`:
    where the export holds each)."""
    diff = np.abs(got - want)
    bad = ~(diff <= limit)  # NaN anywhere fails
    finite = diff[np.isfinite(diff)]
    max_abs = float(finite.max(initial=0.0)) if finite.size == diff.size else math.inf
    scale = np.abs(want) > 0
    ratio = diff[scale] / np.abs(want[scale])
    max_rel = float(np.nanmax(ratio, initial=0.0)) if ratio.size else 0.0
    atol = float(limit.max(initial=0.0))
    positive = limit > 0
    share = float((diff[positive] / limit[positive]).max(initial=0.0))
    if bool((diff[~positive] > 0).any()) or not np.isfinite(diff).all():
        share = math.inf
    if not bad.any():
        return Comparison(quantity, True, max_abs, max_rel, atol, rtol, "", share)
    positions = np.argwhere(bad)
    shown = "; ".join(
        f"at {where(tuple(pos))}: {_number(got[tuple(pos)])} in the export"
        + (f" ({locate(tuple(pos))})" if locate else "")
        + f" vs {_number(want[tuple(pos)])} in the source"
        + (f" (x{got[tuple(pos)] / want[tuple(pos)]:.6g})" if want[tuple(pos)] else "")
        for pos in positions[:SHOWN]
    )
    message = f"{quantity}: {len(positions)} of {want.size} elements differ{precision}; {shown}"
    return Comparison(quantity, False, max_abs, max_rel, atol, rtol, message, share)


def _number(value: float) -> str:
    return f"{float(value):.9g}"


def _combined(quantity, results: list[Comparison]) -> _Outcome:
    bad = [c for c in results if not c.passed]
    worst = max(results, key=lambda c: c.share_of_tolerance)
    if not bad:
        return _Outcome("matched", worst)
    message = bad[0].message + "".join(
        "; and " + c.message.removeprefix(f"{quantity}: ") for c in bad[1:]
    )
    return _Outcome(
        "differs",
        Comparison(
            quantity, False, worst.max_abs, worst.max_rel, worst.atol, 0.0, message, math.inf
        ),
    )


def _failure(quantity: str, message: str) -> Comparison:
    return Comparison(quantity, False, math.nan, math.nan, 0.0, 0.0, message)


def _summary(units, outcomes, dtypes, source_dtype) -> str:
    counted = [
        (u, o)
        for u, o in zip(units, outcomes, strict=True)
        if u.required or o.status in ("matched", "differs")
    ]
    matched = sum(o.status == "matched" for _, o in counted)
    text = f"{matched} of {len(counted)} weights matched"
    groups = (
        ("zero", "zero in the source, not located by value"),
        ("constant", "not identifiable (every value equal)"),
    )
    for status, what in groups:
        named = [u.label for u, o in zip(units, outcomes, strict=True) if o.status == status]
        if named:
            text += f"; {len(named)} {what}: {_listed(named)}"
    optional = [
        u.label
        for u, o in zip(units, outcomes, strict=True)
        if not u.required and o.status == "missing"
    ]
    if optional:
        text += f"; not found, not required (an exporter may transform them): {_listed(optional)}"
    lower = sorted(d for d in dtypes if coarser(d, source_dtype) == d and d != source_dtype)
    if lower:
        text += f"; stored in {', '.join(lower)}: compared at that precision"
    return text


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def compare_read(role: str, want, got) -> list[Comparison]:
    """Canonical weights read from an export with native nodes against the source's, unit by
    unit (sums where only the sum enters), at the source dtype's parity tolerance."""
    dtype = want.spec.dtype
    tol = TOLERANCES[dtype]
    comparisons = []
    for source, read in zip(canonical_units(want), canonical_units(got), strict=True):
        quantity = f"{role}: weights {source.label}"
        a = as_2d(source.values).astype(np.float64)
        b = as_2d(read.values).astype(dtype).astype(np.float64)
        limit = tol.atol * max(1.0, float(np.abs(a).max(initial=0.0))) + tol.rtol * np.abs(a)
        where = _at(source.blocks[0]) if len(source.blocks) == 1 else _at_sum(source)
        comparisons.append(_verdict(quantity, a, b, limit, where, None, rtol=tol.rtol))
    return comparisons
