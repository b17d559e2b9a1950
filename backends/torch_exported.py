"""A torch ExportedProgram (.pt2, torch.export.save) read into a spec and canonical weights, and
run as it is, without torch.export.load (which unpickles what the file holds and runs its code):
the archive is opened member by member (backends/pt2_archive.py), its serialized program checked
and rebuilt by torch's deserializer on a clean copy (backends/pt2_program.py).

Every call of the graph is accounted for: an op that backends/torch_ops.py's READ_OPS does not
list is refused naming it, before anything is rebuilt, never dropped. The recurrence is what the
recurrent ops' arguments say (cell, layers, bidirectional, batch_first) with the weights they
take, the head is one aten.linear on its result (a softmax where the graph takes one), and the
initial states are zeros (aten.zeros), as the reference's are."""

from __future__ import annotations

import torch

from backends.pt2_archive import Pt2Archive
from backends.pt2_program import checked_program, rebuild
from backends.torch_model import from_torch_state_dict
from backends.torch_ops import OPS, aten_op, refuse_ops, refuse_unread
from backends.torch_runtime import TorchRuntime, short
from harness.model.front_end import PLAIN, FrontEnd
from harness.model.protocol import NotSupported
from harness.model.spec import Head, ModelSpec


def open_program(path):
    """The file's ExportedProgram, rebuilt once every member it needs and every op it calls
    is checked. NotAnArchive where the file is no .pt2."""
    with Pt2Archive(path) as archive:
        clean, targets = checked_program(archive.json(f"models/{archive.model}.json"), str(path))
        weights, constants = archive.tensors("weights"), archive.tensors("constants")
    refuse_ops({aten_op(t) for t in targets}, path)
    refuse_unread(targets, path)
    try:
        return rebuild(clean, weights, constants)
    except Exception as exc:
        raise NotSupported(f"{path}: torch cannot rebuild its program ({short(exc)})") from None


def read(path):
    """(spec, canonical weights, runtime, notes) of an ExportedProgram the reference computes."""
    program = open_program(path)
    graph = program.graph
    stored = _stored(program, path)
    calls = [n for n in graph.nodes if n.op == "call_function"]
    ops = {aten_op(n.target) for n in calls}
    rnn_calls = [n for n in calls if aten_op(n.target) in OPS]
    if not rnn_calls:
        raise NotSupported(f"{path}: its graph calls no aten.lstm, aten.gru or aten.rnn_tanh")
    _require_zero_states(rnn_calls, path)
    named, layers, cell, bidirectional, batch_first = {}, 0, None, None, None
    for call in rnn_calls:
        kind = OPS[aten_op(call.target)]
        _x, _hx, weights, has_biases, n_layers, _drop, _train, bi, bf = call.args[:9]
        if cell not in (None, kind) or bidirectional not in (None, bool(bi)):
            raise NotSupported(f"{path}: its recurrent ops differ: allowed one kind stacked")
        cell, bidirectional = kind, bool(bi)
        batch_first = bf if batch_first is None else batch_first
        # aten's flat parameter list: per layer, per direction, w_ih, w_hh (, b_ih, b_hh)
        per_direction = 4 if has_biases else 2
        if len(weights) != n_layers * (2 if bi else 1) * per_direction:
            raise NotSupported(
                f"{path}: its {call.target} takes {len(weights)} weights for {n_layers} layers"
            )
        tensors = iter([stored(w, call) for w in weights])
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
    front = _embedding(calls, rnn_calls[0], stored, path)
    head = _head(calls, ops, stored, named, path)
    w_hh = named["rnn.weight_hh_l0"]
    dtype = {torch.float32: "float32", torch.float64: "float64"}.get(w_hh.dtype)
    if dtype is None:
        raise NotSupported(f"{path}: weights of dtype {w_hh.dtype}: allowed float32, float64")
    if cell is None or bidirectional is None:
        raise NotSupported(f"{path}: no recurrent op to read")
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
    module = _module(program, path)
    runtime = TorchRuntime(str(path), "exported-program", module, spec.batch_first, T, B)
    notes = ["read from the ExportedProgram's recurrent ops"]
    if front.tokens:
        notes.append("tokens looked up by its aten.embedding before the recurrence")
    return spec, weights, runtime, notes, front


def _embedding(calls, first_rnn, stored, path) -> FrontEnd:
    """One aten.embedding of the program's input, feeding the first recurrent op: its table;
    PLAIN where the graph has none."""
    lookups = [n for n in calls if str(n.target) == "aten.embedding.default"]
    if not lookups:
        return PLAIN
    if len(lookups) > 1:
        raise NotSupported(f"{path} calls {len(lookups)} embeddings: allowed one, first")
    lookup = lookups[0]
    if lookup not in _ancestors(first_rnn.args[0]):
        raise NotSupported(
            f"{path}: its aten.embedding does not feed the first recurrent op: allowed an "
            "embedding of the input, then the recurrence"
        )
    indices = lookup.args[1]
    if getattr(indices, "op", None) != "placeholder":
        raise NotSupported(
            f"{path}: its aten.embedding looks up {getattr(indices, 'name', indices)}, not the "
            "program's input: allowed the input's tokens"
        )
    table = stored(lookup.args[0], lookup).numpy()
    return FrontEnd(table, layers=(str(getattr(lookup.args[0], "name", "embedding")),))


def _ancestors(node) -> set:
    """Every fx node `node` is computed from, itself included."""
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        if current in seen or not hasattr(current, "all_input_nodes"):
            continue
        seen.add(current)
        todo += list(current.all_input_nodes)
    return seen


def _stored(program, path):
    """stored(node, call): the tensor a parameter, buffer or constant input of the graph holds;
    a weight computed in the graph is refused naming where it comes from."""
    signature = program.graph_signature
    names = {
        **signature.inputs_to_parameters,
        **signature.inputs_to_buffers,
        **signature.inputs_to_lifted_tensor_constants,
    }
    tensors = {**program.state_dict, **program.constants}

    def stored(node, call):
        name = names.get(getattr(node, "name", None))
        if name not in tensors or not isinstance(tensors[name], torch.Tensor):
            source = f"{node.op} {node.name}" if hasattr(node, "op") else repr(node)
            raise NotSupported(
                f"{path}: a weight of its {call.target} comes from {source}: allowed "
                "parameters, buffers or constants of the program"
            )
        return tensors[name].detach().cpu()

    return stored


def _module(program, path):
    """The program as a module that runs (torch writes and compiles its forward from the checked
    graph: identifiers, aten ops and constants only)."""
    try:
        return program.module()
    except Exception as exc:
        problem = short(exc)
        raise NotSupported(f"{path}: torch cannot make its program a module ({problem})") from None


def _require_zero_states(rnn_calls, path) -> None:
    """The reference starts from zero states: a learned or given one is refused, not ignored."""
    for call in rnn_calls:
        hx = call.args[1]
        for state in hx if isinstance(hx, list | tuple) else [hx]:
            if getattr(state, "op", None) == "call_function":
                source = str(state.target)
            else:  # a parameter, a buffer or an input of the program
                source = f"{getattr(state, 'op', 'value')} {getattr(state, 'name', state)}"
            if source != "aten.zeros.default":
                raise NotSupported(
                    f"{path}: the initial state of its {call.target} comes from {source}: "
                    "allowed zeros (aten.zeros), where the reference starts"
                )


def _head(calls, ops, stored, named, path) -> Head | None:
    """One aten.linear is the head (its weights put in `named`), softmax where the graph
    takes one."""
    linears = [n for n in calls if str(n.target) == "aten.linear.default"]
    if len(linears) > 1:
        raise NotSupported(f"{path} calls {len(linears)} linear layers: allowed one head")
    if not linears:
        return None
    weight, bias = (linears[0].args + (None,))[1:3]
    named["head.weight"] = stored(weight, linears[0])
    named["head.bias"] = (
        stored(bias, linears[0]) if bias is not None else torch.zeros(named["head.weight"].shape[0])
    )
    softmax = "softmax" in ops or "_softmax" in ops
    return Head(int(named["head.weight"].shape[0]), "softmax" if softmax else "none")


def runtime(path):
    """An ExportedProgram as it runs, and what it is (cell, layers, directions, dtype, input
    size, batch_first): backends/torch_file.py's load_runtime for a .pt2."""
    program = open_program(path)
    calls = [n for n in program.graph.nodes if n.op == "call_function"]
    rnn_calls = [n for n in calls if aten_op(n.target) in OPS]
    if not rnn_calls:
        raise NotSupported(f"{path}: its graph calls no aten.lstm, aten.gru or aten.rnn_tanh")
    first = rnn_calls[0]
    _x, _hx, _weights, _biases, _n_layers, _drop, _train, bi, batch_first = first.args[:9]
    x = _sequence_input(program, path)
    shape = x.shape
    t_axis = 1 if batch_first else 0  # a static size is an int, a dynamic one a SymInt
    T, B = (shape[a] if isinstance(shape[a], int) else None for a in (t_axis, 1 - t_axis))
    module = _module(program, path)
    front = _embedding(calls, first, _stored(program, path), path)
    weight = first.args[2][0].meta.get("val") if first.args[2] else None
    dtype = weight.dtype if front.tokens and weight is not None else x.dtype
    runtime = TorchRuntime(str(path), "exported-program", module, bool(batch_first), T, B, dtype)
    about = {
        "cell": OPS[aten_op(first.target)].value,
        "layers": sum(int(c.args[4]) for c in rnn_calls),
        "directions": 2 if bi else 1,
        "dtype": str(dtype).removeprefix("torch."),
        "input_size": int(front.table.shape[1]) if front.table is not None else int(shape[-1]),
        "batch_first": bool(batch_first),
        "front": front,
    }
    return runtime, about


def _sequence_input(program, path):
    """The (fake) tensor the program's one input is: a sequence [T, B, I] or [B, T, I], or
    integer tokens [T, B] or [B, T]."""
    user = program.graph_signature.user_inputs
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
    value = inputs[0].meta.get("val") if len(inputs) == 1 else None
    rank = len(getattr(value, "shape", ()))
    if value is None or (rank != 3 and not (rank == 2 and not value.dtype.is_floating_point)):
        raise NotSupported(
            f"{path}: its program takes {len(inputs)} input(s), not one sequence: allowed "
            "one [T, B, I] or [B, T, I] tensor, or integer tokens [T, B] or [B, T]"
        )
    return value


def _exported_sizes(program, batch_first: bool):
    """(T, B) the program's sequence input fixes (None where symbolic)."""
    user = program.graph_signature.user_inputs
    x = next((n for n in program.graph.nodes if n.op == "placeholder" and n.name in user), None)
    shape = getattr((x.meta or {}).get("val"), "shape", None) if x is not None else None
    if shape is None or len(shape) not in (2, 3):  # tokens, or a sequence
        return None, None
    fixed = [int(d) if isinstance(d, int) else None for d in shape]
    return (fixed[1], fixed[0]) if batch_first else (fixed[0], fixed[1])
