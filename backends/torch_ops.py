"""What a torch graph may call, by aten op name: the recurrent ops and what cell each is, the ops
refused by name with what is allowed in their place, and every op an ExportedProgram's reading
understands (READ_OPS), each with what it does there. An op missing from READ_OPS is refused
naming it, never dropped: adding one is a line here plus its mapping in
backends/torch_exported.py."""

from __future__ import annotations

from harness.model.protocol import NotSupported
from harness.model.spec import Cell

OPS = {"lstm": Cell.LSTM, "gru": Cell.GRU, "rnn_tanh": Cell.RNN}

# An op the reference does not compute: what it is, and what is allowed in its place.
HEAD_ONLY = "allowed a softmax head or none"
REFUSED_OPS = {
    "log_softmax": ("LogSoftmax", HEAD_ONLY),
    "sigmoid": ("a sigmoid", HEAD_ONLY),
    "rnn_relu": ("nn.RNN(nonlinearity='relu')", "allowed nonlinearity='tanh'"),
    "relu": ("a ReLU", HEAD_ONLY),
}

# Every call an ExportedProgram's graph may make (as torch names its target), and its role.
READ_OPS = {
    "aten.lstm.input": "the recurrence",
    "aten.gru.input": "the recurrence",
    "aten.rnn_tanh.input": "the recurrence",
    "aten.zeros.default": "zero initial states",
    "aten.embedding.default": "the embedding (tokens looked up before the recurrence)",
    "aten.linear.default": "the head",
    "aten.softmax.int": "the head's softmax",
    "aten._softmax.default": "the head's softmax",
    "aten.sym_size.int": "a dynamic size",
    "aten.view.default": "a view",
    "aten.select.int": "a step or direction taken",
    "aten.slice.Tensor": "a slice",
    "aten.cat.default": "directions joined",
    "aten.transpose.int": "a transpose",
    "aten.clone.default": "a copy",
    "aten.dropout.default": "dropout (an identity at inference)",
    "operator.getitem": "one output of a call",
}


def aten_op(target) -> str:
    """ "lstm" for aten.lstm.input; "" for anything that is not an aten op."""
    parts = str(target).split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "aten" else ""


def refuse_ops(ops, path) -> None:
    """A graph calling an op of REFUSED_OPS (by aten name: "sigmoid") is refused saying what."""
    refused = sorted(REFUSED_OPS[op] for op in ops if op in REFUSED_OPS)
    if refused:
        what, allowed = refused[0]
        raise NotSupported(f"{path} computes {what}: {allowed}")


def refuse_unread(targets, path) -> None:
    """A graph calling what READ_OPS does not list is refused naming it and what is allowed."""
    unread = sorted(set(targets) - set(READ_OPS))
    if unread:
        raise NotSupported(
            f"{path}: its graph calls {unread[0]}, which this reader does not map: allowed "
            f"{', '.join(READ_OPS)}"
        )
