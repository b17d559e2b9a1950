"""Every floating-point tensor an ONNX file stores, wherever it sits: initializers and Constant
nodes of the main graph and of every subgraph (Loop, Scan and If bodies, recursively). What
harness/model_file/weight_match.py searches for a source model's weights: an exporter that
writes the recurrence as a Loop still stores the weights plainly (tf2onnx:
`.../ReadVariableOp/resource:0`), maybe inside the body.

Integer and boolean tensors (shapes, indices, counters) and scalars are left out: they are no
model's weights. Sizes are checked against the memory budget before any array is made."""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.files import limits
from harness.model.protocol import NotSupported

FLOAT_TYPES = {1: 4, 10: 2, 11: 8, 16: 2}  # ONNX float, float16, double, bfloat16: item bytes


@dataclasses.dataclass(frozen=True)
class StoredTensor:
    name: str  # as the file names it, with the subgraph it sits in ("in the Loop body of ...")
    values: np.ndarray


def stored_tensors(model, path="the file") -> list[StoredTensor]:
    """The file's stored floating-point tensors of rank 1 or more that some node reads."""
    protos = list(_protos(model.graph, ""))
    total = sum(limits.elements_bytes(t.dims, FLOAT_TYPES[t.data_type]) for _, t in protos)
    limits.require(total, f"the floating-point tensors of {path} ({len(protos)} of them)")
    return [StoredTensor(name, _array(t, name, path)) for name, t in protos]


def _protos(graph, where: str):
    """(shown name, TensorProto) of each float tensor the graph (and its subgraphs) stores."""
    from onnx import AttributeProto, helper

    read = _names_read(graph)
    for tensor in graph.initializer:
        if tensor.name in read and _wanted(tensor):
            yield tensor.name + where, tensor
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and _wanted(attribute.t):
                    yield node.output[0] + where, attribute.t
                elif attribute.name == "value_floats" and len(attribute.floats) > 1:
                    values = np.asarray(attribute.floats, np.float32)
                    yield (
                        node.output[0] + where,
                        helper.make_tensor(node.output[0], 1, [values.size], values),
                    )
        for attribute in node.attribute:
            inside = (
                f" (in the {node.op_type} {attribute.name} of node {node.name or node.output[0]!r})"
            )
            if attribute.type == AttributeProto.GRAPH:
                yield from _protos(attribute.g, inside)
            elif attribute.type == AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from _protos(sub, inside)


def _wanted(tensor) -> bool:
    return tensor.data_type in FLOAT_TYPES and len(tensor.dims) >= 1 and 0 not in tensor.dims


def _names_read(graph) -> set[str]:
    """Every value name a node of the graph or of a subgraph reads (a body reads the outer
    graph's initializers by name), and the graph's outputs."""
    from onnx import AttributeProto

    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.type == AttributeProto.GRAPH else []
            if attribute.type == AttributeProto.GRAPHS:
                subgraphs = list(attribute.graphs)
            for sub in subgraphs:
                names |= _names_read(sub)
    return names


def _array(tensor, name: str, path) -> np.ndarray:
    from onnx import numpy_helper

    try:
        return np.asarray(numpy_helper.to_array(tensor))
    except (ValueError, TypeError) as exc:  # data that does not fill its declared dims
        raise NotSupported(
            f"{path}: tensor {name!r} {list(tensor.dims)} does not hold what its dims declare "
            f"({str(exc).splitlines()[0][:120]}): allowed a well-formed ONNX file"
        ) from None
