"""A torch state_dict (torch.save(model.state_dict()), loaded by backends/torch_file.py with
weights_only=True) read with the spec the user gives: the one recurrent module's weights by the
keys nn.RNN/LSTM/GRU give them, and a head, where the spec has one, as the one 2-D weight of its
shape outside that module."""

from __future__ import annotations

import torch

from backends.torch_model import from_torch_state_dict, param_names
from harness.model.arrays import Arrays
from harness.model.front_end import PLAIN, FrontEnd
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec


def from_state_dict(path, state: dict, spec: ModelSpec | None):
    if spec is None:
        raise NotSupported(
            f"{path} is a state_dict, which does not say what model it is: pass --spec "
            "(a .toml or .json model spec)"
        )
    ih = sorted(k for k in state if k.endswith("weight_ih_l0"))
    if len(ih) != 1:
        raise NotSupported(
            f"{path}: found {len(ih)} recurrent modules (keys ending weight_ih_l0): allowed one"
        )
    prefix = ih[0][: -len("weight_ih_l0")]
    renamed = {}
    for _, _, torch_name in param_names(spec):
        key = prefix + torch_name.split(".", 1)[1]
        if key not in state:
            raise NotSupported(
                f"{path} has no {key!r}: the state_dict does not fit the spec "
                f"({spec.cell.value}, {spec.num_layers} layers, "
                f"{'bidirectional' if spec.bidirectional else 'one direction'})"
            )
        renamed[torch_name] = state[key]
    used = {prefix + torch_name.split(".", 1)[1] for _, _, torch_name in param_names(spec)}
    if spec.head is not None:
        head, head_keys = _state_dict_head(path, state, spec, prefix)
        renamed.update(head)
        used |= head_keys
    front = _embedding(path, state, spec, set(state) - used)
    try:
        weights = from_torch_state_dict(
            spec, {k: v.detach().to(getattr(torch, spec.dtype)) for k, v in renamed.items()}
        )
    except (NotSupported, ValueError) as exc:
        raise NotSupported(f"{path}: the state_dict does not fit the spec: {exc}") from None
    notes = [f"a state_dict read with the given spec (prefix {prefix!r})"]
    if front.tokens:
        notes.append(f"an embedding table {front.layers[0]!r} before the recurrence")
    return spec, weights, None, notes, front


def _embedding(path, state: dict, spec: ModelSpec, left: set[str]) -> FrontEnd:
    """What the spec does not account for: nothing, or one [V, I] weight (an nn.Embedding
    before the recurrence). Anything else is refused naming it, never dropped."""
    tables = [
        k for k in sorted(left) if state[k].ndim == 2 and state[k].shape[1] == spec.input_size
    ]
    others = sorted(left - set(tables[:1]))
    if len(tables) > 1 or others:
        name = others[0] if others else tables[1]
        raise NotSupported(
            f"{path}: the state_dict holds {name!r} {list(state[name].shape)}, which the spec "
            "does not account for: allowed the recurrent module's weights, the head's, and one "
            f"embedding table [V, {spec.input_size}]"
        )
    if not tables:
        return PLAIN
    return FrontEnd(state[tables[0]].detach().cpu().numpy(), layers=(tables[0],))


def _state_dict_head(path, state, spec, prefix) -> tuple[Arrays, set[str]]:
    width = spec.num_directions * spec.hidden_size
    candidates = [
        k[: -len("weight")]
        for k, v in state.items()
        if k.endswith("weight")
        and not k.startswith(prefix)
        and v.ndim == 2
        and tuple(v.shape) == (spec.head.units, width)
    ]
    if len(candidates) != 1:
        raise NotSupported(
            f"{path}: the spec has a head of {spec.head.units} units on {width} features; the "
            f"state_dict has {len(candidates)} such weights: allowed exactly one"
        )
    name = candidates[0]
    bias = state.get(f"{name}bias", torch.zeros(spec.head.units))
    keys = {f"{name}weight"} | ({f"{name}bias"} if f"{name}bias" in state else set())
    return {"head.weight": state[f"{name}weight"], "head.bias": bias}, keys
