"""Benchmark suites as data: TOML files of sweeps, expanded into validated BenchCases.

A suite file has a name, a budget, [timing] settings and [[sweep]] tables; every axis of a sweep
is a list, and the sweep is their product. Cases that differ only in target and mode form one
interleaved group: they are timed round by round in turn (A B A B ...), so that ratios between
them hold when the machine's speed drifts."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from harness import registry
from harness.bench.case import BenchCase, SuiteError, make_case
from harness.model.spec import SpecError, tomllib

# benchmarks/suites in a checkout; harness/suite_files in an installed wheel (pyproject maps it)
_HERE = Path(__file__).resolve()
_CANDIDATES = (_HERE.parents[2] / "benchmarks" / "suites", _HERE.parents[1] / "suite_files")
SUITES_DIR = next((d for d in _CANDIDATES if d.is_dir()), _CANDIDATES[0])
TIMING_DEFAULTS = {
    "warmup_s": 0.1,
    "min_round_s": 0.05,
    "rounds": 9,
    "pause_s": 0.1,
    "timeout_s": 300.0,
}
# Each axis of a sweep and its default; `input = ["hidden"]` sets I = H, as DeepBench does.
AXES = {
    "targets": None,
    "modes": ("forward",),
    "cell": ("lstm",),
    "dtype": ("float32",),
    "batch": (1,),
    "steps": (1,),
    "input": (128,),
    "hidden": (256,),
    "layers": (1,),
    "bidirectional": (False,),
    "head": (0,),
    "threads": (1,),
    "size": (0,),
}


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    budget_s: float
    timing: dict[str, float]
    cases: tuple[BenchCase, ...]
    path: str = ""

    def filtered(self, text: str) -> Suite:
        cases = tuple(c for c in self.cases if text in c.id)
        if not cases:
            raise SuiteError(f"no case of suite {self.name!r} has {text!r} in its id")
        return dataclasses.replace(self, cases=cases)

    def on_device(self, device: str) -> Suite:
        """Only the cases that run on `device` (cpu | gpu)."""
        cases = tuple(c for c in self.cases if c.device == device)
        if not cases:
            raise SuiteError(f"no case of suite {self.name!r} runs on {device!r}")
        return dataclasses.replace(self, cases=cases)

    def groups(self) -> list[list[BenchCase]]:
        """The interleaved groups, in first-appearance order."""
        by_group: dict[str, list[BenchCase]] = {}
        for case in self.cases:
            by_group.setdefault(case.group, []).append(case)
        return list(by_group.values())


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: str) -> Suite:
    """A suite by name (benchmarks/suites/NAME.toml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise SuiteError(
                f"unknown suite {name_or_path!r}: allowed {', '.join(suite_names())} "
                "or a path to a .toml file"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SuiteError(f"cannot read suite {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"suite {path} is not valid TOML: {exc}") from None
    try:
        return _parse(data, str(path))
    except (SuiteError, SpecError) as exc:
        raise SuiteError(f"suite {path}: {exc}") from None


def _parse(data: dict[str, Any], path: str) -> Suite:
    known = {"name", "description", "budget_s", "timing", "sweep"}
    for key in data:
        if key not in known:
            raise SuiteError(f"unknown key {key!r}: allowed {', '.join(sorted(known))}")
    timing = dict(TIMING_DEFAULTS)
    for key, value in data.get("timing", {}).items():
        if key not in TIMING_DEFAULTS:
            raise SuiteError(f"unknown timing key {key!r}: allowed {', '.join(TIMING_DEFAULTS)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SuiteError(f"timing.{key} = {value!r} is invalid: allowed a number >= 0")
        timing[key] = value
    if timing["rounds"] < 1:
        raise SuiteError(f"timing.rounds = {timing['rounds']!r} is invalid: allowed >= 1")
    sweeps = data.get("sweep", [])
    if not sweeps:
        raise SuiteError("no [[sweep]] tables: a suite needs at least one")
    cases: dict[str, BenchCase] = {}
    for number, sweep in enumerate(sweeps, 1):
        for case in _expand(sweep, number):
            cases.setdefault(case.id, case)  # the same case in two sweeps is timed once
    return Suite(
        str(data.get("name", Path(path).stem)),
        str(data.get("description", "")),
        float(data.get("budget_s", 0)),
        timing,
        tuple(cases.values()),
        path,
    )


def _expand(sweep: dict[str, Any], number: int) -> list[BenchCase]:
    label = sweep.get("name", f"sweep{number}")
    axes = {}
    for key, value in sweep.items():
        if key == "name":
            continue
        if key not in AXES:
            raise SuiteError(f"sweep {label!r}: unknown axis {key!r}: allowed {', '.join(AXES)}")
        if not isinstance(value, list) or not value:
            raise SuiteError(
                f"sweep {label!r}: {key} = {value!r} is invalid: allowed a non-empty list"
            )
        axes[key] = value
    if "targets" not in axes:
        allowed = ", ".join(registry.timing_targets())
        raise SuiteError(f"sweep {label!r}: no targets: allowed {allowed}")
    names = [k for k in AXES if k != "targets"]
    cases = []
    for target in axes["targets"]:
        for values in itertools.product(*(axes.get(k, AXES[k]) for k in names)):
            fields = dict(zip(names, values, strict=True))
            fields["mode"] = fields.pop("modes")
            fields["input_size"] = fields.pop("input")
            if fields["input_size"] == "hidden":  # I = H, as DeepBench sizes its layers
                fields["input_size"] = fields["hidden"]
            cases.append(make_case(target, **fields, sweep=label))
    return cases
