"""A user's PyTorch model file read into a spec and canonical weights, plus the file itself as
a runtime. Accepted: TorchScript (torch.jit.save, scripted or traced), an ExportedProgram
(torch.export.save, .pt2), or a state_dict (torch.save of module.state_dict()) with a spec.

What the recurrence is comes from the modules (nn.RNN/LSTM/GRU; several in a row stack into
layers) or, where a traced or exported graph hides their settings, from the recurrent op's own
arguments (aten::lstm, aten::gru, aten::rnn_tanh: layers, bidirectional, batch_first). A dense
head is one nn.Linear on the last layer's final states, with a softmax where the graph calls
one. That reading is a claim the parity check then tests: the file is run and each of its
outputs compared with the NumPy reference on the weights read here.

Nothing is unpickled but by torch's restricted unpicklers: torch.load runs with
weights_only=True, so a pickled nn.Module is refused; torch.jit.load's builds tensors and
TorchScript objects only (the module's TorchScript runs when the check runs the file). An
ExportedProgram is never given to torch.export.load, which unpickles and evaluates what the file
holds: backends/torch_exported.py reads it member by member, and is tried first, so that a .pt2
reaches no other reader.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

import numpy as np
import torch

from backends import torch_exported
from backends.pt2_archive import NotAnArchive
from backends.torch_model import MODULES, from_torch_state_dict
from backends.torch_ops import OPS, refuse_ops
from backends.torch_runtime import TorchRuntime, short
from backends.torch_state_dict import from_state_dict
from harness.model.front_end import PLAIN, FrontEnd
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights

KINDS = {"LSTM": Cell.LSTM, "GRU": Cell.GRU, "RNN": Cell.RNN}
PASSIVE = {"Dropout", "Identity", "Sequential", "ModuleList", "Softmax"}
ACCEPTED = (
    "TorchScript (torch.jit.save), an ExportedProgram (torch.export.save, .pt2), or a "
    "state_dict (torch.save(model.state_dict())) with --spec"
)


def load(path, spec: ModelSpec | None = None):
    """(kind, spec, canonical weights, runtime or None, notes) of a torch file."""
    errors = []
    for kind, reader in (
        ("exported-program", _exported_program),
        ("torchscript", _torchscript),
        ("state-dict", _state_dict),
    ):
        try:
            with _quiet():
                opened = reader(path)
        except _NotThisKind as exc:
            errors.append(f"{kind}: {str(exc).split('. ')[0][:70]}")  # its first sentence
            continue
        if kind == "state-dict":
            return (kind, *from_state_dict(path, opened, spec))
        if spec is not None:
            raise NotSupported(
                f"--spec is for a state_dict; {path} is {kind}, which says what it is"
            )
        return (kind, *opened)
    raise NotSupported(
        f"{path} is not a torch model file this reads ({'; '.join(errors)}): allowed {ACCEPTED}"
    )


def load_runtime(path):
    """A TorchScript file as it runs, and what it is (cell, layers, directions, dtype, input
    size, batch_first), for a model the reference does not compute (two stacked modules of
    other sizes, say): its export is then checked against it as it runs. An ExportedProgram's
    is backends/torch_exported.py's."""
    try:
        with _quiet():
            return torch_exported.runtime(path)
    except NotAnArchive:
        pass
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception:
        raise NotSupported(f"{path}: neither TorchScript nor an ExportedProgram") from None
    module.eval()
    rnns, _, embeddings = _modules(module, path)
    name, first = rnns[0]
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    weight = state[_key(name, "weight_ih_l0")]
    ops = {"embedding"}  # a running source: its graph is not read, the check runs it
    front = _front(embeddings, state, ops, int(weight.shape[1]), path)
    batch_first = _attr(first, "batch_first", None)
    if batch_first is None:
        raise NotSupported(f"{path}: cannot tell whether the input is batch-first")
    dtype = {torch.float32: "float32", torch.float64: "float64"}.get(weight.dtype, "float32")
    forward = _forward(module, path)
    runtime = TorchRuntime(
        str(path), "torchscript", forward, bool(batch_first), None, None, weight.dtype
    )
    layers = sum(_count_layers(state, n) for n, _ in rnns)
    about = {
        "cell": KINDS[getattr(first, "original_name", type(first).__name__)].value,
        "layers": layers,
        "directions": 2 if _key(name, "weight_ih_l0_reverse") in state else 1,
        "dtype": dtype,
        "input_size": int(weight.shape[1]),
        "batch_first": bool(batch_first),
        "front": front,
    }
    return runtime, about


class _NotThisKind(Exception):
    pass


def _exported_program(path):
    try:
        return torch_exported.read(path)
    except NotAnArchive as exc:
        raise _NotThisKind(str(exc)) from None


@contextlib.contextmanager
def _quiet():
    """Trying a reader on a file of another kind makes torch log errors and warn of
    deprecations: none of that is the user's business."""
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


# ---- TorchScript ----------------------------------------------------------------------------


def _torchscript(path):
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise _NotThisKind(short(exc)) from None
    module.eval()
    rnns, linears, embeddings = _modules(module, path)
    forward = _forward(module, path)
    nodes = list(_all_nodes(forward.inlined_graph))
    graph_ops = {n.kind().split("::")[-1] for n in nodes}
    args = _graph_rnn_args(nodes)
    spec, state = _spec_from_modules(module, rnns, linears, graph_ops, args, path)
    raw = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    front = _front(embeddings, raw, graph_ops, spec.input_size, path)
    weights = from_torch_state_dict(spec, state)
    dtype = getattr(torch, spec.dtype)
    runtime = TorchRuntime(str(path), "torchscript", forward, spec.batch_first, None, None, dtype)
    if spec.head is not None and spec.head.activation == "softmax":
        spec, weights = _softmax_taken(spec, weights, runtime, front)
    names = [n for n, _ in embeddings] + [n or "its own module" for n, _ in rnns]
    return spec, weights, runtime, [f"read from TorchScript modules {', '.join(names)}"], front


def _modules(module, path):
    """The recurrent modules, the Linear ones and an Embedding before them, in registration
    order; anything else that computes is refused by name."""
    rnns: list[tuple[str, Any]] = []
    linears: list[tuple[str, Any]] = []
    embeddings: list[tuple[str, Any]] = []
    for name, sub in module.named_modules():
        kind = getattr(sub, "original_name", type(sub).__name__)
        if not name and kind not in KINDS:  # the file's own module: a wrapper, or the RNN
            continue
        if kind in KINDS:
            rnns.append((name, sub))
        elif kind == "Linear":
            linears.append((name, sub))
        elif kind == "Embedding" and not rnns and not embeddings:
            embeddings.append((name, sub))
        elif kind not in PASSIVE and not list(sub.children()):
            raise NotSupported(
                f"{path}: module {name!r} is a {kind}: allowed one nn.Embedding first, "
                "nn.RNN/LSTM/GRU, one nn.Linear head, Dropout, Identity, Softmax"
            )
    if not rnns:
        raise NotSupported(f"{path} has no nn.RNN, nn.LSTM or nn.GRU module")
    return rnns, linears, embeddings


def _front(embeddings, state, graph_ops, input_size: int, path) -> FrontEnd:
    """The Embedding's table, where the module has one and its graph looks tokens up."""
    if not embeddings:
        return PLAIN
    name = embeddings[0][0]
    if "embedding" not in graph_ops:
        raise NotSupported(f"{path}: module {name!r} is an nn.Embedding its forward never calls")
    table = state[_key(name, "weight")].detach().cpu().numpy()
    if table.ndim != 2 or table.shape[1] != input_size:
        raise NotSupported(
            f"{path}: nn.Embedding {name!r} gives {list(table.shape)}, the first recurrent "
            f"module takes I = {input_size}"
        )
    return FrontEnd(table, layers=(name,))


def _forward(module, path):
    """What runs the module on a tensor: its forward, or, for a scripted nn.RNN/LSTM/GRU
    saved bare (forward overloaded for tensors and PackedSequences), the tensor overload."""
    if "forward" in module._c._method_names():
        return module
    for name in module._c._method_names():
        if name.startswith("forward__"):
            method = getattr(module, name)
            inputs = list(method.graph.inputs())[1:]  # self first
            if inputs and inputs[0].type().kind() == "TensorType":
                return method
    raise NotSupported(f"{path}: its TorchScript module has no forward taking a tensor")


def _all_nodes(graph):
    """Every node of a TorchScript graph, those inside If/Loop blocks included."""
    for node in graph.nodes():
        yield node
        for block in node.blocks():
            yield from _all_nodes(block)


def _softmax_taken(spec, weights, runtime, front):
    """The graph calls a softmax, maybe in a branch not taken: which head the module computes
    is told by running it once and matching its head-shaped output against both heads."""
    from harness.model_file.front import draw
    from harness.model_file.reference import reference

    drawn = draw(front, spec.input_size, 3, 2, 0)
    x = drawn.x
    outputs = runtime.run(drawn.file_input).outputs.values()
    candidate = next((o for o in outputs if o.shape == (2, spec.head.units)), None)
    if candidate is None:
        return spec, weights
    plain = spec.replace(head=Head(spec.head.units, "none"))
    direction = "bidirectional" if spec.bidirectional else "forward"
    logits = reference(CanonicalWeights(plain, dict(weights)), direction, (), x, {})["head"]
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    if np.abs(candidate - logits).max() < np.abs(candidate - probabilities).max():
        return plain, CanonicalWeights(plain, dict(weights))
    return spec, weights


def _graph_rnn_args(nodes) -> list[dict]:
    """Per recurrent op in the graph: its cell and constant arguments (layers, bidirectional,
    batch_first), as far as the graph holds them as constants."""
    found = []
    for node in nodes:
        op = node.kind().split("::")[-1]
        if op not in OPS:
            continue
        values = [_constant(i.node()) for i in node.inputs()]
        # aten::lstm.input(input, hx, params, has_biases, num_layers, dropout, train,
        # bidirectional, batch_first); the .data overload (packed) has no batch_first
        if len(values) >= 9:
            found.append(
                {
                    "cell": OPS[op],
                    "layers": values[4],
                    "bidirectional": values[7],
                    "batch_first": values[8],
                }
            )
    return found


def _constant(node):
    if node.kind() == "prim::Constant" and node.hasAttribute("value"):
        return node.output().toIValue()
    return None


def _spec_from_modules(module, rnns, linears, graph_ops, graph_args, path):
    refuse_ops(graph_ops, path)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    layers, cell, H, bidirectional, batch_first = [], None, None, None, None
    for number, (name, sub) in enumerate(rnns):
        kind = KINDS[getattr(sub, "original_name", type(sub).__name__)]
        args = graph_args[number] if number < len(graph_args) else {}
        n_layers = _attr(sub, "num_layers", args.get("layers")) or _count_layers(state, name)
        bi = _attr(sub, "bidirectional", args.get("bidirectional"))
        bi = bool(bi) if bi is not None else _key(name, "weight_ih_l0_reverse") in state
        bf = _attr(sub, "batch_first", args.get("batch_first"))
        if _attr(sub, "proj_size", 0):
            raise NotSupported(
                f"{path}: {name} has proj_size > 0: allowed LSTMs without projection"
            )
        w_hh = state[_key(name, "weight_hh_l0")]
        h = int(w_hh.shape[1])
        hint = "(an export of it is checked against it as it runs: --against EXPORT)"
        if H not in (None, h):
            raise NotSupported(f"{path} stacks layers of {[H, h]} units: allowed one size {hint}")
        if cell not in (None, kind) or bidirectional not in (None, bi):
            raise NotSupported(
                f"{path}: module {name} differs from the modules before it (cell or "
                f"direction): allowed one kind of layer stacked {hint}"
            )
        if number and bf is not None and batch_first is not None and bf != batch_first:
            raise NotSupported(f"{path}: {name}'s batch_first differs from the first module's")
        cell, H, bidirectional = kind, h, bi
        batch_first = batch_first if batch_first is not None else bf
        layers += [(name, k) for k in range(n_layers)]
    if batch_first is None:
        raise NotSupported(f"{path}: cannot tell whether the input is batch-first")
    I = int(state[_key(rnns[0][0], "weight_ih_l0")].shape[1])
    head = None
    if len(linears) > 1:
        raise NotSupported(f"{path} has {len(linears)} nn.Linear modules: allowed one head")
    if linears:
        w = state[_key(linears[0][0], "weight")]
        head = Head(int(w.shape[0]), "softmax" if "softmax" in graph_ops else "none")
    dtype = {torch.float32: "float32", torch.float64: "float64"}.get(w_hh.dtype)
    if dtype is None:
        raise NotSupported(f"{path}: weights of dtype {w_hh.dtype}: allowed float32, float64")
    if cell is None or H is None or bidirectional is None:
        raise NotSupported(f"{path}: no recurrent module to read")
    spec = ModelSpec(
        cell,
        I,
        H,
        num_layers=len(layers),
        bidirectional=bidirectional,
        batch_first=bool(batch_first),
        head=head,
        dtype=dtype,
    )
    return spec, _canonical_state(spec, state, layers, linears)


def _attr(module, name, default):
    try:
        return getattr(module, name)
    except (AttributeError, RuntimeError):
        return default


def _count_layers(state, name) -> int:
    return sum(1 for k in state if k.startswith(_key(name, "weight_ih_l")) and "reverse" not in k)


def _key(module: str, parameter: str) -> str:
    """A state-dict key: the module's path, then the parameter ('' is the file's own module)."""
    return f"{module}.{parameter}" if module else parameter


def _canonical_state(spec, state, layers, linears) -> dict:
    """The state dict renamed as RecurrentModel's ("rnn.weight_ih_l{k}", "head.weight")."""
    out = {}
    for number, (module, k) in enumerate(layers):
        for suffix in ("", "_reverse")[: spec.num_directions]:
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                key = _key(module, f"{kind}_l{k}{suffix}")
                if key in state:
                    value = state[key]
                elif kind.startswith("bias"):  # bias=False: zero biases
                    value = torch.zeros(state[_key(module, f"weight_hh_l{k}{suffix}")].shape[0])
                else:
                    raise NotSupported(f"the file has no {key!r}")
                out[f"rnn.{kind}_l{number}{suffix}"] = value
    if linears:
        name = linears[0][0]
        out["head.weight"] = state[_key(name, "weight")]
        out["head.bias"] = state.get(_key(name, "bias"), torch.zeros(out["head.weight"].shape[0]))
    return {k: v.to(getattr(torch, spec.dtype)) for k, v in out.items()}


# ---- state_dict -----------------------------------------------------------------------------


def _state_dict(path):
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _NotThisKind(short(exc)) from None
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise _NotThisKind("not a dict of tensors")
    return loaded


__all__ = ["load", "TorchRuntime", "MODULES", "CanonicalWeights"]
