"""The (T, B) a model file is checked at, what a file that fixes them leaves unchecked, and why
a file is right at some sizes only.

Wherever the files leave T and B dynamic, the check runs SIZES: B = 1 among them, lengths other
than any export's example, and one long sequence (LONG: rounding and a model's own error
growth show there). A file that fixes T or B is checked at that size only, and the plan says
so. A file right at some sizes and wrong at others is diagnosed: when the error grows with the
step (every wrong size is longer than every right one, and its error leaves the budget only
past the steps the right ones hold), that is the model's error growth or a computation that
drifts, not a baked size; a size is said to be baked in only when the error depends on the
size itself (a shorter size wrong while a longer one is right, or the file failing to run)."""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.model.protocol import NotSupported

SIZES = ((7, 3), (1, 1), (13, 2), (300, 2))  # (T, B); the last is the long sequence
LONG_STEPS = 256  # a check holds a sequence at least this long where the files allow it


@dataclasses.dataclass(frozen=True)
class SizePlan:
    sizes: tuple[tuple[int, int], ...]
    fixed: tuple[str, ...] = ()  # one line per file that fixes T or B: what it declares

    def note(self) -> str:
        """'' where every size was free, else the line the summary prints."""
        if not self.fixed:
            return ""
        T = sorted({t for t, _ in self.sizes})
        B = sorted({b for _, b in self.sizes})
        where = f"T={', '.join(map(str, T))} and B={', '.join(map(str, B))}"
        long_ = "" if max(T) >= LONG_STEPS else f"; no sequence of {LONG_STEPS}+ steps"
        return f"checked at {where} only: {'; '.join(self.fixed)}{long_}"


def plan_sizes(runtimes) -> list[tuple[int, int]]:
    """The (T, B) every runtime can be asked for (plan(runtimes).sizes, as a list)."""
    return list(plan(runtimes).sizes)


def plan(runtimes) -> SizePlan:
    """SIZES with the dimensions some runtime fixes taken from it, and each length an output
    declares while x leaves it dynamic (there the graph may have baked it in: it must run
    elsewhere too)."""
    fixed, lines = {}, []
    for axis in ("T", "B"):
        values = {getattr(r, axis) for r in runtimes if getattr(r, axis) is not None}
        if len(values) > 1:
            what = ", ".join(f"{r.label} {axis}={getattr(r, axis)}" for r in runtimes)
            raise NotSupported(f"the files fix different {axis}: {what}")
        fixed[axis] = next(iter(values), None)
    for r in runtimes:
        declared = [f"{a}={getattr(r, a)}" for a in ("T", "B") if getattr(r, a) is not None]
        if declared:
            others = [o.label for o in runtimes if o is not r and o.T is None and o.B is None]
            beside = f" while {', '.join(others)} takes any" if others else ""
            lines.append(f"{r.label} fixes {' and '.join(declared)}{beside}")
    candidates = list(SIZES) + [(r.output_T, 2) for r in runtimes if r.output_T]
    sizes = tuple(dict.fromkeys((fixed["T"] or t, fixed["B"] or b) for t, b in candidates))
    return SizePlan(sizes, tuple(lines))


@dataclasses.dataclass(frozen=True)
class Tried:
    """How a runtime did at one size: 'right', 'wrong' or why it did not run, and for a wrong
    size the first step (0-based) where an output left its budget, where one has steps."""

    how: str
    first_over: int | None = None


def diagnose(runtime, tried: dict[tuple[int, int], Tried], probe) -> str:
    """Why a runtime is right at some sizes only, or '' when it is wrong at every size it ran
    (then no size is to blame: the cause is named elsewhere). probe(T, B) -> Tried runs it at
    one more size."""
    ran = {size: t for size, t in tried.items() if t.how in ("right", "wrong")}
    right = [size for size, t in ran.items() if t.how == "right"]
    wrong = [size for size, t in ran.items() if t.how == "wrong"]
    failed = [size for size, t in tried.items() if size not in ran]
    if not right and not failed:
        return ""
    if wrong and not failed and right and max(t for t, _ in right) == 1:
        steps = [s for size in wrong if (s := tried[size].first_over) is not None]
        at = f" from step {min(steps)}" if steps else ""
        return (
            f"{runtime.label} is right at T=1 only and wrong{at} at every longer size: what "
            "differs acts from the second step on (the recurrent weights, their bias or the "
            "cell's equations), not a size"
        )
    if wrong and not failed and _grows_with_step(tried, right, wrong):
        size = min(wrong)
        step = tried[size].first_over
        at = f" from step {step}" if step is not None else ""
        return (
            f"{runtime.label} is right up to T={max(t for t, _ in right)} but leaves its error "
            f"budget at T={size[0]}, B={size[1]}{at}: the error grows with the step, not the "
            "size (an expanding model beyond its budget, or a computation that drifts)"
        )
    return baked(runtime, dict(tried), probe)


def _grows_with_step(tried, right, wrong) -> bool:
    """Every wrong size longer than every right one, each leaving its budget only at steps
    the right sizes did not reach."""
    longest_right = max(t for t, _ in right)
    for size in wrong:
        first = tried[size].first_over
        if size[0] <= longest_right or (first is not None and first < longest_right):
            return False
    return True


def baked(runtime, tried: dict[tuple[int, int], Tried], probe) -> str:
    """Where a file that declares an axis dynamic is right at some sizes only: the axis and the
    sizes it is right at (found among the sizes tried and the integers its graph holds, which
    is where an exporter bakes an example's size), or '' when that does not explain it."""
    for axis, name, declared in ((0, "sequence", runtime.T), (1, "batch", runtime.B)):
        if declared is not None:
            continue
        good = [size for size, t in tried.items() if t.how == "right"]
        other = good[0][1 - axis] if good else (2 if axis == 0 else 5)
        values = sorted({size[axis] for size in tried} | set(graph_integers(runtime)))
        right, bad = [], None
        for value in values:
            size = (value, other) if axis == 0 else (other, value)
            if size not in tried:
                tried[size] = probe(*size)
            how = tried[size].how
            if how == "right":
                right.append(value)
            elif bad is None:
                bad = (size, how)
        if right and bad and len(right) < len(values):
            letter = "T" if axis == 0 else "B"
            (T, B), how = bad
            what = "its outputs differ from the reference" if how == "wrong" else how
            return (
                f"{runtime.label} declares a dynamic {name} axis but is right only at {letter}="
                f"{', '.join(map(str, right))}: the graph bakes that {name} size in (at T={T}, "
                f"B={B}: {what})"
            )
    return ""


def graph_integers(runtime) -> list[int]:
    """Small positive integers among the file's constants (shapes, indices, slice bounds),
    and each plus one: where an exporter bakes an example's length or batch. At most 12."""
    found = set()
    for value in getattr(runtime, "constants", {}).values():
        array = np.asarray(value)
        if array.dtype.kind in "iu" and array.size <= 8:
            # a size, or the last index of one (a Gather or Slice of the last step)
            found |= {int(v) + k for v in array.ravel() if 1 <= v <= 1024 for k in (0, 1)}
    if getattr(runtime, "output_T", None):
        found.add(runtime.output_T)
    return sorted(found - {1})[:12]
