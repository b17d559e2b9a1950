"""Every size an ONNX file declares or implies, held to the memory budget
(harness/files/limits.py) before anything of that size is allocated:

- what it stores: initializers, sparse initializers and tensor attributes (Constant's value,
  ConstantOfShape's, ...) in the main graph, in Loop/Scan/If bodies and in local functions,
  from their dims and element size; data that disagrees with its dims is corrupt; data kept
  outside the file is refused, but for initializers in a file beside it, which
  harness/onnx/external.py brings in first, checked: a model file never makes rnnbench read
  outside its own folder;
- its graph inputs and outputs at the sizes a check runs (a dynamic axis counts as RUN_DIM);
- what its nodes compute, where shape inference with data propagation tells the size:
  `bound_session` before ONNX Runtime opens the file (ORT folds every node computable from
  stored values at session creation, used or not), `bound_nodes` before the reader folds the
  nodes its weights need.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from harness.files import limits
from harness.files.limits import Refused

RUN_DIM = 16  # a dynamic axis at the sizes a check runs it (check.SIZES stays below it)
SMALL = 4096  # elements: stored values this small are kept for data propagation
PACKED_BITS = {21: 4, 22: 4, 23: 4, 25: 2, 26: 2, 27: 6, 28: 6}  # UINT4 ... FLOAT6E3M2
COMPLEX = (14, 15)
STRING = 8
EXTERNAL = 1  # TensorProto.EXTERNAL
UNFOLDED = (
    "Loop",
    "Scan",
    "If",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
)


def dtype_name(data_type: int) -> str:
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(data_type).lower()
    except ValueError:
        return f"element type {data_type}"


def element_bits(data_type: int) -> int:
    """Bits per element; a type ONNX does not define is corrupt."""
    from onnx import helper

    if data_type in PACKED_BITS:
        return PACKED_BITS[data_type]
    if data_type == STRING:
        return 64  # an object pointer each; the strings' own bytes are in the file
    try:
        return 8 * helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except Exception:
        raise Refused(f"{dtype_name(data_type)}: not an ONNX element type (corrupt file)") from None


def nbytes(dims, data_type: int) -> int:
    """The bytes `dims` of `data_type` take; a negative dimension is never small."""
    if any(int(d) < 0 for d in dims):
        return 2**63
    return math.ceil(math.prod(int(d) for d in dims) * element_bits(data_type) / 8)


def describe(kind: str, name: str | None, dims, data_type: int, where: str) -> str:
    """e.g. "initializer 'W' of model.onnx [1, 16, 3] float" (no name: "value of Constant
    node 'c' of model.onnx [...] float")."""
    named = f"{kind} {name!r}" if name is not None else kind
    return f"{named} of {where} {[int(d) for d in dims]} {dtype_name(data_type)}"


def check_tensor(tensor, what: str) -> int:
    """Refused when `tensor` keeps its data outside the file, declares more than the budget,
    or holds other than its dims say; its declared bytes otherwise."""
    if tensor.data_location == EXTERNAL or len(tensor.external_data):
        where = next((e.value for e in tensor.external_data if e.key == "location"), "?")
        raise Refused(
            f"{what} keeps its data outside the file (external data at {where!r}): allowed "
            "tensors stored in the file, or initializers in a file beside it named without a "
            "folder (a model file must not make rnnbench read other paths)"
        )
    if tensor.HasField("segment"):
        raise Refused(f"{what} is a segment of a tensor: allowed whole tensors")
    try:
        size = nbytes(tensor.dims, tensor.data_type)
    except Refused as exc:
        raise Refused(f"{what}: {exc}") from None
    limits.require(size, what)
    held, wanted, unit = _held(tensor, size)
    if held != wanted:
        raise Refused(
            f"{what} holds {held} {unit} where its dims say {wanted}: the file is corrupt"
        )
    return size


def _held(tensor, size: int) -> tuple[int, int, str]:
    """(what the tensor holds, what its dims want, of what)."""
    from onnx import helper

    if tensor.HasField("raw_data") and tensor.data_type != STRING:
        return len(tensor.raw_data), size, "bytes of raw data"
    count = math.prod(tensor.dims)
    field = getattr(tensor, helper.tensor_dtype_to_field(tensor.data_type))
    if tensor.data_type in PACKED_BITS:  # packed in several ways: data or none
        return min(len(field), 1), min(count, 1), "values"
    return len(field), count * (2 if tensor.data_type in COMPLEX else 1), "values"


def graphs(model) -> Iterator[tuple[Any, str]]:  # (an onnx GraphProto or FunctionProto, where)
    """The main graph, every Loop/Scan/If body (nested too) and every local function, each
    with where it is, for messages ("" for the main graph)."""
    todo = [(model.graph, "")]
    todo += [(f, f" in function {f.name!r}") for f in model.functions]
    while todo:
        graph, where = todo.pop()
        yield graph, where
        for node in graph.node:
            for attr in node.attribute:
                inside = f" in the {attr.name} of {node_label(node)}{where}"
                if attr.HasField("g"):
                    todo.append((attr.g, inside))
                todo += [(g, inside) for g in attr.graphs]


def node_label(node) -> str:
    """e.g. "ConstantOfShape node 'bomb'" (its first output where it has no name)."""
    return f"{node.op_type} node {node.name or (node.output[0] if node.output else '')!r}"


def stored(model, label: str) -> Iterator[tuple[Any, str, bool]]:  # (a TensorProto, ...)
    """Every tensor the file stores: (it, its description for messages, whether sparse)."""
    for graph, where in graphs(model):
        of = f"{label}{where}"
        for tensor in getattr(graph, "initializer", ()):
            kind = "initializer"
            yield tensor, describe(kind, tensor.name, tensor.dims, tensor.data_type, of), False
        for sparse in getattr(graph, "sparse_initializer", ()):
            what = describe(
                "sparse initializer", sparse.values.name, sparse.dims, sparse.values.data_type, of
            )
            yield sparse, what, True
        for node in graph.node:
            for attr in node.attribute:
                kind = f"{attr.name} of {node_label(node)}"
                tensors = ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
                for t in tensors:
                    yield t, describe(kind, None, t.dims, t.data_type, of), False
                sparse = ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(
                    attr.sparse_tensors
                )
                for s in sparse:
                    yield s, describe(kind, None, s.dims, s.values.data_type, of), True


def check_stored(model, label: str) -> None:
    """Every stored tensor within the budget, holding what its dims say, inside the file;
    and all of them together within the budget."""
    total = 0
    for tensor, what, sparse in stored(model, label):
        if sparse:  # its parts, and the dense tensor it stands for
            check_tensor(tensor.values, f"the values of {what}")
            check_tensor(tensor.indices, f"the indices of {what}")
            dense = nbytes(tensor.dims, tensor.values.data_type)
            limits.require(dense, what)
            total += dense
        else:
            total += check_tensor(tensor, what)
    for graph, where in graphs(model):  # Constant's value_floats, value_ints, value_strings
        for node in graph.node:
            for attr in node.attribute if node.op_type == "Constant" else ():
                count = len(attr.floats) + len(attr.ints) + len(attr.strings)
                what = f"{attr.name} of {node_label(node)} of {label}{where} [{count}]"
                limits.require(8 * count, what)
                total += 8 * count
    limits.require(total, f"the tensors {label} stores, together")


def check_io(model, label: str) -> None:
    """The graph inputs (the stored ones aside) at the sizes a check feeds them, and the
    outputs' static axes (a T an output fixes is a size the check runs at), in float64."""
    stored_names = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in stored_names]
    for value in inputs:
        _check_value("graph input", value, label, RUN_DIM, f"a dynamic axis as {RUN_DIM}")
    for value in model.graph.output:
        _check_value("graph output", value, label, 1, "its static axes")


def _check_value(kind: str, value, label: str, dynamic: int, how: str) -> None:
    from harness.onnx.graph import declared_dims

    if not value.type.HasField("tensor_type"):
        return
    declared = declared_dims(value)
    shown = [d if d is not None else "?" for d in declared]
    limits.require(
        8 * math.prod(dynamic if d is None else d for d in declared),
        f"{kind} {value.name!r} of {label} {shown} "
        f"{dtype_name(value.type.tensor_type.elem_type)} (at the sizes a check runs it: {how}, "
        "in float64)",
    )


def bound_session(model, label: str) -> None:
    """Before ONNX Runtime opens `model` (a ModelProto): every value its nodes compute whose
    size shape inference tells, within the budget; those computable from stored values alone
    (which ORT computes at session creation, used or not) within it together, and refused
    where their size cannot be told."""
    nodes = list(model.graph.node)
    tensors = {t.name: t for t in model.graph.initializer}
    constant = set(tensors) | {s.values.name for s in model.graph.sparse_initializer}
    sizes = _inferred(model, nodes, tensors, list(model.graph.input), model.graph.output, label)
    total = 0
    for node in nodes:
        folded = node.op_type == "Constant" or (
            node.op_type not in UNFOLDED
            and any(node.input)
            and all(not i or i in constant for i in node.input)
            and not any(a.HasField("g") or len(a.graphs) for a in node.attribute)
        )
        for out in (o for o in node.output if o):
            size = _bound(out, node, sizes, label)
            if folded:
                if size is None:
                    raise Refused(
                        f"{_made_by(out, node, label)} is computed from stored values alone, "
                        "and shape inference cannot tell its size: ONNX Runtime would compute "
                        "it as it opens the file; refused before that"
                    )
                constant.add(out)
                total += size
    for graph, where in graphs(model):  # Loop/Scan/If bodies: each size inference tells
        for node in graph.node if where.startswith(" in the ") else ():
            for out in (o for o in node.output if o):
                _bound(out, node, sizes, f"{label}{where}")
    limits.require(total, f"the values ONNX Runtime computes from what {label} stores, together")


def bound_nodes(nodes, tensors: dict, given: dict, opset, label: str) -> tuple[int, str]:
    """Before `nodes` are evaluated on stored `tensors` (name -> TensorProto) and `given`
    arrays: each output's size from shape inference, within the budget, and all of them
    together. (total bytes, "") or (0, why the size of an output cannot be told)."""
    from onnx import helper, numpy_helper

    tensors = dict(tensors)
    inputs = []
    for name, value in given.items():
        if value.size <= SMALL:
            tensors[name] = numpy_helper.from_array(value, name)
        else:
            dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
            inputs.append(helper.make_tensor_value_info(name, dtype, list(value.shape)))
    outputs = [o for n in nodes for o in n.output if o]
    sizes = _inferred(None, nodes, tensors, inputs, outputs, label, opset)
    total = 0
    for node in nodes:
        for out in (o for o in node.output if o):
            size = _bound(out, node, sizes, label)
            if size is None:
                return 0, f"{_made_by(out, node, label)}, whose size cannot be told before it is"
            total += size
    limits.require(total, f"the values folded from what {label} stores, together")
    return total, ""


def named(tensor, name: str):
    """`tensor` under `name` (a Constant's tensor may carry another name, or none)."""
    if tensor.name == name:
        return tensor
    from onnx import TensorProto

    copy = TensorProto()
    copy.CopyFrom(tensor)
    copy.name = name
    return copy


def _made_by(out: str, node, label: str) -> str:
    return f"{out!r}, computed by {node_label(node)} of {label}"


def _bound(out: str, node, sizes: dict, label: str) -> int | None:
    """The bytes of `out` as inferred, within the budget; None when inference cannot tell."""
    shape, elem = sizes.get(out, (None, 0))
    if shape is None or not elem:
        return None
    size = nbytes(shape, elem)
    limits.require(size, f"{_made_by(out, node, label)} {shape} {dtype_name(elem)}")
    return size


def _inferred(model, nodes, tensors: dict, inputs, outputs, label: str, opset=None) -> dict:
    """Shape inference with data propagation over `nodes` alone: name -> (static shape or
    None, element type). Stored values small enough to be shapes are given to it as they are,
    the others as their declared type and dims; the file's own value_info is not used (it
    could understate a size)."""
    import onnx
    from onnx import helper

    graph = onnx.GraphProto(name="bound")
    names = set()
    for value in inputs:
        if value.name not in names:
            graph.input.append(value)
            names.add(value.name)
    for name, tensor in tensors.items():
        if math.prod(tensor.dims) <= SMALL:
            graph.initializer.append(named(tensor, name))
        elif name not in names:
            graph.input.append(
                helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims))
            )
            names.add(name)
    graph.node.extend(nodes)
    graph.output.extend(onnx.ValueInfoProto(name=getattr(o, "name", o)) for o in outputs)
    imports = model.opset_import if model is not None else opset
    skeleton = helper.make_model(graph, opset_imports=imports)
    if model is not None:
        skeleton.ir_version = max(model.ir_version, 4)
        skeleton.functions.extend(model.functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=True)
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise Refused(
            f"{label}: shape inference fails on its graph ({message}): the sizes its nodes "
            "compute cannot be bounded before they are computed"
        ) from None
    sizes = {}
    for graph_, _ in graphs(inferred):
        for value in list(getattr(graph_, "value_info", ())) + list(getattr(graph_, "output", ())):
            tensor = value.type.tensor_type
            dims = tensor.shape.dim if tensor.HasField("shape") else None
            static = dims is not None and all(d.HasField("dim_value") for d in dims)
            shape = [d.dim_value for d in dims] if static and dims is not None else None
            sizes[value.name] = (shape, tensor.elem_type)
    return sizes
