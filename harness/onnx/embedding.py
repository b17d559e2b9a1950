"""An embedding before an ONNX file's first recurrent node: a Gather of integer tokens from a
stored [V, I] table (torch.onnx writes nn.Embedding so; tf2onnx writes Keras's Embedding with
some index arithmetic first, turning a negative index into one from the end). The tokens come
from one integer graph input, time-major, or batch-major where a [1, 0] / [1, 0, 2] Transpose
lies on the way."""

from __future__ import annotations

import dataclasses

import numpy as np

from harness.onnx.graph import GraphIndex, attributes

PASS_THROUGH = ("Identity", "Cast", "Dropout")
# elementwise ops an exporter puts on the indices (negative ones counted from the end)
INDEX_OPS = (
    "Identity", "Cast", "Add", "Sub", "Mul", "Less", "Greater", "Not", "Equal", "Where",
    "Mod", "Abs", "Min", "Max", "Clip", "And", "Or", "GreaterOrEqual", "LessOrEqual",
)  # fmt: skip
INTEGER = (6, 7)  # int32, int64


@dataclasses.dataclass(frozen=True)
class Embedding:
    tokens: str  # the graph input of integer tokens
    table: str  # the stored [V, I] value the Gather looks tokens up in
    swapped: bool  # a Transpose swaps the tokens' two axes on the way


def find(model, index: GraphIndex, gather, stored: set[str]) -> Embedding | None:
    """The embedding `gather` (a Gather node) is, or None when it is not one: axis 0 of a
    stored table, its indices computed from one integer graph input by INDEX_OPS (and stored
    values) alone, through Transposes of the two axes at most."""
    if gather.op_type != "Gather" or len(gather.input) < 2:
        return None
    if attributes(gather).get("axis", 0) != 0 or gather.input[0] not in stored:
        return None
    name, swapped = gather.input[1], False
    while True:
        name, producer = index.through(name, PASS_THROUGH)
        perm = list(attributes(producer).get("perm", [])) if producer is not None else []
        if producer is not None and producer.op_type == "Transpose" and perm == [1, 0]:
            swapped, name = not swapped, producer.input[0]
            continue
        break
    inputs = {i.name: i for i in model.graph.input if i.name not in stored}
    nodes, leaves = index.upstream(name, stored)
    sources = [leaf for leaf in leaves if leaf in inputs]
    if len(sources) != 1 or any(n.op_type not in INDEX_OPS for n in nodes):
        return None
    if not leaves <= stored | set(sources):
        return None
    value = inputs[sources[0]]
    if (
        value.type.tensor_type.elem_type not in INTEGER
        or len(value.type.tensor_type.shape.dim) != 2
    ):
        return None
    return Embedding(sources[0], gather.input[0], swapped)


def table_of(values, embedding: Embedding) -> np.ndarray:
    """The table, checked 2-D floating point."""
    from harness.model.protocol import NotSupported

    table = np.asarray(values.get(embedding.table, f"the embedding table {embedding.table!r}"))
    if table.ndim != 2 or table.dtype.kind != "f":
        raise NotSupported(
            f"the embedding table {embedding.table!r} is {table.dtype} {list(table.shape)}: "
            "allowed a floating-point [V, I]"
        )
    return table
