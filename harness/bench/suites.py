"""Benchmark suites as data: TOML files of sweeps, expanded into validated BenchCases.

A suite file has a name, a budget, [timing] settings and [[sweep]] tables; every axis of a sweep
is a list, and the sweep is their product. Cases that differ only in backend and mode form one
interleaved group: they are timed round by round in turn (A B A B ...), so that ratios between
them hold when the machine's speed drifts."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from pathlib import Path

from pydantic import ValidationError

from harness import registry
from harness.bench.case import BenchCase, SuiteError, make_case
from harness.json_values import JsonObject
from harness.model.spec import SpecError, tomllib
from harness.records.case_fields import CaseFields, identity_fields, sweep_axes
from harness.records.errors import one_line
from harness.records.results import Identity, SuiteInfo, Timing
from harness.records.suite import SuiteFile, Sweep

# benchmarks/suites in a checkout; harness/suite_files in an installed wheel (pyproject maps it)
_HERE = Path(__file__).resolve()
_CANDIDATES = (_HERE.parents[2] / "benchmarks" / "suites", _HERE.parents[1] / "suite_files")
SUITES_DIR = next((d for d in _CANDIDATES if d.is_dir()), _CANDIDATES[0])
AXES = tuple(name for name in Sweep.model_fields if name not in ("name", "backends"))
TIMING_DEFAULTS = Timing().model_dump()


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    budget_s: float | None
    timing: Timing
    cases: tuple[BenchCase, ...]
    path: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.timing, Timing):  # a dict of settings: validated here
            try:
                object.__setattr__(self, "timing", Timing.model_validate(self.timing))
            except ValidationError as exc:
                raise SuiteError(one_line(exc, f"suite {self.name!r} timing")) from None

    def filtered(self, text: str) -> Suite:
        """The cases that match `text`: FIELD=VALUE[,FIELD=VALUE...] on the case's fields
        (cell=gru,batch=1 picks GRU at B=1 only, not minGRU or B=16), else the cases whose
        id contains `text`."""
        if "=" in text:
            wanted = _field_filter(text)
            cases = tuple(
                c for c in self.cases if all(str(getattr(c, f)) == v for f, v in wanted.items())
            )
        else:
            cases = tuple(c for c in self.cases if text in c.id)
        if not cases:
            raise SuiteError(f"no case of suite {self.name!r} matches --only {text!r}")
        return dataclasses.replace(self, cases=cases)

    def on_device(self, device: str) -> Suite:
        """Only the cases that run on `device` (cpu | gpu)."""
        cases = tuple(c for c in self.cases if c.device == device)
        if not cases:
            raise SuiteError(f"no case of suite {self.name!r} runs on {device!r}")
        return dataclasses.replace(self, cases=cases)

    def groups(self) -> list[list[BenchCase]]:
        """The interleaved groups, in first-appearance order."""
        by_group: dict[tuple[tuple[str, str], ...], list[BenchCase]] = {}
        for case in self.cases:
            by_group.setdefault(case.group, []).append(case)
        return list(by_group.values())

    def identity(self) -> Identity:
        """The suite normalised: a hash of its timing and every case's fields (sweep labels
        aside), and its case ids. What --resume holds a results file to."""
        kept = identity_fields()
        content = {
            "timing": self.timing.model_dump(),
            "cases": [{k: v for k, v in c.as_dict().items() if k in kept} for c in self.cases],
        }
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return Identity(
            sha256=hashlib.sha256(text.encode()).hexdigest(), case_ids=[c.id for c in self.cases]
        )

    def info(self) -> SuiteInfo:
        return SuiteInfo(
            name=self.name,
            path=self.path,
            description=self.description,
            budget_s=self.budget_s,
            timing=self.timing,
            identity=self.identity(),
            cases=[c.as_dict() for c in self.cases],
        )

    @classmethod
    def from_info(cls, info: SuiteInfo) -> Suite:
        """The suite a results file recorded (version 3): what `--resume` alone finishes."""
        if not info.cases:
            raise SuiteError(
                f"the file records no cases of suite {info.name!r} (written before version 3): "
                "name the suite with --suite"
            )
        try:
            cases = tuple(BenchCase.from_dict(c) for c in info.cases)
        except (SuiteError, SpecError, KeyError, TypeError) as exc:
            raise SuiteError(f"the recorded suite {info.name!r} no longer builds: {exc}") from None
        return cls(info.name, info.description, info.budget_s, info.timing, cases, info.path)


def oversubscribed(suite: Suite, cores: int | None) -> str | None:
    """Why cases that ask for more threads than the machine's `cores` time the wrong thing
    (None when none does, or the cores are unknown): a warning, since a suite may be meant for
    a larger machine."""
    over = [c for c in suite.cases if c.device == "cpu" and cores and c.threads > cores]
    if not over:
        return None
    most = max(c.threads for c in over)
    return (
        f"suite {suite.name!r}: {len(over)} of its {len(suite.cases)} cases ask for up to "
        f"{most} threads, and this machine has {cores} usable cores: their threads take turns "
        "on the cores, so their timings measure that contention, not the library's scaling "
        f"(--only threads=N picks the cases that fit)"
    )


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def safe_name(name: str) -> str:
    """A name that can be a file name: letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._") or "suite"


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
    except UnicodeDecodeError:
        raise SuiteError(f"suite {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"suite {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise SuiteError(f"suite {path} is nested too deeply to be a suite") from None
    try:
        return _parse(data, str(path))
    except ValidationError as exc:
        raise SuiteError(one_line(exc, f"suite {path}")) from None
    except (SuiteError, SpecError) as exc:
        raise SuiteError(f"suite {path}: {exc}") from None


def _parse(data: JsonObject, path: str) -> Suite:
    suite = SuiteFile.model_validate(data)
    cases: dict[str, BenchCase] = {}
    for number, sweep in enumerate(suite.sweep, 1):
        try:
            expanded = list(_expand(sweep, number))
        except (SuiteError, SpecError) as exc:
            raise SuiteError(f"sweep[{number - 1}]: a case's {exc}") from None
        for case in expanded:
            cases.setdefault(case.id, case)  # the same case in two sweeps is timed once
    return Suite(
        suite.name or safe_name(Path(path).stem),
        suite.description,
        suite.budget_s,
        suite.timing,
        tuple(cases.values()),
        path,
    )


def _expand(sweep: Sweep, number: int) -> list[BenchCase]:
    label = sweep.name or f"sweep{number}"
    if not sweep.backends:
        allowed = ", ".join(registry.timing_backends())
        raise SuiteError(f"sweep {label!r}: no backends: allowed {allowed}")
    cases = []
    field_of = sweep_axes()  # the suite's name of each axis -> the case field it sets
    for backend in sweep.backends:
        for values in itertools.product(*(getattr(sweep, k) for k in AXES)):
            fields = {field_of[axis]: value for axis, value in zip(AXES, values, strict=True)}
            if fields["input_size"] == "hidden":  # I = H, as DeepBench sizes its layers
                fields["input_size"] = fields["hidden"]
            cases.append(make_case(backend=backend, **fields, sweep=label))
    return cases


def _field_filter(text: str) -> dict[str, str]:
    """'cell=gru,batch=1' -> {'cell': 'gru', 'batch': '1'}, each field one a case has."""
    allowed = [name for name in CaseFields.model_fields if name != "model_spec"]
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in allowed or not value.strip():
            raise SuiteError(
                f"--only {text!r}: {part!r} is not FIELD=VALUE with a case field "
                f"({', '.join(allowed)})"
            )
        out[name] = value.strip()
    return out
