"""The ONNX Runtime step: a one-step graph written from the canonical weights (step_graph: one
native RNN/LSTM/GRU node a layer, as the direct builder of backends/onnx_direct.py writes them,
and nothing between them: the state as inputs h0_l (, c0_l) and outputs h_n_l (, c_n_l)). Only
x_t goes in and y_t (and the head's output) come out as NumPy arrays; the state stays in the
form the next call takes.

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
    """One step as the fewest nodes: per layer one native RNN/LSTM/GRU node (the direct
    builder's attributes, the weights as initializers) on x [1, B, I], its state inputs
    h0_l (, c0_l) [1, B, H] and outputs h_n_l (, c_n_l); a layer's Y_h, [1, B, H], is the
    next layer's input as it is (at T = 1 it is the layer's output). With a head: y [B, H]
    (the last Y_h squeezed), then the head."""
    from onnx import helper

    from backends.onnx_direct import OP_TYPE, OPSET, _Graph, variant_attributes

    g = _Graph(spec.dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
    H, lstm = spec.hidden_size, spec.cell is Cell.LSTM
    value = helper.make_tensor_value_info
    inputs = [value("x", elem, [1, "B", spec.input_size])]
    outputs, seq = [], "x"
    for layer in range(spec.num_layers):
        W, R, Wb, Rb = weights.layer(layer)
        states = [f"h0_{layer}"] + ([f"c0_{layer}"] if lstm else [])
        inputs += [value(name, elem, [1, "B", H]) for name in states]
        node_inputs = [
            seq,
            g.const(f"W{layer}", W),
            g.const(f"R{layer}", R),
            g.const(f"B{layer}", np.concatenate([Wb, Rb], axis=1)),
            "",
            *states,
        ]
        if spec.peepholes:
            node_inputs.append(g.const(f"P{layer}", weights.peepholes(layer)))
        finals = [f"h_n_{layer}"] + ([f"c_n_{layer}"] if lstm else [])
        g.node(
            OP_TYPE[spec.cell],
            node_inputs,
            ["", *finals],
            hidden_size=H,
            direction="forward",
            layout=0,
            **variant_attributes(spec, None),
        )
        outputs += [value(name, elem, [1, "B", H]) for name in finals]
        seq = finals[0]
    if spec.head is not None:
        y = g.node("Squeeze", [seq, g.const("axis0", np.array([0]))], ["y"])
        logits = "head" if spec.head.activation == "none" else "logits"
        W, b = g.const("head_W", weights["head.W"]), g.const("head_b", weights["head.b"])
        g.node("Gemm", [y, W, b], [logits], transB=1)
        if logits != "head":
            g.node("Softmax", [logits], ["head"], axis=-1)
        outputs.append(value("head", elem, ["B", spec.head.units]))
    graph = helper.make_graph(g.nodes, "rnnbench_step", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
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
    """session.run on NumPy arrays: the state is each layer's h, then (LSTM) each layer's c,
    as NumPy arrays [1, B, H]."""

    def __init__(self, spec, session, noop_session):
        self.spec, self.session, self.noop_session = spec, session, noop_session
        self.lstm = spec.cell is Cell.LSTM
        self.inputs = [i.name for i in session.get_inputs()][1:]  # each layer's h0 (, c0)
        self.outputs = [o.name for o in session.get_outputs()]  # h_n (, c_n) per layer, head
        self.n = len(self.inputs)
        L = spec.num_layers
        # the graph has each layer's h and c side by side; the state, every layer's h first
        h = [2 * k for k in range(L)] if self.lstm else list(range(L))
        self.order = h + [2 * k + 1 for k in range(L)] if self.lstm else h

    def _state(self, got):
        return tuple(got[k] for k in self.order)

    def _feed(self, state):
        feed = [None] * self.n
        for position, array in zip(self.order, state, strict=True):
            feed[position] = array
        return feed

    def _y(self, state):
        return state[self.spec.num_layers - 1][0]  # the last layer's h: y at T = 1

    def step(self, x_t, state):
        feed = {"x": np.asarray(x_t, self.spec.dtype)[None]}
        feed.update(zip(self.inputs, self._feed(state), strict=True))
        got = self.session.run(None, feed)
        state = self._state(got)
        head = got[self.n] if self.spec.head is not None else None
        return (self._y(state), head), state

    def to_state(self, h, c):
        arrays = [*h, *c] if self.lstm else list(h)
        return tuple(np.ascontiguousarray(a[None], self.spec.dtype) for a in arrays)

    def from_state(self, state):
        L = self.spec.num_layers
        h = np.concatenate(state[:L])
        return h, (np.concatenate(state[L:]) if self.lstm else None)

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
        binding.bind_cpu_input("x", np.asarray(x_t, self.spec.dtype)[None])
        for name, held in zip(self.inputs, self._feed(state), strict=True):
            binding.bind_ortvalue_input(name, held)
        for name in self.outputs:  # each run: fresh outputs (a bound one would be written over)
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        got = binding.get_outputs()
        state = self._state(got)
        head = got[self.n].numpy() if self.spec.head is not None else None
        return (state[self.spec.num_layers - 1].numpy()[0], head), state

    def to_state(self, h, c):
        return tuple(
            self.OrtValue.ortvalue_from_numpy(array, self.device)
            for array in super().to_state(h, c)
        )

    def from_state(self, state):
        return super().from_state([s.numpy() for s in state])

    def noop(self, x_t):
        self.noop_binding.bind_cpu_input("x", np.asarray(x_t, self.spec.dtype))
        self.noop_binding.bind_output("y", self.device)
        self.noop_session.run_with_iobinding(self.noop_binding)
        return self.noop_binding.get_outputs()[0].numpy()
