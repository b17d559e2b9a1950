"""A source model's weights as a neutral list of named blocks, whatever the source: canonical
weights (the ONNX layout), a Keras model's own arrays, or a torch module's state_dict.

Each recurrent tensor is cut into its gates' blocks (an exporter may reorder, split or stack
gates); a bias whose sum with its partner alone enters the outputs is paired with it (an
exporter may store both, or the sum); every other float tensor is one block. weight_match.py
finds each block in an export by its values."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from harness.model.layouts import GATE_ORDER
from harness.model.spec import Cell

CELL_OF_GATES = {1: Cell.RNN, 3: Cell.GRU, 4: Cell.LSTM}
KERAS_RECURRENT = ("SimpleRNN", "LSTM", "GRU")
KERAS_COPIED = ("Dense", "Embedding")  # layers whose weights an exporter stores as they are
TORCH_RECURRENT = re.compile(
    r"^(?P<prefix>.*?)(?P<kind>weight|bias)_(?P<side>ih|hh)_l(?P<layer>\d+)(?P<reverse>_reverse)?$"
)


@dataclasses.dataclass(frozen=True)
class Block:
    """A contiguous piece of one source tensor: a gate's rows (or columns), or all of it."""

    tensor: str  # the source tensor's name, as its framework names it
    values: np.ndarray  # 1-D or 2-D, in the source's dtype
    start: tuple[int, ...]  # the source index of the block's first element
    axes: tuple[int, ...]  # the source axis each axis of `values` runs along

    def source_index(self, position) -> tuple[int, ...]:
        """The source tensor's index of the block's element at `position`."""
        index = list(self.start)
        for axis, step in zip(self.axes, position, strict=False):
            index[axis] += int(step)
        return tuple(index)


@dataclasses.dataclass(frozen=True)
class Unit:
    """What is found and compared: one block, or two addends (biases) of which only the sum
    enters the outputs, so that an export may hold both or the sum."""

    name: str  # l0.R, l0.Wb+Rb, rnn.bias_ih_l0+bias_hh_l0
    gate: str  # the gate's letter (LSTM i o f c, GRU z r h); "" for a tensor without gates
    blocks: tuple[Block, ...]
    direction: str = ""  # "reverse": a bidirectional layer's backward direction
    required: bool = True  # False: a layer's weight that an exporter may transform (a Conv)

    @property
    def label(self) -> str:
        gate = f" gate {self.gate}" if self.gate else ""
        return f"{self.name}{gate}" + (f" ({self.direction})" if self.direction else "")

    @property
    def values(self) -> np.ndarray:
        """The block, or the addends' sum (in float64, then the source's dtype)."""
        first = self.blocks[0].values
        if len(self.blocks) == 1:
            return first
        return (first.astype(np.float64) + self.blocks[1].values).astype(first.dtype)


def whole(name: str, array, required: bool = True) -> Unit:
    """A tensor without gates as one unit."""
    array = np.asarray(array)
    axes = tuple(range(array.ndim))
    return Unit(name, "", (Block(name, array, (0,) * array.ndim, axes),), required=required)


def _gates(tensor: str, array, letters: str, axis: int, lead=()):
    """(gate letter, Block) per gate of `array`, its gates (`letters`, in the array's order)
    stacked along `axis`; `lead`: fixed source indices in front of the array's own."""
    H = array.shape[axis] // len(letters)
    for g, letter in enumerate(letters):
        piece = np.take(array, np.arange(g * H, (g + 1) * H), axis=axis)
        start = [0] * array.ndim
        start[axis] = g * H
        axes = tuple(len(lead) + a for a in range(array.ndim))
        yield ("" if len(letters) == 1 else letter), Block(tensor, piece, (*lead, *start), axes)


def _gate_units(tensor, array, letters, axis, lead=(), direction="") -> list[Unit]:
    return [
        Unit(tensor, letter, (block,), direction)
        for letter, block in _gates(tensor, array, letters, axis, lead)
    ]


def _bias_units(tensors, arrays, letters, summed: str, leads=((), ()), apart="", names=None):
    """A layer's two biases (input, recurrent) gate by gate: one unit of both where only their
    sum enters, named `summed`; the gates in `apart` (a GRU's h in the linear_before_reset
    form, where the reset gate multiplies the recurrent bias) one unit each, named `names`
    (default: the tensors'). `leads`: each bias's fixed source indices in front of its own."""
    names = names or tensors
    first, second = (
        list(_gates(t, a, letters, 0, lead))
        for t, a, lead in zip(tensors, arrays, leads, strict=True)
    )
    units = []
    for (letter, a), (_, b) in zip(first, second, strict=True):
        if letter and letter in apart:
            units += [Unit(n, letter, (x,)) for n, x in zip(names, (a, b), strict=True)]
        else:
            units.append(Unit(summed, letter, (a, b)))
    return units


def canonical_units(weights) -> list[Unit]:
    """Canonical weights: per layer and direction W and R by gate, the biases (their sum where
    only it enters) and peepholes by gate, then the head."""
    spec, units = weights.spec, []
    letters = GATE_ORDER["onnx"][spec.cell]
    apart = "h" if spec.cell is Cell.GRU and spec.linear_before_reset else ""
    for layer in range(spec.num_layers):
        for d in range(spec.num_directions):
            where = {"lead": (d,), "direction": "reverse" if d else ""}
            for key in ("W", "R"):
                name = f"l{layer}.{key}"
                units += _gate_units(name, weights[name][d], letters, 0, **where)
            names = (f"l{layer}.Wb", f"l{layer}.Rb")
            arrays = [weights[n][d] for n in names]
            summed = f"l{layer}.Wb+Rb"
            biases = _bias_units(names, arrays, letters, summed, ((d,), (d,)), apart)
            units += [dataclasses.replace(u, direction=where["direction"]) for u in biases]
            if weights.peepholes(layer) is not None:  # ONNX's P: i, o, f
                units += _gate_units(f"l{layer}.P", weights.peepholes(layer)[d], "iof", 0, **where)
    return units + [whole(n, weights[n]) for n in ("head.W", "head.b") if n in weights]


def keras_units(model) -> list[Unit]:
    """A Keras model's own arrays: each recurrent layer's kernel [I, G*H] and recurrent_kernel
    [H, G*H] by gate (Keras order), its bias by gate (a GRU(reset_after=True)'s [2, G*H]
    rows paired where only their sum enters); Dense and Embedding weights whole; any other
    layer's float weights whole, not required (an exporter may transform them)."""
    units, seen = [], set()
    for layer in _keras_layers(model, set()):
        kind = type(layer).__name__
        cell = getattr(layer, "cell", None)
        if kind in KERAS_RECURRENT and cell is not None:
            units += _keras_recurrent(layer, cell)
            seen |= {id(v) for v in cell.weights}
        for variable in layer.weights:
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            array = np.asarray(variable)
            if array.dtype.kind == "f":
                units.append(whole(_path(variable), array, required=kind in KERAS_COPIED))
    return units


def _keras_layers(layer, visited: set):
    """Every layer inside `layer`, inner layers (a wrapper's, a nested model's) first."""
    inner = list(getattr(layer, "layers", None) or [])
    inner += [getattr(layer, a, None) for a in ("forward_layer", "backward_layer", "layer")]
    for child in inner:
        if child is not None and id(child) not in visited:
            visited.add(id(child))
            yield from _keras_layers(child, visited)
    yield layer


def _keras_recurrent(layer, cell) -> list[Unit]:
    kernel, recurrent = np.asarray(cell.kernel), np.asarray(cell.recurrent_kernel)
    letters = GATE_ORDER["keras"][CELL_OF_GATES[kernel.shape[1] // recurrent.shape[0]]]
    units = _gate_units(_path(cell.kernel), kernel, letters, 1)
    units += _gate_units(_path(cell.recurrent_kernel), recurrent, letters, 1)
    if getattr(cell, "bias", None) is None:
        return units
    bias, name = np.asarray(cell.bias), _path(cell.bias)
    if bias.ndim == 1:  # LSTM, SimpleRNN, GRU(reset_after=False): the sum itself
        return units + _gate_units(name, bias, letters, 0)
    # GRU(reset_after=True): [input row; recurrent row], apart in the candidate gate h
    rows = (f"{name}[0]", f"{name}[1]")
    summed = f"{name}[0]+[1]"
    return units + _bias_units((name, name), bias, letters, summed, ((0,), (1,)), "h", rows)


def _path(variable) -> str:
    return str(getattr(variable, "path", None) or variable.name)


def torch_units(module) -> list[Unit]:
    """A torch module's state_dict: each recurrent module's weight_ih/weight_hh [G*H, *] by
    gate (torch order), bias_ih and bias_hh paired where only their sum enters; 2-D weights
    (Linear, Embedding) and the bias beside a Linear's weight whole; any other float tensor
    (a norm's scale, a Conv kernel) whole, not required."""
    state = {k: _numpy(v) for k, v in _state_dict(module).items()}
    state = {k: v for k, v in state.items() if v.dtype.kind == "f"}
    units, done = [], set()
    for key, array in state.items():
        match = TORCH_RECURRENT.match(key)
        if match is None or match["kind"] != "weight" or match["side"] != "hh" or key in done:
            continue
        p, suffix = match["prefix"], f"_l{match['layer']}{match['reverse'] or ''}"
        cell = CELL_OF_GATES[array.shape[0] // array.shape[1]]
        names = {k: f"{p}{k}{suffix}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        for k in ("weight_ih", "weight_hh"):
            if names[k] in state:
                units += _gate_units(names[k], state[names[k]], GATE_ORDER["torch"][cell], 0)
        biases = (names["bias_ih"], names["bias_hh"])
        if all(b in state for b in biases):
            summed = f"{p}bias_ih{suffix}+bias_hh{suffix}"
            apart = "h" if cell is Cell.GRU else ""
            arrays = [state[b] for b in biases]
            letters = GATE_ORDER["torch"][cell]
            units += _bias_units(biases, arrays, letters, summed, apart=apart)
        done |= set(names.values())
    for key, array in state.items():
        if key in done:
            continue
        partner = state.get(key[: -len("bias")] + "weight") if key.endswith("bias") else None
        copied = array.ndim == 2 or (
            array.ndim == 1 and partner is not None and partner.shape[:1] == array.shape
        )
        units.append(whole(key, array, required=copied))
    return units


def _state_dict(module) -> dict:
    """A module's state_dict; a TorchScript method's (a scripted nn.GRU's forward overload)
    from the module that owns it."""
    if hasattr(module, "state_dict"):
        return module.state_dict()
    import torch

    return torch.jit._recursive.wrap_cpp_module(module.owner).state_dict()


def _numpy(value) -> np.ndarray:
    """A tensor as an array (float16 and bfloat16 as float32, which holds them exactly)."""
    if not hasattr(value, "detach"):
        return np.asarray(value)
    value = value.detach().cpu()
    if value.is_floating_point() and value.element_size() < 4:
        value = value.float()
    return value.numpy()
