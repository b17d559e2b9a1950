"""What one check of a model file found (RuntimeCheck: a file, its role, its comparisons and
the sizes it ran at), and its verdict, derived from its comparisons (judged)."""

from __future__ import annotations

import dataclasses

from harness.parity.checks import Comparison


@dataclasses.dataclass
class RuntimeCheck:
    role: str  # model-file | export-file | shipped-outputs
    label: str  # the file, as the user named it
    status: str  # passed | failed | skipped
    reason: str = ""
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    sizes: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    unmatched: list[str] = dataclasses.field(default_factory=list)
    budget: str = ""  # the error budget at the longest size, where it grew
    summary: str = ""  # a weights check's: "k of n weights matched", and what was not located

    @property
    def note(self) -> str:
        if self.summary:
            return self.summary
        text = f"{self.label} at (T, B) " + ", ".join(map(str, self.sizes))
        if self.budget:
            text += f"; {self.budget}"
        if self.unmatched:
            text += (
                f"; not compared (no reference output has its shape): {', '.join(self.unmatched)}"
            )
        return text


def judged(result: RuntimeCheck) -> RuntimeCheck:
    if result.status == "skipped":
        return result
    bad = [c for c in result.comparisons if not c.passed]
    result.status = "failed" if bad else "passed"
    result.reason = bad[0].message if bad else ""
    return result
