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

from harness.model.spec import SpecError, tomllib

# benchmarks/suites in a checkout; harness/suite_files in an installed wheel (pyproject maps it)
_HERE = Path(__file__).resolve()
_CANDIDATES = (_HERE.parents[2] / "benchmarks" / "suites", _HERE.parents[1] / "suite_files")
SUITES_DIR = next((d for d in _CANDIDATES if d.is_dir()), _CANDIDATES[0])
CELLS = ("rnn", "lstm", "gru", "mingru")
DTYPES = ("float32", "float64")
MODES = ("forward", "train", "gemm", "sequential", "peak", "bandwidth")
PROBE_MODES = ("peak", "bandwidth")  # machine probes: `size` is their only axis

# Which modes each timing target offers. "gemm": the case's FLOPs as one matrix product per
# layer (all steps at once); "sequential": minGRU's step-by-step form; "peak": an N x N product;
# "bandwidth": a copy of N elements.
_ALL = ("forward", "train", "gemm", "sequential", "peak", "bandwidth")
TARGET_MODES: dict[str, tuple[str, ...]] = {
    "numpy": _ALL,
    "cupy": ("forward", "gemm", "sequential", "peak", "bandwidth"),
    "torch-cpu": _ALL,
    "torch-cuda": _ALL,
    "torch-cpu-compile": ("forward",),
    "torch-cuda-graphs": ("forward",),
    "tf-eager": ("forward", "train", "sequential"),
    "tf-function": ("forward", "train", "gemm", "sequential"),
    "tf-xla": ("forward", "train", "sequential"),
}
for _exporter in ("direct", "torchscript", "dynamo", "tf2onnx", "keras"):
    for _provider in ("cpu", "cuda", "tensorrt"):
        TARGET_MODES[f"ort-{_exporter}-{_provider}"] = ("forward",)
MINGRU_TARGETS = (
    "numpy",
    "cupy",
    "torch-cpu",
    "torch-cuda",
    "torch-cpu-compile",
    "torch-cuda-graphs",
    "tf-eager",
    "tf-function",
    "tf-xla",
)

TIMING_DEFAULTS = {
    "warmup_s": 0.1,
    "min_round_s": 0.05,
    "rounds": 9,
    "pause_s": 0.1,
    "timeout_s": 300.0,
}
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
    "threads": (1,),
    "size": (0,),
}


class SuiteError(ValueError):
    """An invalid suite file; the message names the file, field, value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class BenchCase:
    target: str
    mode: str
    cell: str = "lstm"
    dtype: str = "float32"
    batch: int = 1
    steps: int = 1
    input_size: int = 128
    hidden: int = 256
    layers: int = 1
    threads: int = 1
    size: int = 0  # probes only: N of the N x N product, or elements copied
    sweep: str = ""  # the suite's label for the sweep it came from; not part of the identity

    def __post_init__(self) -> None:
        if self.target not in TARGET_MODES:
            _bad("target", self.target, ", ".join(TARGET_MODES))
        if self.mode not in TARGET_MODES[self.target]:
            _bad("mode", self.mode, f"for {self.target}: {', '.join(TARGET_MODES[self.target])}")
        if self.cell not in CELLS:
            _bad("cell", self.cell, ", ".join(CELLS))
        if self.dtype not in DTYPES:
            _bad("dtype", self.dtype, ", ".join(DTYPES))
        for name in ("batch", "steps", "input_size", "hidden", "layers", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _bad(name, value, "an integer >= 1")
        if self.mode in PROBE_MODES and self.size < 1:
            _bad("size", self.size, f"an integer >= 1 for the {self.mode} probe")
        if self.cell == "mingru" and self.target not in MINGRU_TARGETS:
            _bad("target", self.target, f"for minGRU: {', '.join(MINGRU_TARGETS)}")
        if self.cell == "mingru" and self.mode not in ("forward", "sequential", "gemm"):
            _bad("mode", self.mode, "for minGRU: forward (parallel scan), sequential, gemm")
        if self.mode == "sequential" and self.cell != "mingru":
            _bad("mode", self.mode, "sequential is minGRU's step loop; RNN/LSTM/GRU are always")

    @property
    def id(self) -> str:
        if self.mode in PROBE_MODES:
            return f"{self.target}/{self.mode}/{self.dtype}/N{self.size}/th{self.threads}"
        return (
            f"{self.target}/{self.mode}/{self.cell}/{self.dtype}/B{self.batch}/T{self.steps}"
            f"/I{self.input_size}/H{self.hidden}/L{self.layers}/th{self.threads}"
        )

    @property
    def group(self) -> str:
        """What the interleaved group shares: everything but target and mode."""
        return self.id.split("/", 2)[2]

    @property
    def is_probe(self) -> bool:
        return self.mode in PROBE_MODES

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchCase:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def _bad(field: str, value: Any, allowed: str):
    raise SuiteError(f"BenchCase.{field} = {value!r} is invalid: allowed {allowed}")


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
        raise SuiteError(f"sweep {label!r}: no targets: allowed {', '.join(TARGET_MODES)}")
    values = [axes.get(k, AXES[k]) for k in AXES]
    cases = []
    for (
        target,
        mode,
        cell,
        dtype,
        batch,
        steps,
        input_size,
        hidden,
        layers,
        threads,
        size,
    ) in itertools.product(*values):
        if input_size == "hidden":  # I = H, as DeepBench sizes its layers
            input_size = hidden
        cases.append(
            BenchCase(
                target,
                mode,
                cell,
                dtype,
                batch,
                steps,
                input_size,
                hidden,
                layers,
                threads,
                size,
                sweep=label,
            )
        )
    return cases
