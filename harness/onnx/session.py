"""The one way rnnbench opens and runs an ONNX Runtime session, for the ORT backends and for a
user's file alike: the provider asked for (a silent fallback is refused), its threads and graph
optimisation, optionally extra outputs (intermediate values), and ORT's errors as one line.

ONNX Runtime's known kernel gaps (no float64 RNN/LSTM/GRU, no RNN at opset 22, no layout=1
recurrent node) are `KernelGap`s: a skip with ORT's reason. Anything else that stops a session
(a malformed graph, a wrong input) is an `OrtError`, a failure.
"""

from __future__ import annotations

import re
from typing import NoReturn

from harness.model.protocol import NotSupported

ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_GAP = re.compile(
    r"NOT_IMPLEMENTED.*Could not find an implementation for (RNN|LSTM|GRU)\(\d+\)"
    r"|(RNN|LSTM|GRU) operator does not support double"
    r"|[Bb]atchwise recurrent operations \(layout == 1\) are not supported",
    re.S,
)


class OrtError(RuntimeError):
    """ONNX Runtime refused to load or run a model; the message is one line."""


class KernelGap(NotSupported):
    """ONNX Runtime has no kernel for this recurrent node (a skip, with ORT's words)."""


def first_line(exc: BaseException) -> str:
    """ORT's message without its error-code prefix and source location."""
    text = str(exc).split("Status Message: ")[-1].strip()
    text = (text.splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"/onnxruntime_src/\S+ .*? was false\. ", "", text)
    return text[:300]


def is_kernel_gap(exc: BaseException) -> bool:
    return _GAP.search(str(exc)) is not None


def open_session(
    model,
    provider: str = "cpu",
    threads: int | None = None,
    optimization: str | None = None,
    extra_outputs=(),
    what: str = "the model",
):
    """An InferenceSession on `model` (a path or a ModelProto) on this provider. extra_outputs:
    intermediate values to return after the graph's own outputs. Every size the graph computes
    that shape inference tells is held to the memory budget first: ORT computes the nodes it
    can from stored values as it opens a session, used or not (harness/onnx/sizes.py)."""
    import onnx
    import onnxruntime as ort

    from harness.onnx.sizes import bound_session

    proto = (
        model
        if isinstance(model, onnx.ModelProto)
        else onnx.load(str(model), load_external_data=False)
    )
    bound_session(proto, what)
    if extra_outputs:
        model = onnx.ModelProto.FromString(proto.SerializeToString())
        model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in extra_outputs)
    options = ort.SessionOptions()
    options.log_severity_level = 4  # its errors come back as one line, not as log spew
    if optimization:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, optimization)
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one graph at a time: the sequential execution set below
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    try:
        session = ort.InferenceSession(source, options, providers=[ORT_PROVIDERS[provider]])
    except Exception as exc:
        _raise(exc, f"onnxruntime cannot load {what}")
    used = session.get_providers()[0]
    if used != ORT_PROVIDERS[provider]:
        raise NotSupported(f"onnxruntime fell back to {used} instead of {ORT_PROVIDERS[provider]}")
    return session


def run_session(session, feed: dict, what: str = "the model") -> list:
    """session.run(None, feed), its failure one line naming the feed's shapes."""
    try:
        return session.run(None, feed)
    except Exception as exc:
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feed.items())
        _raise(exc, f"onnxruntime cannot run {what} on {shapes}")


def _raise(exc: BaseException, prefix: str) -> NoReturn:
    if is_kernel_gap(exc):
        raise KernelGap(f"{prefix}: no kernel for it: {first_line(exc)}") from None
    raise OrtError(f"{prefix}: {first_line(exc)}") from None
