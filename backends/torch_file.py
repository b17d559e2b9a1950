"""A user's PyTorch model file read into a spec and canonical weights, plus the file itself as
a runtime. Accepted: TorchScript (torch.jit.save, scripted or traced), an ExportedProgram
(torch.export.save, .pt2), or a state_dict (torch.save of module.state_dict()) with a spec.

What the recurrence is comes from the modules (nn.RNN/LSTM/GRU; several in a row stack into
layers) or, where a traced or exported graph hides their settings, from the recurrent op's own
arguments (aten::lstm, aten::gru, aten::rnn_tanh: layers, bidirectional, batch_first). A dense
head is one nn.Linear on the last layer's final states, with a softmax where the graph calls
one. That reading is a claim the parity check then tests: the file is run and each of its
outputs compared with the NumPy reference on the weights read here.

Nothing is unpickled: torch.load runs with weights_only=True, so a pickled nn.Module is refused.
"""

from __future__ import annotations

import contextlib
import logging
import ntpath
import warnings

import numpy as np
import torch

from backends.torch_model import MODULES, from_torch_state_dict, param_names
from harness.model.protocol import NotSupported
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import CanonicalWeights

KINDS = {"LSTM": Cell.LSTM, "GRU": Cell.GRU, "RNN": Cell.RNN}
OPS = {"lstm": Cell.LSTM, "gru": Cell.GRU, "rnn_tanh": Cell.RNN}
PASSIVE = {"Dropout", "Identity", "Sequential", "ModuleList", "Softmax"}
# An op the reference does not compute: what it is, and what is allowed in its place.
HEAD_ONLY = "allowed a softmax head or none"
REFUSED_OPS = {
    "log_softmax": ("LogSoftmax", HEAD_ONLY),
    "sigmoid": ("a sigmoid", HEAD_ONLY),
    "rnn_relu": ("nn.RNN(nonlinearity='relu')", "allowed nonlinearity='tanh'"),
    "relu": ("a ReLU", HEAD_ONLY),
}


def _refuse_ops(ops, path) -> None:
    refused = sorted(REFUSED_OPS[op] for op in ops if op in REFUSED_OPS)
    if refused:
        what, allowed = refused[0]
        raise NotSupported(f"{path} computes {what}: {allowed}")


ACCEPTED = (
    "TorchScript (torch.jit.save), an ExportedProgram (torch.export.save, .pt2), or a "
    "state_dict (torch.save(model.state_dict())) with --spec"
)


def load(path, spec: ModelSpec | None = None):
    """(kind, spec, canonical weights, runtime or None, notes) of a torch file."""
    errors = []
    for kind, reader in (
        ("torchscript", _torchscript),
        ("exported-program", _exported_program),
        ("state-dict", _state_dict),
    ):
        try:
            with _quiet():
                opened = reader(path)
        except _NotThisKind as exc:
            errors.append(f"{kind}: {str(exc).split('. ')[0][:70]}")  # its first sentence
            continue
        if kind == "state-dict":
            return (kind, *_from_state_dict(path, opened, spec))
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
    other sizes, say): its export is then checked against it as it runs."""
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception:
        return _program_runtime(path)
    module.eval()
    rnns, _ = _modules(module, path)
    name, first = rnns[0]
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    weight = state[_key(name, "weight_ih_l0")]
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
    }
    return runtime, about


def _program_runtime(path):
    """An ExportedProgram as it runs (load_runtime's answer for a .pt2)."""
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise NotSupported(f"{path}: neither TorchScript nor an ExportedProgram") from exc
    calls = [n for n in program.graph.nodes if n.op == "call_function"]
    rnn_calls = [n for n in calls if _aten_op(n) in OPS]
    if not rnn_calls:
        raise NotSupported(f"{path}: its graph calls no aten.lstm, aten.gru or aten.rnn_tanh")
    first = rnn_calls[0]
    _x, _hx, _weights, _biases, n_layers, _drop, _train, bi, batch_first = first.args[:9]
    (first_input, *_) = program.graph_signature.user_inputs
    x = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == first_input)
    shape = x.meta["val"].shape
    dtype = str(x.meta["val"].dtype).removeprefix("torch.")
    t_axis = 1 if batch_first else 0  # a static size is an int, a dynamic one a SymInt
    T, B = (shape[a] if isinstance(shape[a], int) else None for a in (t_axis, 1 - t_axis))
    module = program.module()
    runtime = TorchRuntime(
        str(path), "exported-program", module, bool(batch_first), T, B, x.meta["val"].dtype
    )
    about = {
        "cell": OPS[_aten_op(first)].value,
        "layers": sum(int(c.args[4]) for c in rnn_calls),
        "directions": 2 if bi else 1,
        "dtype": dtype,
        "input_size": int(shape[-1]),
        "batch_first": bool(batch_first),
    }
    return runtime, about


class _NotThisKind(Exception):
    pass


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
        raise _NotThisKind(_short(exc)) from None
    module.eval()
    rnns, linears = _modules(module, path)
    forward = _forward(module, path)
    nodes = list(_all_nodes(forward.inlined_graph))
    graph_ops = {n.kind().split("::")[-1] for n in nodes}
    args = _graph_rnn_args(nodes)
    spec, state = _spec_from_modules(module, rnns, linears, graph_ops, args, path)
    weights = from_torch_state_dict(spec, state)
    dtype = getattr(torch, spec.dtype)
    runtime = TorchRuntime(str(path), "torchscript", forward, spec.batch_first, None, None, dtype)
    if spec.head is not None and spec.head.activation == "softmax":
        spec, weights = _softmax_taken(spec, weights, runtime)
    return (
        spec,
        weights,
        runtime,
        [f"read from TorchScript modules {', '.join(n or 'its own module' for n, _ in rnns)}"],
    )


def _modules(module, path):
    """The recurrent modules and the Linear ones, in registration order; anything else that
    computes is refused by name."""
    rnns, linears = [], []
    for name, sub in module.named_modules():
        kind = getattr(sub, "original_name", type(sub).__name__)
        if not name and kind not in KINDS:  # the file's own module: a wrapper, or the RNN
            continue
        if kind in KINDS:
            rnns.append((name, sub))
        elif kind == "Linear":
            linears.append((name, sub))
        elif kind not in PASSIVE and not list(sub.children()):
            raise NotSupported(
                f"{path}: module {name!r} is a {kind}: allowed nn.RNN/LSTM/GRU, one nn.Linear "
                "head, Dropout, Identity, Softmax"
            )
    if not rnns:
        raise NotSupported(f"{path} has no nn.RNN, nn.LSTM or nn.GRU module")
    return rnns, linears


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


def _softmax_taken(spec, weights, runtime):
    """The graph calls a softmax, maybe in a branch not taken: which head the module computes
    is told by running it once and matching its head-shaped output against both heads."""
    from harness.model_file.reference import reference

    x = np.random.default_rng(0).standard_normal((3, 2, spec.input_size))
    outputs = runtime.run(x).outputs.values()
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
    _refuse_ops(graph_ops, path)
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


# ---- ExportedProgram ------------------------------------------------------------------------


def _exported_program(path):
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise _NotThisKind(_short(exc)) from None
    graph = program.graph
    params = {
        **program.graph_signature.inputs_to_parameters,
        **program.graph_signature.inputs_to_buffers,
    }
    state = {k: v.detach().cpu() for k, v in program.state_dict.items()}
    calls = [n for n in graph.nodes if n.op == "call_function"]
    ops = {_aten_op(n) for n in calls}
    _refuse_ops(ops, path)
    rnn_calls = [n for n in calls if _aten_op(n) in OPS]
    if not rnn_calls:
        raise NotSupported(f"{path}: its graph calls no aten.lstm, aten.gru or aten.rnn_tanh")
    named, layers, cell, bidirectional, batch_first = {}, 0, None, None, None
    for call in rnn_calls:
        kind = OPS[_aten_op(call)]
        _x, _hx, weights, has_biases, n_layers, _drop, _train, bi, bf = call.args[:9]
        if cell not in (None, kind) or bidirectional not in (None, bool(bi)):
            raise NotSupported(f"{path}: its recurrent ops differ: allowed one kind stacked")
        cell, bidirectional = kind, bool(bi)
        batch_first = bf if batch_first is None else batch_first
        # aten's flat parameter list: per layer, per direction, w_ih, w_hh (, b_ih, b_hh)
        tensors = iter(state[params.get(w.name, w.name)] for w in weights)
        for k in range(n_layers):
            for suffix in ("", "_reverse")[: 2 if bi else 1]:
                names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if has_biases else ())
                for kind_name in names:
                    named[f"rnn.{kind_name}_l{layers + k}{suffix}"] = next(tensors)
                if not has_biases:
                    rows = named[f"rnn.weight_hh_l{layers + k}{suffix}"].shape[0]
                    for kind_name in ("bias_ih", "bias_hh"):
                        named[f"rnn.{kind_name}_l{layers + k}{suffix}"] = torch.zeros(rows)
        layers += n_layers
    sizes = [int(named[f"rnn.weight_hh_l{k}"].shape[1]) for k in range(layers)]
    if len(set(sizes)) > 1:
        raise NotSupported(
            f"{path} stacks layers of {sizes} units: allowed one size (an export of it is "
            "checked against it as it runs: --against EXPORT)"
        )
    linears = [n for n in calls if str(n.target) in ("aten.linear.default",)]
    if len(linears) > 1:
        raise NotSupported(f"{path} calls {len(linears)} linear layers: allowed one head")
    head = None
    if linears:
        weight, bias = (linears[0].args + (None,))[1:3]
        named["head.weight"] = state[params.get(weight.name, weight.name)]
        named["head.bias"] = (
            state[params.get(bias.name, bias.name)]
            if bias is not None
            else torch.zeros(named["head.weight"].shape[0])
        )
        head = Head(
            int(named["head.weight"].shape[0]),
            "softmax" if "softmax" in ops or "_softmax" in ops else "none",
        )
    w_hh = named["rnn.weight_hh_l0"]
    dtype = {torch.float32: "float32", torch.float64: "float64"}.get(w_hh.dtype)
    spec = ModelSpec(
        cell,
        int(named["rnn.weight_ih_l0"].shape[1]),
        int(w_hh.shape[1]),
        num_layers=layers,
        bidirectional=bidirectional,
        batch_first=bool(batch_first),
        head=head,
        dtype=dtype,
    )
    weights = from_torch_state_dict(
        spec, {k: v.to(getattr(torch, dtype)) for k, v in named.items()}
    )
    T, B = _exported_sizes(program, spec.batch_first)
    runtime = TorchRuntime(str(path), "exported-program", program.module(), spec.batch_first, T, B)
    return spec, weights, runtime, ["read from the ExportedProgram's recurrent ops"]


def _aten_op(node) -> str:
    """ "lstm" for aten.lstm.input; "" for anything that is not an aten op."""
    parts = str(node.target).split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "aten" else ""


def _exported_sizes(program, batch_first: bool):
    """(T, B) the program's sequence input fixes (None where symbolic)."""
    user = program.graph_signature.user_inputs
    x = next((n for n in program.graph.nodes if n.op == "placeholder" and n.name in user), None)
    shape = getattr((x.meta or {}).get("val"), "shape", None) if x is not None else None
    if shape is None or len(shape) != 3:
        return None, None
    fixed = [int(d) if isinstance(d, int) else None for d in shape]
    return (fixed[1], fixed[0]) if batch_first else (fixed[0], fixed[1])


# ---- state_dict -----------------------------------------------------------------------------


def _state_dict(path):
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _NotThisKind(_short(exc)) from None
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise _NotThisKind("not a dict of tensors")
    return loaded


def _from_state_dict(path, state: dict, spec: ModelSpec | None):
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
    if spec.head is not None:
        renamed.update(_state_dict_head(path, state, spec, prefix))
    try:
        weights = from_torch_state_dict(
            spec, {k: v.detach().to(getattr(torch, spec.dtype)) for k, v in renamed.items()}
        )
    except (NotSupported, ValueError) as exc:
        raise NotSupported(f"{path}: the state_dict does not fit the spec: {exc}") from None
    return spec, weights, None, [f"a state_dict read with the given spec (prefix {prefix!r})"]


def _state_dict_head(path, state, spec, prefix) -> dict:
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
    return {"head.weight": state[f"{name}weight"], "head.bias": bias}


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


# ---- the file as a runtime ------------------------------------------------------------------


class TorchRuntime:
    """A TorchScript module or an ExportedProgram's module, run on the CPU in inference mode;
    its outputs (a tensor, or nested tuples of them) flattened to output_0, output_1, ..."""

    nodes = ()
    output_T = None

    def __init__(self, path: str, kind: str, module, batch_first: bool, T, B, dtype=None):
        self.path, self.kind, self.module = path, kind, module
        self.label = ntpath.basename(path)  # either separator
        self.batch_first, self.T, self.B = batch_first, T, B
        self.dtype = dtype or next((p.dtype for p in module.parameters()), torch.float32)

    def _tensor(self, x):
        x = np.ascontiguousarray(x.transpose(1, 0, 2) if self.batch_first else x)
        return torch.as_tensor(x, dtype=self.dtype)

    def run(self, x, rng=None):
        from harness.model_file.runtime import RunResult

        run, fetch = self.runner(x)
        try:
            return RunResult(fetch(run()))
        except Exception as exc:
            raise RuntimeError(f"{self.label} fails on x {list(x.shape)}: {_short(exc)}") from None

    def runner(self, x):
        xt, module = self._tensor(x), self.module

        def run():
            with torch.inference_mode():
                return module(xt)

        return run, lambda out: {f"output_{k}": v for k, v in enumerate(_flatten(out))}

    def set_threads(self, n: int) -> None:
        torch.set_num_threads(n)


def _flatten(value) -> list[np.ndarray]:
    if isinstance(value, torch.Tensor):
        return [value.detach().cpu().numpy()]
    if isinstance(value, list | tuple):
        return [a for v in value for a in _flatten(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _flatten(v)]
    return []


__all__ = ["load", "TorchRuntime", "MODULES", "CanonicalWeights"]
