"""The ONNX Runtime step: a one-step graph written from the canonical weights by the direct
builder (backends/onnx_direct.py: native RNN/LSTM/GRU nodes, T fixed at 1 here, the state as
inputs h0 (, c0) and outputs h_n (, c_n)). Only x_t goes in and y_t (and the head's output)
come out as NumPy arrays; the state stays in the form the next call takes.

On a GPU provider the call runs through I/O binding: the state a call returns stays an
OrtValue in the GPU's memory and is bound as the next call's input as it is, never copied out
and back (the outputs are bound to the device anew each call: ORT allocates them, so that no
state a caller holds is written over). On the CPU
the state is a NumPy array and the call is session.run: I/O binding was slower there (binding
the inputs and reading back the outputs cost more than session.run's own conversions: an LSTM
H=256 step about 5% slower, the outputs' OrtValues alone about 8 us), and there is no copy to
save. io_binding=True forces it on the CPU (the tests prove both ways)."""

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


def ort_step_runner(prepared, io_binding: bool | None = None) -> StepRunner:
    """prepared: a backends.ort_backend.PreparedOrt of the direct export path. io_binding:
    None for the provider's way (bound on a GPU, session.run on the CPU)."""
    from harness.model.protocol import NotSupported
    from harness.onnx.session import open_session

    spec, backend = prepared.spec, prepared.backend
    check_streamable(spec)
    if backend.exporter != "direct":
        raise NotSupported(
            f"the {backend.exporter} export has no one-step graph: the direct builder writes it"
        )
    sessions = [
        open_session(graph, backend.provider, backend.threads, backend.optimization, what=what)
        for graph, what in (
            (step_graph(spec, prepared.weights), "the one-step graph"),
            (noop_graph(spec), "the no-op graph"),
        )
    ]
    bound = backend.provider != "cpu" if io_binding is None else io_binding
    call = _Bound(spec, backend.provider, *sessions) if bound else _Run(spec, *sessions)
    provider = sessions[0].get_providers()[0]
    way = "state bound as OrtValues" if bound else "session.run, the state as NumPy arrays"
    return StepRunner(
        call.step,
        call.zero_state,
        call.to_state,
        call.from_state,
        call.noop,
        f"ONNX {spec.cell.name} op on one step, {way} ({provider})",
        f"ONNX Runtime ({provider}): one Add of 0, called the same way",
    )


class _Run:
    """session.run on NumPy arrays: the state is (h, c) as NumPy arrays, [L, B, H]."""

    def __init__(self, spec, session, noop_session):
        self.spec, self.session, self.noop_session = spec, session, noop_session
        self.lstm = spec.cell is Cell.LSTM
        self.states = ["h0", "c0"][: 1 + self.lstm]
        self.outputs = [o.name for o in session.get_outputs()]  # y, h_n, (c_n), (head)
        self.expand = (lambda x: x[:, None]) if spec.batch_first else (lambda x: x[None])

    def step(self, x_t, state):
        feed = {"x": self.expand(np.asarray(x_t, self.spec.dtype))}
        feed.update(zip(self.states, state, strict=True))
        got = dict(zip(self.outputs, self.session.run(None, feed), strict=True))
        y = got["y"][:, 0] if self.spec.batch_first else got["y"][0]
        return (y, got.get("head")), tuple(got[n] for n in ("h_n", "c_n")[: 1 + self.lstm])

    def to_state(self, h, c):
        arrays = (h, c) if self.lstm else (h,)
        return tuple(np.ascontiguousarray(a, self.spec.dtype) for a in arrays)

    def from_state(self, state):
        return state[0], (state[1] if self.lstm else None)

    def zero_state(self, batch):
        shape = (self.spec.num_layers, batch, self.spec.hidden_size)
        return self.to_state(np.zeros(shape), np.zeros(shape))

    def noop(self, x_t):
        return self.noop_session.run(None, {"x": np.asarray(x_t, self.spec.dtype)})[0]


class _Bound(_Run):
    """I/O binding: the state is a tuple of OrtValues on the provider's device."""

    def __init__(self, spec, provider, session, noop_session):
        import onnxruntime as ort

        super().__init__(spec, session, noop_session)
        self.device, self.OrtValue = DEVICE[provider], ort.OrtValue
        self.binding, self.noop_binding = session.io_binding(), noop_session.io_binding()

    def step(self, x_t, state):
        binding = self.binding
        binding.bind_cpu_input("x", self.expand(np.asarray(x_t, self.spec.dtype)))
        for name, held in zip(self.states, state, strict=True):
            binding.bind_ortvalue_input(name, held)
        for name in self.outputs:  # each run: fresh outputs (a bound one would be written over)
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        got = dict(zip(self.outputs, binding.get_outputs(), strict=True))
        y = got["y"].numpy()
        y = y[:, 0] if self.spec.batch_first else y[0]
        head = got["head"].numpy() if "head" in got else None
        return (y, head), tuple(got[n] for n in ("h_n", "c_n")[: 1 + self.lstm])

    def to_state(self, h, c):
        return tuple(
            self.OrtValue.ortvalue_from_numpy(array, self.device)
            for array in super().to_state(h, c)
        )

    def from_state(self, state):
        arrays = [s.numpy() for s in state]
        return arrays[0], (arrays[1] if self.lstm else None)

    def noop(self, x_t):
        self.noop_binding.bind_cpu_input("x", np.asarray(x_t, self.spec.dtype))
        self.noop_binding.bind_output("y", self.device)
        self.noop_session.run_with_iobinding(self.noop_binding)
        return self.noop_binding.get_outputs()[0].numpy()
