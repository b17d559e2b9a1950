"""`rnnbench parity --model` on ONNX files made the way users make them
(tests/onnx_user_files.py): each either passes or is refused in one line (exit 2), and a pass is
real: a file whose numbers differ from the weights the check read fails (exit 1)."""

from __future__ import annotations

import dataclasses
import math
import types

import numpy as np
import pytest

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rnnbench[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from harness.cli.main import main  # noqa: E402
from harness.model_file import check as file_check  # noqa: E402
from harness.model_file.model import open_model  # noqa: E402
from harness.model_file.reference import reference  # noqa: E402
from harness.model_file.reverse import check_reverse_numpy  # noqa: E402
from harness.onnx import reader  # noqa: E402
from harness.parity.checks import Comparison  # noqa: E402
from harness.parity.report import summarize  # noqa: E402
from tests import onnx_user_files as make  # noqa: E402

PASS = None


def _torch(**kw):
    pytest.importorskip("torch", reason="torch is not installed")
    if kw.get("dynamo"):
        pytest.importorskip("onnxscript", reason="onnxscript is not installed")
    return lambda path, seed: make.torch_file(path, seed=seed, **kw)


def _keras(**kw):
    pytest.importorskip("tf2onnx", reason="tf2onnx is not installed")
    return lambda path, seed: make.keras_file(path, seed=seed, **kw)


def _node(**kw):
    return lambda path, seed: make.node_file(path, seed=seed, **kw)


# (generator, None for a pass or the refusal's words); seeds are the index in this list
FILES = {
    "torchscript-dynamic-lstm-bi-L2-states": (
        lambda: _torch(cell="lstm", layers=2, bidirectional=True, with_states=True),
        PASS,
    ),
    "torchscript-dynamic-gru-I1-H3-time-major": (
        lambda: _torch(cell="gru", I=1, H=3, batch_first=False),
        PASS,
    ),
    "torchscript-static-rnn-T1-B1-states": (
        lambda: _torch(cell="rnn", T=1, B=1, dynamic=False, with_states=True),
        PASS,
    ),
    "dynamo-static-lstm-bi": (
        lambda: _torch(cell="lstm", bidirectional=True, dynamo=True, dynamic=False),
        PASS,
    ),
    "dynamo-static-gru-states": (
        lambda: _torch(cell="gru", dynamo=True, dynamic=False, with_states=True),
        PASS,
    ),
    "dynamo-dynamic-lstm-states": (
        lambda: _torch(cell="lstm", dynamo=True, with_states=True),
        PASS,
    ),
    "dynamo-dynamic-gru": (lambda: _torch(cell="gru", H=3, dynamo=True), PASS),
    "dynamo-dynamic-rnn": (lambda: _torch(cell="rnn", dynamo=True), "is unrolled into nodes"),
    "tf2onnx-T-none-lstm": (lambda: _keras(cell="lstm", T=None), PASS),
    "tf2onnx-T-fixed-lstm-states": (lambda: _keras(cell="lstm", T=6, with_states=True), PASS),
    "tf2onnx-T-none-lstm-bi": (lambda: _keras(cell="lstm", bidirectional=True), PASS),
    "tf2onnx-T1-lstm-last-only": (lambda: _keras(cell="lstm", T=1, return_sequences=False), PASS),
    "tf2onnx-T-fixed-gru": (lambda: _keras(cell="gru", T=4), "its recurrence is a Loop"),
    "node-rnn-reverse-lens-states-static": (
        lambda: _node(cell="rnn", direction="reverse", with_lens=True, with_states=True),
        PASS,
    ),
    "node-lstm-reverse-L2-dynamic": (
        lambda: _node(cell="lstm", direction="reverse", layers=2, static=False),
        PASS,
    ),
    "node-gru-reverse-lens-I1-T1": (
        lambda: _node(cell="gru", direction="reverse", with_lens=True, I=1, T=1, B=3),
        PASS,
    ),
    "node-lstm-bi-lens-states-dynamic": (
        lambda: _node(
            cell="lstm", direction="bidirectional", with_lens=True, with_states=True, static=False
        ),
        PASS,
    ),
    "node-gru-bi-L2-states-B1": (
        lambda: _node(cell="gru", direction="bidirectional", layers=2, with_states=True, B=1),
        PASS,
    ),
    "node-rnn-forward-lens-L2-dynamic": (
        lambda: _node(cell="rnn", layers=2, with_lens=True, static=False, H=3),
        PASS,
    ),
    "node-lstm-forward-states-I1-H3-B1-T1": (
        lambda: _node(cell="lstm", with_states=True, I=1, H=3, B=1, T=1),
        PASS,
    ),
    "node-gru-forward-lbr0": (lambda: _node(cell="gru", linear_before_reset=0), PASS),
    "node-rnn-relu": (lambda: _node(cell="rnn", activations=["Relu"]), "activations=['Relu']"),
    "node-lstm-clip": (lambda: _node(cell="lstm", clip=0.5), PASS),
    "node-lstm-input-forget": (lambda: _node(cell="lstm", input_forget=1), PASS),
    "node-gru-bi-clip-lbr0-L2": (
        lambda: _node(
            cell="gru",
            direction="bidirectional",
            layers=2,
            clip=0.3,
            linear_before_reset=0,
            with_lens=True,
            with_states=True,
        ),
        PASS,
    ),
}
SKIPPED_BY_ORT = {"node-gru-layout1": lambda: _node(cell="gru", layout=1, static=False)}


def _parity(path, *extra):
    return main(
        [
            "parity",
            "--model",
            str(path),
            "--backends",
            "numpy",
            "--dtype",
            "float32",
        ]
        + list(extra)
    )


@pytest.mark.parametrize("kind", list(FILES))
def test_a_users_file_passes_or_is_refused_in_one_line(kind, tmp_path, capsys):
    generator, refusal = FILES[kind]
    path = generator()(tmp_path / f"{kind}.onnx", list(FILES).index(kind))
    code = _parity(path)
    out, err = capsys.readouterr()
    if refusal is PASS:
        assert code == 0, out + err
        row = next(line for line in out.splitlines() if line.startswith("model-file"))
        assert "file outputs" in row and row.rstrip().endswith("passed"), out
    else:
        assert code == 2, out + err
        assert err.count("\n") == 1 and err.startswith("rnnbench: error: "), err
        assert refusal in err and "allowed" in err, err


@pytest.mark.parametrize(
    "kind",
    [
        "torchscript-dynamic-lstm-bi-L2-states",
        "tf2onnx-T-fixed-lstm-states",
        "node-lstm-reverse-L2-dynamic",
    ],
)
def test_a_pass_is_real_one_corrupted_weight_fails(kind, tmp_path, monkeypatch, capsys):
    """The file runs with one weight moved by 0.25 while the check reads the original's weights:
    exit 1, naming the file's output."""
    path = FILES[kind][0]()(tmp_path / "good.onnx", 7)
    bad = make.corrupt_one_weight(path, tmp_path / "bad.onnx")
    read = reader.read_onnx
    monkeypatch.setattr(reader, "read_onnx", lambda *_: read(path))
    assert _parity(bad) == 1
    err = capsys.readouterr().err
    assert "FAIL model-file" in err and "model-file (T=" in err, err


def test_a_layout1_file_is_skipped_by_ort_and_still_checked(tmp_path, capsys):
    """ONNX Runtime cannot run layout=1 nodes: the file's row is a skip with ORT's words; the
    backends rebuilt from its weights (read through the layout) still pass."""
    path = SKIPPED_BY_ORT["node-gru-layout1"]()(tmp_path / "l1.onnx", 3)
    assert _parity(path) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("model-file"))
    assert "skipped" in row and "layout == 1" in row, row
    assert any(line.startswith("numpy") and "passed" in line for line in out.splitlines()), out


def test_summarize_never_divides_by_a_zero_tolerance():
    """A comparison that never reached the values (atol 0) used to raise ZeroDivisionError."""
    nan = float("nan")
    comparisons = [
        Comparison("file:out~y", False, nan, nan, 0.0, 0.0, "file:out: no reference"),
        Comparison("y", True, 0.0, 0.0, 0.0, 0.0),
        Comparison("h_n", True, 2e-6, 1e-6, 1e-5, 1e-4),
    ]
    result = types.SimpleNamespace(
        backend="model-file",
        case="lstm-file-float32",
        cell="lstm",
        dtype="float32",
        status="failed",
        reason="",
        comparisons=comparisons,
    )
    rows = {r["quantity"]: r for r in summarize([result])}
    assert math.isinf(rows["file outputs"]["worst_of_tolerance"])
    assert rows["file outputs"]["status"] == "FAILED"
    assert rows["y"]["worst_of_tolerance"] == 0.0
    assert rows["h_n"]["worst_of_tolerance"] == pytest.approx(0.2)


def test_static_sizes_are_the_files_own(tmp_path):
    """A file declaring T=4, B=1 runs at exactly those (the old check fed B=3: INVALID_ARGUMENT);
    a dynamic one at both sizes the check picks."""
    static = make.node_file(tmp_path / "s.onnx", "lstm", T=4, B=1, seed=31)
    dynamic = make.node_file(tmp_path / "d.onnx", "lstm", static=False, seed=32)
    check = file_check.check_file(static)
    assert check.sizes == [(4, 1)] and check.status == "passed", check
    check = file_check.check_file(dynamic)
    assert check.sizes == list(file_check.SIZES) and check.status == "passed", check


def test_declared_lens_and_states_get_real_values(tmp_path):
    path = make.node_file(
        tmp_path / "m.onnx",
        "gru",
        direction="bidirectional",
        with_lens=True,
        with_states=True,
        static=False,
        seed=33,
    )
    model = open_model(path)
    T, B = file_check.SIZES[0]
    x = file_check.sequence(model.spec.input_size, T, B, 0)
    feed = model.runtime.feed(x, np.random.default_rng(0))
    lens, h0 = feed["sequence_lens"], feed["initial_h0"]
    assert lens.dtype == np.int32 and lens[0] == T and lens.min() < T, lens
    assert h0.shape == (2, B, 4) and np.abs(h0).min() > 0
    run = model.runtime.run_feed(feed)
    nodes = model.runtime.nodes
    with_them = reference(model.weights, model.direction, nodes, x, run.received)["h_n"]
    np.testing.assert_allclose(run.outputs["Y_h0"], with_them, atol=1e-5)
    # and the reference did use them: from zero states and full lengths it disagrees
    zero = {"sequence_lens": None, "initial_h0": np.zeros_like(h0)}
    zero_start = reference(model.weights, model.direction, nodes, x, zero)["h_n"]
    assert np.abs(zero_start - with_them).max() > 1e-2


def test_reverse_only_node_compared_by_numpy_others_skipped_with_reason(tmp_path, capsys):
    """The old reader refused a reverse-only node; now the file and numpy are compared."""
    pytest.importorskip("torch", reason="torch is not installed")
    path = make.node_file(tmp_path / "r.onnx", "lstm", direction="reverse", with_lens=True, seed=34)
    code = main(["parity", "--model", str(path), "--backends", "numpy,torch-cpu"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "skipped torch-cpu: reverse-only RNN: torch-cpu builds forward or bidirectional" in out
    numpy_rows = [line for line in out.splitlines() if line.startswith("numpy")]
    assert {line.split()[3] for line in numpy_rows} == {"y", "h_n", "c_n"}, out
    assert all(line.rstrip().endswith("passed") for line in numpy_rows), out


def test_reverse_numpy_check_is_real(tmp_path):
    """Against a forward oracle, the numpy backend run on reversed steps must fail."""
    path = make.node_file(tmp_path / "r.onnx", "gru", direction="reverse", seed=35)
    model = open_model(path)
    assert all(c.passed for c in check_reverse_numpy(model, "float32", True))
    wrong = dataclasses.replace(model, direction="forward")
    assert not all(c.passed for c in check_reverse_numpy(wrong, "float32", True))


def test_weights_fed_at_run_time_need_their_values(tmp_path, capsys):
    """W as a graph input: without its value a one-line refusal naming --inputs; with an .npz
    of it, checked (and a wrong value fails)."""
    import onnx
    from onnx import numpy_helper

    path = make.node_file(tmp_path / "m.onnx", "rnn", seed=36)
    model = onnx.load(str(path))
    w = next(t for t in model.graph.initializer if t.name == "W0")
    model.graph.input.append(onnx.helper.make_tensor_value_info("W0", w.data_type, list(w.dims)))
    model.graph.initializer.remove(w)
    onnx.save(model, str(path))
    assert _parity(path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "graph input 'W0', whose value is not given" in err, err
    assert "--inputs" in err
    value = numpy_helper.to_array(w)
    np.savez(tmp_path / "w.npz", W0=value)
    assert _parity(path, "--inputs", str(tmp_path / "w.npz")) == 0, capsys.readouterr()


def test_a_sequence_of_the_wrong_shape_or_type_in_inputs_is_bad_input(tmp_path, capsys):
    """--inputs whose X does not fit the model is the user's input that is wrong (exit 2,
    naming the allowed shape), not the model (exit 1); an integer X is refused, not cast."""
    path = make.node_file(tmp_path / "m.onnx", "lstm", seed=37)
    import onnx

    I = next(i for i in onnx.load(str(path)).graph.input if i.name == "X")
    width = I.type.tensor_type.shape.dim[2].dim_value
    for name, x in (
        ("short", np.zeros((5, 2, width - 1), np.float32)),
        ("ints", np.zeros((5, 2, width), np.int64)),
    ):
        np.savez(tmp_path / f"{name}.npz", X=x)
        assert _parity(path, "--inputs", str(tmp_path / f"{name}.npz")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"allowed float [T, B, {width}]" in err, err
    np.savez(tmp_path / "good.npz", X=np.ones((5, 2, width), np.float32))
    assert _parity(path, "--inputs", str(tmp_path / "good.npz")) == 0, capsys.readouterr()
