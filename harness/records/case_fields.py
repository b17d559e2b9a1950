"""What a benchmark case is, declared once: its fields (a results record's `case`), and for
each its Role: its part of the case's id, whether the cases of one interleaved group share it,
whether the analysis keys its tables by it, and the suite axis that sets it.
harness.bench.case.BenchCase is these fields plus what this machine can time; the case id,
the group key, the table key and the suite's axes are derived here, nowhere else.

A new case field is one line here (its Role says the rest), its axis in
harness/records/suite.py, and its use in harness/bench/workload.py;
tests/test_case_fields.py says which of these is missing."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from harness.json_values import JsonObject
from harness.records.base import Record, Size


@dataclasses.dataclass(frozen=True)
class Role:
    """How a case field is used beyond its value.

    id: its part of the case id, "{}" standing for the value ("": not in the id);
    shown: when that part is shown: always, for timed cases only (not the machine probes),
        for probes only, or when the value is set (true, non-zero, non-empty);
    shared: the cases of one interleaved group share it (not the backend and mode, which
        differ within a group, nor what follows them or labels them);
    key: the analysis keys its tables by it (harness.analysis.rows);
    identity: it is part of what the case is (a label is not);
    follows: the field of the id whose value decides this one (not in the id itself);
    axis: the suite sweep's axis that sets it (None: its own name; "": none)."""

    id: str = ""
    shown: Literal["always", "timed", "probe", "set"] = "always"
    shared: bool = True
    key: bool = False
    identity: bool = True
    follows: str = ""
    axis: str | None = None


class CaseFields(Record):
    """What a case is (harness.bench.case.BenchCase), in the order of its id."""

    backend: Annotated[str, Role("{}", shared=False, key=True, axis="backends")] = Field(
        description="a registered timing backend (harness/registry.py)"
    )
    mode: Annotated[str, Role("{}", shared=False, key=True, axis="modes")] = Field(
        description="forward | train | gemm | sequential | peak | bandwidth | newton | "
        "quasi-newton | stream | load"
    )
    cell: Annotated[str, Role("{}", "timed", key=True)] = Field(
        description="rnn | lstm | gru | mingru"
    )
    dtype: Annotated[str, Role("{}", key=True)] = Field(description="float32 | float64")
    batch: Annotated[Size, Role("B{}", "timed", key=True)]
    steps: Annotated[Size, Role("T{}", "timed", key=True)] = Field(
        description="T, the sequence length"
    )
    input_size: Annotated[Size, Role("I{}", "timed", key=True, axis="input")]
    hidden: Annotated[Size, Role("H{}", "timed", key=True)]
    layers: Annotated[Size, Role("L{}", "timed", key=True)]
    size: Annotated[int, Role("N{}", "probe")] = Field(
        0, ge=0, le=2**40, description="probes: N of the N x N product, or elements copied"
    )
    bidirectional: Annotated[bool, Role("bi", "set", key=True)] = False
    head: Annotated[int, Role("head{}", "set")] = Field(
        0, ge=0, le=2**31, description="softmax head units, 0 = none"
    )
    model: Annotated[str | None, Role("model-{}", "set", key=True, axis="")] = Field(
        None, description="a user's model (bench --model): its name"
    )
    threads: Annotated[Size, Role("th{}", key=True)]
    sweep: Annotated[str, Role(shared=False, identity=False, axis="")] = Field(
        "", description="the suite's label for its sweep (not its identity)"
    )
    device: Annotated[
        Literal["cpu", "gpu"] | None, Role(shared=False, follows="backend", axis="")
    ] = Field(
        None, description="cpu | gpu, from the backend's registry entry (filled on read if absent)"
    )
    model_spec: Annotated[JsonObject | None, Role(follows="model", axis="")] = Field(
        None, description="its spec (harness ModelSpec)"
    )
    weights_file: Annotated[str | None, Role(follows="model", axis="")] = Field(
        None, description="its canonical weights (.npz)"
    )
    model_file: Annotated[str | None, Role(shared=False, follows="model", axis="")] = Field(
        None, description="the file the model-file backend times"
    )

    @model_validator(mode="before")
    @classmethod
    def _device_known(cls, data: Any) -> Any:
        """Files before the device field: the device is the backend's registry entry's; a
        device that contradicts a registered backend's is refused."""
        from harness import registry

        if not isinstance(data, dict) or not isinstance(data.get("backend"), str):
            return data  # the fields' own validation says what is wrong
        backend, device = data["backend"], data.get("device")
        entry = registry.BACKENDS.get(backend)
        if device is not None and entry is not None and device != entry.device:
            raise ValueError(
                f"case of backend {backend!r} says device {device!r}, but {backend} runs on "
                f"{entry.device}"
            )
        if device is None:
            if entry is None:
                raise ValueError(
                    f"case of backend {backend!r} names no device and this rnnbench does not "
                    "know the backend: add device (cpu | gpu) to its case"
                )
            data = {**data, "device": entry.device}
        return data


def roles(fields: type[Record] = CaseFields) -> dict[str, Role]:
    """Every case field's Role, in declaration order; a KeyError names a field without one."""
    out = {}
    for name, info in fields.model_fields.items():
        found = [m for m in info.metadata if isinstance(m, Role)]
        if not found:
            raise KeyError(
                f"{fields.__name__}.{name} has no Role: declare it as Annotated[type, Role(...)] "
                "(its part of the id, whether a group shares it, whether tables key by it)"
            )
        out[name] = found[0]
    return out


def case_id(fields: Mapping[str, Any], probe: bool) -> str:
    """The case's id from its fields: each field's part, in declaration order, where shown.
    probe: the case is a machine probe (harness.registry.PROBE_MODES)."""
    parts = []
    for name, role in roles().items():
        value = fields.get(name)
        shown = {"always": True, "timed": not probe, "probe": probe, "set": bool(value)}
        if role.id and shown[role.shown]:
            parts.append(role.id.format(value))
    return "/".join(parts)


def not_shared() -> tuple[str, ...]:
    """The fields in which the cases of one interleaved group differ (or that label them)."""
    return tuple(name for name, role in roles().items() if not role.shared)


def group_key(fields: Mapping[str, Any]) -> tuple:
    """The interleaved group of a case, from its fields: every shared field set."""
    other = not_shared()
    return tuple(sorted((k, str(v)) for k, v in fields.items() if k not in other and v is not None))


def key_fields() -> tuple[str, ...]:
    """The fields the analysis keys its tables by (harness.analysis.rows.KEY_FIELDS)."""
    return tuple(name for name, role in roles().items() if role.key)


def identity_fields() -> tuple[str, ...]:
    """The fields of what a case is (a suite's identity hashes them; labels aside)."""
    return tuple(name for name, role in roles().items() if role.identity)


def sweep_axes() -> dict[str, str]:
    """A suite sweep's axis name -> the case field it sets."""
    return {
        (name if role.axis is None else role.axis): name
        for name, role in roles().items()
        if role.axis != ""
    }
