"""What an exported ONNX model is, structurally: which ops, whether the recurrence is a native
RNN/LSTM/GRU node, a Loop/Scan or unrolled into per-step nodes, and whether T stayed dynamic."""

from __future__ import annotations

import collections
import json
import os

from harness.json_values import JsonObject

RECURRENT_OPS = ("RNN", "LSTM", "GRU")
LOOP_OPS = ("Loop", "Scan")


def _all_nodes(graph):
    """Every node, those inside Loop/Scan/If bodies included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g and attr.g.node:
                yield from _all_nodes(attr.g)


def audit(path, exporter: str | None = None, export_seconds: float | None = None) -> dict:
    import onnx

    model = onnx.load(str(path))
    row: JsonObject = {
        "exporter": exporter,
        "file": os.path.basename(str(path)),
        "file_bytes": os.path.getsize(path),
        "export_seconds": export_seconds,
    }
    try:
        onnx.checker.check_model(model, full_check=True)
        row["checker"] = "ok"
    except Exception as exc:  # the audit reports a broken model rather than stopping
        row["checker"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    top = collections.Counter(n.op_type for n in model.graph.node)
    nested = collections.Counter(n.op_type for n in _all_nodes(model.graph))
    row["op_counts"] = dict(sorted(top.items()))
    row["node_count"] = sum(top.values())
    row["native_recurrent_nodes"] = sum(top[op] for op in RECURRENT_OPS)
    row["recurrent_ops"] = [op for op in RECURRENT_OPS if top[op]]  # native RNN/LSTM/GRU
    row["loop_ops"] = [op for op in LOOP_OPS if top[op]]
    if row["recurrent_ops"]:
        row["form"] = "native " + "+".join(row["recurrent_ops"])
    elif row["loop_ops"]:
        row["form"] = "+".join(row["loop_ops"])
    else:
        row["form"] = "unrolled"
    row["nested_op_counts"] = dict(sorted((nested - top).items()))
    row["gru_linear_before_reset"] = [
        next((a.i for a in n.attribute if a.name == "linear_before_reset"), 0)
        for n in model.graph.node
        if n.op_type == "GRU"
    ]
    row["static_T"] = static_time_steps(model)
    row["T"] = "dynamic" if row["static_T"] is None else f"static ({row['static_T']})"
    return row


def static_time_steps(model) -> int | None:
    """The sequence length baked into the graph's x input or y output, or None when T is
    symbolic in both (the dynamo exporter was seen to keep x dynamic but reshape y to T=5)."""
    props = {p.key: p.value for p in model.metadata_props}
    layout = json.loads(props.get("rnnbench.io", "{}")).get("x_layout", "time_major")
    axis = 1 if layout == "batch_major" else 0
    ends = [v for v in list(model.graph.input) + list(model.graph.output) if v.name in ("x", "y")]
    for value in ends or model.graph.input[:1]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) > axis and dims[axis].HasField("dim_value"):
            return int(dims[axis].dim_value)
    return None
