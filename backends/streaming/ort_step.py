"""The ONNX Runtime step: a one-step graph written from the canonical weights by the direct
builder (backends/onnx_direct.py: native RNN/LSTM/GRU nodes, T fixed at 1 here, the state as
inputs h0 (, c0) and outputs h_n (, c_n)), run through I/O binding: the state a call returns
stays an OrtValue in the provider's memory (the GPU's, for CUDA) and is bound as the next
call's input as it is, never copied out and back; only x_t goes in and y_t (and the head's
output) come out as NumPy arrays."""

from __future__ import annotations

import numpy as np

from backends.streaming.base import StepRunner, check_streamable
from harness.model.spec import Cell

DEVICE = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "cuda"}


def step_graph(spec, weights):
    """The direct builder's graph with T fixed at 1 (x [1, B, I], y [1, B, H]; batch-first
    [B, 1, I]): one step, the state in and out."""
    from backends.onnx_direct import build_direct_model

    model = build_direct_model(spec, weights, with_lens=False)
    time_axis = 1 if spec.batch_first else 0
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[time_axis].dim_value = 1
    return model


def noop_graph(spec):
    """x + 0 on one [B, I] input: the least a call through a session costs."""
    from onnx import helper

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
    zero = helper.make_tensor("zero", elem, [], [0.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "zero"], ["y"])],
        "rnnbench_noop",
        [helper.make_tensor_value_info("x", elem, ["B", spec.input_size])],
        [helper.make_tensor_value_info("y", elem, ["B", spec.input_size])],
        [zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    return model


def ort_step_runner(prepared) -> StepRunner:
    """prepared: a backends.ort_backend.PreparedOrt of the direct export path."""
    import onnxruntime as ort

    from harness.model.protocol import NotSupported
    from harness.onnx.session import open_session

    spec, backend = prepared.spec, prepared.backend
    check_streamable(spec)
    if backend.exporter != "direct":
        raise NotSupported(
            f"the {backend.exporter} export has no one-step graph: the direct builder writes it"
        )
    opened = [
        open_session(graph, backend.provider, backend.threads, backend.optimization, what=what)
        for graph, what in (
            (step_graph(spec, prepared.weights), "the one-step graph"),
            (noop_graph(spec), "the no-op graph"),
        )
    ]
    session, noop_session = opened
    device = DEVICE[backend.provider]
    lstm = spec.cell is Cell.LSTM
    state_names = ["h0", "c0"][: 1 + lstm]
    outputs = [o.name for o in session.get_outputs()]  # y, h_n, (c_n), (head)
    binding, noop_binding = session.io_binding(), noop_session.io_binding()
    expand = (lambda x: x[:, None]) if spec.batch_first else (lambda x: x[None])

    def value(array):
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array, spec.dtype), device)

    def step(x_t, state):
        binding.bind_cpu_input("x", expand(np.asarray(x_t, spec.dtype)))
        for name, held in zip(state_names, state, strict=True):
            binding.bind_ortvalue_input(name, held)
        for name in outputs:
            binding.bind_output(name, device)
        session.run_with_iobinding(binding)
        got = dict(zip(outputs, binding.get_outputs(), strict=True))
        y = got["y"].numpy()
        y = y[:, 0] if spec.batch_first else y[0]
        head = got["head"].numpy() if "head" in got else None
        return (y, head), tuple(got[n] for n in ("h_n", "c_n")[: 1 + lstm])

    def to_state(h, c):
        return (value(h), value(c)) if lstm else (value(h),)

    def from_state(state):
        arrays = [s.numpy() for s in state]
        return arrays[0], (arrays[1] if lstm else None)

    def zero_state(batch):
        shape = (spec.num_layers, batch, spec.hidden_size)
        return to_state(np.zeros(shape, spec.dtype), np.zeros(shape, spec.dtype))

    def noop(x_t):
        noop_binding.bind_cpu_input("x", np.asarray(x_t, spec.dtype))
        noop_binding.bind_output("y", device)
        noop_session.run_with_iobinding(noop_binding)
        return noop_binding.get_outputs()[0].numpy()

    provider = session.get_providers()[0]
    return StepRunner(
        step,
        zero_state,
        to_state,
        from_state,
        noop,
        f"ONNX {spec.cell.name} op on one step, state bound as OrtValues ({provider})",
        f"ONNX Runtime ({provider}): one Add of 0, bound the same way",
    )
