"""Weights proven for every export form (harness/model_file/weight_match.py): each source weight
is found among an export's stored tensors by its values, however the exporter laid it out, and
compared exactly; one that differs, or is missing, fails naming it.

The matcher on synthetic arrays first (transposed, split, beside another, gates permuted, a
bias sum, float16, absent, perturbed), then real exports through `rnnbench parity --model
SOURCE --against EXPORT`: a faithful one passes with "n of n weights matched", and one element
x1.001 in the recurrent kernel, the input kernel, the head or a bias fails, its first FAIL line
naming that weight, its gate, index and both values."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.model.layouts import reorder_gates
from harness.model.spec import Cell, Head, ModelSpec
from harness.model.weights import init_weights
from harness.model_file.weight_blocks import canonical_units, whole
from harness.model_file.weight_match import match_weights

H, I = 8, 5


def _gru_weights(seed=1, **spec):
    return init_weights(ModelSpec(Cell.GRU, I, H, dtype=spec.pop("dtype", "float32"), **spec), seed)


def _matched(units, stored):
    return match_weights("export-file", "export.onnx", units, stored)


def _first_failure(check) -> str:
    return next(c.message for c in check.comparisons if not c.passed)


# ---- the matcher on synthetic arrays ---------------------------------------------------------


def test_a_block_stored_transposed_is_found():
    kernel = np.random.default_rng(0).standard_normal((I, 3 * H)).astype(np.float32)
    check = _matched([whole("kernel", kernel)], [("k", kernel.T.copy())])
    assert check.status == "passed" and check.summary == "1 of 1 weights matched"


def test_gates_split_across_two_tensors_and_permuted_are_found():
    """W's z and r gates in one tensor, h in another, and R with its gates in torch's order
    (r, z, h): every gate block is found where it sits."""
    weights = _gru_weights()
    W, R = weights["l0.W"][0], weights["l0.R"][0]
    stored = [
        ("W_zr", W[: 2 * H].copy()),
        ("W_h", W[2 * H :].copy()),
        ("R_torch", reorder_gates(R, Cell.GRU, "onnx", "torch")),
        ("B", np.concatenate([weights["l0.Wb"][0], weights["l0.Rb"][0]])),
    ]
    check = _matched(canonical_units(weights), stored)
    assert check.status == "passed", check.reason
    assert check.summary == "10 of 10 weights matched"


def test_a_block_beside_another_is_found():
    """A bidirectional layer's W and R side by side, directions stacked, other values in front
    ([2, 3H, 3 + I + H]): each direction's gate is a sub-block of a 2-D view of it."""
    weights = _gru_weights(bidirectional=True)
    W, R = weights["l0.W"], weights["l0.R"]
    side_by_side = np.concatenate([W, R], axis=2)  # [2, 3H, I + H]
    noise = np.random.default_rng(5).standard_normal((2, 3 * H, 3)).astype(np.float32)
    stored = [
        ("WR", np.concatenate([noise, side_by_side], axis=2)),
        ("B", np.concatenate([weights["l0.Wb"], weights["l0.Rb"]], axis=1)),
    ]
    check = _matched(canonical_units(weights), stored)
    assert check.status == "passed", check.reason
    assert check.summary == "20 of 20 weights matched"


def test_a_bias_sum_is_accepted_stored_as_the_sum_or_apart():
    """LSTM biases enter only as Wb + Rb: stored summed (Keras) or apart (torch), both pass;
    a sum off in one element fails naming both addends' indices."""
    spec = ModelSpec(Cell.LSTM, I, H)
    weights = init_weights(spec, 2)
    units = [u for u in canonical_units(weights) if u.name == "l0.Wb+Rb"]
    Wb, Rb = weights["l0.Wb"][0], weights["l0.Rb"][0]
    summed = (Wb.astype(np.float64) + Rb).astype(np.float32)
    assert _matched(units, [("b", summed)]).summary == "4 of 4 weights matched"
    assert _matched(units, [("bi", Wb), ("bh", Rb)]).summary == "4 of 4 weights matched"
    bad = summed.copy()
    bad[H + 3] *= np.float32(1.001)  # gate o, row 3
    check = _matched(units, [("b", bad)])
    assert check.status == "failed" and check.summary == "3 of 4 weights matched"
    message = _first_failure(check)
    assert message.startswith("export-file: weights l0.Wb+Rb gate o: 1 of 8 elements differ")
    assert f"at l0.Wb[0, {H + 3}] + l0.Rb[0, {H + 3}]: " in message and "b[11]" in message


def test_float16_storage_is_compared_at_float16_and_said():
    kernel = np.random.default_rng(3).uniform(-0.5, 0.5, (I, 3 * H)).astype(np.float32)
    check = _matched([whole("kernel", kernel)], [("k16", kernel.astype(np.float16))])
    assert check.status == "passed", check.reason
    assert "stored in float16: compared at that precision" in check.summary
    bad = kernel.astype(np.float16)
    bad[2, 7] = np.float16(bad[2, 7] * 1.01)
    check = _matched([whole("kernel", kernel)], [("k16", bad)])
    assert check.status == "failed"
    assert "1 of 120 elements differ (at float16); at kernel[2, 7]: " in _first_failure(check)


def test_a_float64_source_stored_as_float32_matches_to_float32_rounding():
    weights = _gru_weights(dtype="float64")
    units = [u for u in canonical_units(weights) if u.name == "l0.R"]
    R32 = weights["l0.R"][0].astype(np.float32)
    assert _matched(units, [("R", R32)]).status == "passed"
    R32[H + 1, 4] *= np.float32(1.001)
    check = _matched(units, [("R", R32)])
    assert check.status == "failed" and "weights l0.R gate r" in _first_failure(check)


def test_an_absent_block_fails_naming_it():
    weights = _gru_weights()
    W = weights["l0.W"][0]
    stored = [("W_zr", W[: 2 * H].copy())]  # gate h lost
    units = [u for u in canonical_units(weights) if u.name == "l0.W"]
    check = _matched(units, stored)
    assert check.status == "failed" and check.summary == "2 of 3 weights matched"
    message = _first_failure(check)
    assert message.startswith("export-file: weights l0.W gate h: not found in the export"), message


def test_two_perturbed_elements_are_located_and_both_named():
    R = np.random.default_rng(4).uniform(-0.5, 0.5, (3 * H, H)).astype(np.float32)
    stored = R.T.copy()  # as Keras keeps it
    stored[1, 2] *= np.float32(1.001)
    stored[6, 20] *= np.float32(0.999)
    check = _matched([whole("R", R)], [("recurrent", stored)])
    message = _first_failure(check)
    assert "2 of 192 elements differ" in message, message
    for source, export in (((2, 1), (1, 2)), ((20, 6), (6, 20))):
        want, got = R[source], stored[export]
        assert (
            f"at R{list(source)}: {got:.9g} in the export (recurrent{list(export)}) vs "
            f"{want:.9g} in the source" in message
        ), message


def test_blocks_of_equal_values_are_said_not_located():
    """A zero bias cannot be located by value: counted and said, not a failure; a block of
    another constant is not identifiable (said, not guessed)."""
    spec = ModelSpec(Cell.GRU, I, H, head=Head(2, "none"))
    weights = init_weights(spec, 6)
    arrays = dict(weights)
    arrays["l0.Wb"] = np.zeros_like(arrays["l0.Wb"])
    arrays["l0.Rb"] = np.zeros_like(arrays["l0.Rb"])
    arrays["head.b"] = np.full(2, 0.25, np.float32)
    zeroed = weights.replace(**arrays)
    stored = [(n, np.asarray(zeroed[n])) for n in ("l0.W", "l0.R", "head.W")]
    check = _matched(canonical_units(zeroed), stored)
    assert check.status == "passed", check.reason
    assert check.summary.startswith("7 of 12 weights matched; 4 zero in the source, not located")
    assert "1 not identifiable (every value equal): head.b" in check.summary


def test_an_embedding_table_and_an_h128_model_match_in_well_under_a_second():
    spec = ModelSpec(Cell.LSTM, 64, 128, num_layers=2, head=Head(10, "none"))
    weights = init_weights(spec, 1)
    table = np.random.default_rng(0).standard_normal((10_000, 64)).astype(np.float32)
    stored = [("embedding", table)]
    for layer in range(2):
        W, R, Wb, Rb = (a[0] for a in weights.layer(layer))
        keras = lambda a: reorder_gates(a, Cell.LSTM, "onnx", "keras")  # noqa: E731
        stored += [
            (f"k{layer}", keras(W).T),
            (f"r{layer}", keras(R).T),
            (f"b{layer}", keras(Wb + Rb)),
        ]
    stored += [("head", weights["head.W"].T.copy()), ("head_b", weights["head.b"])]
    units = canonical_units(weights) + [whole("embedding", table)]
    started = time.perf_counter()
    check = _matched(units, stored)
    took = time.perf_counter() - started
    assert check.summary == "27 of 27 weights matched", check.reason
    assert took < 1.0, f"{took:.2f} s"


def _loop_export(R: np.ndarray, W: np.ndarray):
    """A Loop whose body holds R as a Constant and whose W is 2 * W stored, halved by a Mul
    in the main graph (a constant subgraph, which the reader folds)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [
            helper.make_node("Constant", [], ["R"], value=numpy_helper.from_array(R, "R")),
            helper.make_node("MatMul", ["h_in", "R"], ["hR"]),
            helper.make_node("Add", ["hR", "W"], ["h_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, H]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, H]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["W2", "half"], ["W"]),
            helper.make_node("Loop", ["T", "", "h0"], ["h"], body=body, name="recurrence"),
        ],
        "loop",
        [
            helper.make_tensor_value_info("T", TensorProto.INT64, []),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, H]),
        ],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, H])],
        [
            numpy_helper.from_array(2 * W, "W2"),
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_weights_inside_a_loop_body_and_folded_constants_are_found():
    """R stored only as a Constant inside the Loop body, W only as 2 * W halved by a Mul:
    both found (the body searched, then the main graph's constant subgraph folded), and a
    perturbed R inside the body named with where it sits."""
    from types import SimpleNamespace

    from harness.model_file.weight_match import check_export_weights

    pytest.importorskip("onnx", reason="onnx is not installed")
    rng = np.random.default_rng(8)
    R = rng.uniform(-0.5, 0.5, (H, H)).astype(np.float32)
    W = rng.uniform(-0.5, 0.5, (1, H)).astype(np.float32)
    units = [whole("R", R), whole("W", W)]
    export = SimpleNamespace(model=_loop_export(R, W), label="loop.onnx")
    check = check_export_weights("export-file", export, units)
    assert check.status == "passed" and check.summary == "2 of 2 weights matched", check.reason
    bad = R.copy()
    bad[3, 5] *= np.float32(1.001)
    export = SimpleNamespace(model=_loop_export(bad, W), label="loop.onnx")
    message = _first_failure(check_export_weights("export-file", export, units))
    assert "weights R: 1 of 64 elements differ; at R[3, 5]: " in message, message
    assert "(R (in the Loop body of node 'recurrence')[3, 5])" in message, message
    W_bad = W.copy()
    W_bad[0, 6] *= np.float32(1.001)
    export = SimpleNamespace(model=_loop_export(R, W_bad), label="loop.onnx")
    message = _first_failure(check_export_weights("export-file", export, units))
    assert "weights W: 1 of 8 elements differ; at W[0, 6]: " in message, message
    assert "(W (folded from a constant subgraph)[0, 6])" in message, message


@pytest.mark.parametrize(
    "dims,words",
    [((5, 4), "does not hold what its dims declare"), ((10**9, 10**6), "over the memory budget")],
)
def test_a_tensor_that_lies_about_its_size_is_refused_before_allocating(dims, words):
    """A file's tensor declaring more than it holds is one line naming it; one declaring more
    than the memory budget is Refused before anything of that size is made."""
    pytest.importorskip("onnx", reason="onnx is not installed")
    from onnx import TensorProto, helper, numpy_helper

    from harness.model.protocol import NotSupported
    from harness.model_file.stored import stored_tensors

    tensor = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    tensor.dims[:] = dims
    graph = helper.make_graph(
        [helper.make_node("Identity", ["W"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [tensor],
    )
    with pytest.raises(NotSupported, match=words):
        stored_tensors(helper.make_model(graph), "bad.onnx")


def test_a_model_files_embedding_table_is_one_more_weight():
    """A source whose front end looks tokens up in an embedding table: the table is found too
    (here stored as an ONNX Gather's data), and a changed row is named."""
    from types import SimpleNamespace

    from harness.model_file.weight_match import source_units

    weights = _gru_weights()
    table = np.random.default_rng(9).standard_normal((50, I)).astype(np.float32)
    front = SimpleNamespace(table=table, layers=("tokens",))
    units = source_units(SimpleNamespace(weights=weights, front=front))
    stored = [(n, np.asarray(weights[n][0])) for n in ("l0.W", "l0.R")]
    stored += [("B", np.concatenate([weights["l0.Wb"][0], weights["l0.Rb"][0]]))]
    assert _matched(units, stored + [("gather", table)]).summary == "11 of 11 weights matched"
    bad = table.copy()
    bad[31, 2] *= np.float32(1.001)
    message = _first_failure(_matched(units, stored + [("gather", bad)]))
    assert "weights tokens table: 1 of 250 elements differ; at tokens table[31, 2]" in message


# ---- real exports, through `rnnbench parity --model SOURCE --against EXPORT` -----------------

U = 3  # head units: with I = 5 and H = 8, every tensor of an export has a shape of its own
EXPORTS = {  # name: (cell, who writes it, how its weights are laid out)
    "keras-gru-tf2onnx": ("gru", "tf2onnx", "keras"),  # a Loop
    "keras-rnn-tf2onnx": ("rnn", "tf2onnx", "keras"),  # a Loop
    "keras-lstm-tf2onnx": ("lstm", "tf2onnx", "native"),  # an LSTM node: check_weights
    "keras-gru-export": ("gru", "keras-export", "keras"),  # model.export(format="onnx")
    "torch-gru-dynamo": ("gru", "dynamo", "native"),
    "torch-gru-legacy": ("gru", "legacy", "native"),
    "torch-lstm-dynamo": ("lstm", "dynamo", "native"),
    "torch-lstm-legacy": ("lstm", "legacy", "native"),
}
PARTS = ("recurrent", "input", "head", "bias")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """name -> (source, export), each made once, on first use."""
    made = {}

    def get(name):
        if name not in made:
            made[name] = _make(name, tmp_path_factory.mktemp(name))
        return made[name]

    return get


def _make(name, folder):
    from tests import model_files as make

    cell, writer, _ = EXPORTS[name]
    export = folder / f"{cell}.onnx"
    if name.startswith("torch"):
        pytest.importorskip("torch", reason="torch is not installed")
        pytest.importorskip("onnxscript", reason="onnxscript is not installed (dynamo export)")
        net = make.torch_net(cell, I=I, H=H, head=U, seed=3)
        source = make.save_scripted(net, folder / f"{cell}.pt")
        return source, make.export_onnx(net, export, dynamo=writer == "dynamo")
    pytest.importorskip("tf2onnx", reason="tf2onnx is not installed")
    model = make.keras_model(cell, I=I, H=H, head=U, activation=None, seed=3)
    source = folder / f"{cell}.keras"
    model.save(source)
    if writer == "tf2onnx":
        return source, make.export_tf2onnx(model, export)
    model(np.zeros((1, 2, I), np.float32))  # Keras exports only a model that has been called
    try:
        model.export(str(export), format="onnx", verbose=False)
    except Exception as exc:  # pragma: no cover - depends on the installed Keras
        pytest.skip(f"Keras's own ONNX export fails here: {str(exc).splitlines()[0][:160]}")
    return source, export


def _against(source, export):
    from harness.cli.main import main

    return main(["parity", "--model", str(source), "--against", str(export), "--backends", "numpy"])


@pytest.mark.parametrize("name", list(EXPORTS))
def test_a_faithful_export_matches_every_weight(name, exports, capsys):
    source, export = exports(name)
    assert _against(source, export) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "file weights" in line)
    cell = EXPORTS[name][0]
    n = {"rnn": 5, "gru": 12, "lstm": 14}[cell]  # gate blocks of W, R, the biases; head W, b
    assert f"passed: {n} of {n} weights matched" in row, out


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("name", list(EXPORTS))
def test_one_element_off_by_a_thousandth_fails_naming_it(name, part, exports, tmp_path, capsys):
    source, export = exports(name)
    bad, label, where, got, want = _perturbed(export, tmp_path / "bad.onnx", name, part)
    assert _against(source, bad) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("FAIL "))
    assert line.startswith("FAIL export-file ") and f": weights {label}: 1 of " in line, err
    assert f"elements differ; at {where}: {got:.9g} in the export" in line, line
    assert f" vs {want:.9g} in the source" in line, line


def _perturbed(export, out, name, part):
    """The export with one element of `part` x1.001 in its initializer, and what the first
    FAIL line must say: the unit's label, the source index, the export's and source's value."""
    import onnx
    from onnx import numpy_helper

    cell, _, layout = EXPORTS[name]
    shape, element, label, where, partner = _target(Cell(cell), layout, name, part)
    model = onnx.load(str(export))
    (tensor,) = [t for t in model.graph.initializer if tuple(t.dims) == shape]
    value = numpy_helper.to_array(tensor).copy()
    want = value[element]
    value[element] = got = np.float32(want * np.float32(1.001))
    tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    onnx.save(model, str(out))
    if partner is not None:  # compared as the sum of both biases
        other = np.float64(value[partner])
        want, got = np.float32(want + other), np.float32(got + other)
    return out, label, where, float(got), float(want)


def _target(cell: Cell, layout: str, name: str, part: str):
    """(initializer shape, element, unit label, source index shown, the other bias's element
    where the sum is compared) for one part of an export laid out the Keras way (kernel
    [I, G*H], Keras gate order) or as native nodes (W [1, G*H, I], ONNX order = canonical)."""
    from harness.model.layouts import GATE_ORDER

    G = cell.gates
    order = GATE_ORDER["keras" if layout == "keras" else "onnx"][cell]
    canonical = GATE_ORDER["onnx"][cell]

    def gate(k):  # (label suffix, canonical row) of the column/row k in the export's order
        letter = order[k // H] if G > 1 else ""
        row = (canonical.index(letter) if letter else 0) * H + k % H
        return (f" gate {letter}" if letter else ""), row

    k = {"recurrent": (1 % G) * H + 3, "input": (G - 1) * H + 1}.get(part, 0)
    if part in ("recurrent", "input"):
        tensor, other, col = ("R", H, 2) if part == "recurrent" else ("W", I, 1)
        suffix, row = gate(k)
        shape, element = (
            ((other, G * H), (col, k)) if layout == "keras" else ((1, G * H, other), (0, k, col))
        )
        return shape, element, f"l0.{tensor}{suffix}", f"l0.{tensor}[0, {row}, {col}]", None
    if part == "head":
        # a Keras Dense kernel [H, U] (a MatMul's), a torch Linear's weight [U, H] (a Gemm's)
        shape, element = ((H, U), (4, 1)) if name.startswith("keras") else ((U, H), (1, 4))
        return shape, element, "head.W", "head.W[1, 4]", None
    if layout == "native":  # B [1, 2*G*H]: Wb then Rb; compared as their sum
        suffix, row = gate(H + 2)
        where = f"l0.Wb[0, {row}] + l0.Rb[0, {row}]"
        return (1, 2 * G * H), (0, H + 2), f"l0.Wb+Rb{suffix}", where, (0, G * H + H + 2)
    if cell is Cell.GRU:  # Keras's [2, 3H]: the recurrent row's gate z, an addend stored apart
        return (2, G * H), (1, 2), "l0.Wb+Rb gate z", "l0.Rb[0, 2]", None
    return (G * H,), (3,), "l0.Wb+Rb", "l0.Wb[0, 3]", None  # SimpleRNN: the sum, stored


# ---- a source the reference does not compute: its own arrays, found in the export ------------


@pytest.fixture(scope="module")
def keras_two_sizes(tmp_path_factory):
    """LSTM(8) -> GRU(5) -> Dense(3): tf2onnx writes an LSTM node and a Loop."""
    pytest.importorskip("tf2onnx", reason="tf2onnx is not installed")
    import keras

    from tests import model_files as make

    folder = tmp_path_factory.mktemp("keras-two")
    keras.utils.set_random_seed(12)
    x = keras.Input((None, 4), name="x")
    y = keras.layers.LSTM(8, return_sequences=True, name="first")(x)
    y = keras.layers.Dense(3, name="head")(keras.layers.GRU(5, name="second")(y))
    model = keras.Model(x, y)
    rng = np.random.default_rng(12)
    for weight in model.weights:
        weight.assign(rng.uniform(-0.5, 0.5, weight.shape))
    model.save(folder / "two.keras")
    return folder / "two.keras", make.export_tf2onnx(model, folder / "two.onnx")


@pytest.fixture(scope="module")
def torch_two_sizes(tmp_path_factory):
    """nn.LSTM(4, 8) -> nn.GRU(8, 5) -> Linear(5, 3), TorchScript, exported with native nodes
    the reader cannot stack (two sizes): a black box."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from tests import model_files as make

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.LSTM(4, 8, batch_first=True)
            self.b = torch.nn.GRU(8, 5, batch_first=True)
            self.head = torch.nn.Linear(5, 3)

        def forward(self, x):
            return self.head(self.b(self.a(x)[0])[0][:, -1])

    folder = tmp_path_factory.mktemp("torch-two")
    torch.manual_seed(12)
    net = Two().eval()
    torch.jit.save(torch.jit.script(net), str(folder / "two.pt"))
    with make.quiet_export():
        torch.onnx.export(
            net,
            (torch.randn(2, 5, 4),),
            str(folder / "two.onnx"),
            input_names=["x"],
            output_names=["out"],
            opset_version=17,
            dynamic_axes={"x": {0: "B", 1: "T"}},
            dynamo=False,
        )
    return folder / "two.pt", folder / "two.onnx"


def _perturb_element(export, out, shape, element):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(export))
    (tensor,) = [t for t in model.graph.initializer if tuple(t.dims) == shape]
    value = numpy_helper.to_array(tensor).copy()
    want = value[element]
    value[element] = got = np.float32(want * np.float32(1.001))
    tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    onnx.save(model, str(out))
    return out, float(got), float(want)


@pytest.mark.parametrize(
    "which,shape,element,named",
    [
        # the GRU's Keras recurrent_kernel [5, 15] as stored: column 7 is gate r, row 2
        (
            "keras",
            (5, 15),
            (2, 7),
            "second/gru_cell/recurrent_kernel gate r: 1 of 25 elements "
            "differ; at second/gru_cell/recurrent_kernel[2, 7]",
        ),
        # the LSTM node's W [1, 32, 4], ONNX order: row 9 is gate o, Keras's column 3 * 8 + 1
        (
            "keras",
            (1, 32, 4),
            (0, 9, 1),
            "first/lstm_cell/kernel gate o: 1 of 32 elements "
            "differ; at first/lstm_cell/kernel[1, 25]",
        ),
        # the GRU node's R [1, 15, 5], ONNX order: row 2 is gate z, torch's row 5 + 2
        (
            "torch",
            (1, 15, 5),
            (0, 2, 3),
            "b.weight_hh_l0 gate z: 1 of 25 elements differ; at b.weight_hh_l0[7, 3]",
        ),
        ("torch", (3, 5), (1, 4), "head.weight: 1 of 15 elements differ; at head.weight[1, 4]"),
    ],
    ids=["keras-gru-R", "keras-lstm-W", "torch-gru-R", "torch-head"],
)
def test_a_running_sources_own_arrays_are_found_and_a_changed_one_named(
    which, shape, element, named, request, tmp_path, capsys
):
    """Layers of two sizes: the reference cannot compute the source, which runs as it is;
    its Keras layer.weights or torch state_dict are found in the export gate by gate (LSTM
    4 + 4 + 4, GRU 3 + 3 + 2 + 2, the head's 2: 24 weights)."""
    source, export = request.getfixturevalue(f"{which}_two_sizes")
    assert _against(source, export) == 0, capsys.readouterr()
    assert "passed: 24 of 24 weights matched" in capsys.readouterr().out
    bad, got, want = _perturb_element(export, tmp_path / "bad.onnx", shape, element)
    assert _against(source, bad) == 1
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("FAIL "))
    assert f": weights {named}: {got:.9g} in the export" in line, line
    assert f" vs {want:.9g} in the source" in line, line
