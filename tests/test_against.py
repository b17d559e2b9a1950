"""Source against export, what a user's CI runs: `rnnbench parity --model SOURCE --against
EXPORT` passes a faithful export (native nodes or a Loop), fails a perturbed one naming the
tensor, index and values, fails an export that runs only at its example length naming that
length, writes JUnit XML and a JSON with a top-level `passed`, and refuses flags that do not
apply."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from harness.cli.main import main
from tests import model_files as make


def _torch():
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("onnx", reason="onnx is not installed")


def _keras():
    pytest.importorskip("tf2onnx", reason="tf2onnx is not installed")


def _status(row: str) -> str:
    """A table row's status: the word after its share of tolerance."""
    return row.split("%", 1)[1].split()[0].rstrip(":")


def _against(source, export, *extra):
    return main(
        ["parity", "--model", str(source), "--against", str(export), "--backends", "numpy", *extra]
    )


@pytest.fixture(scope="module")
def torch_pair(tmp_path_factory):
    _torch()
    folder = tmp_path_factory.mktemp("torch")
    net = make.torch_net("gru", layers=2, H=8, softmax=True, seed=4)
    source = make.save_scripted(net, folder / "gru.pt")
    return source, make.export_onnx(net, folder / "gru.onnx"), folder


@pytest.fixture(scope="module")
def keras_pair(tmp_path_factory):
    _keras()
    folder = tmp_path_factory.mktemp("keras")
    model = make.keras_model("gru", H=8, head=0, seed=5)  # tf2onnx: a Loop, no native node
    model.save(folder / "gru.keras")
    return folder / "gru.keras", make.export_tf2onnx(model, folder / "gru.onnx"), folder


def test_a_faithful_native_export_passes(torch_pair, tmp_path, capsys):
    source, export, _ = torch_pair
    record = tmp_path / "r.json"
    assert _against(source, export, "--json", str(record)) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("model-file", "export-file"))]
    assert len(rows) == 3 and all(_status(row) == "passed" for row in rows), out
    assert "file weights" in rows[1] and "passed: 22 of 22 weights matched" in rows[1], out
    doc = json.loads(record.read_text())
    assert doc["passed"] is True and doc["against"] == str(export)
    export_rows = [r for r in doc["results"] if r["backend"] == "export-file"]
    quantities = [c["quantity"] for r in export_rows for c in r["comparisons"]]
    assert any("weights l1.R" in q for q in quantities), quantities  # its weights, compared
    assert any("(T=1, B=1)" in q for q in quantities) and any("(T=13" in q for q in quantities)


@pytest.mark.parametrize("which", ["one-R", "all-W"])
def test_a_perturbed_native_export_fails_naming_the_tensor(which, torch_pair, capsys):
    source, export, folder = torch_pair
    bad = make.perturb_onnx(export, folder / f"bad-{which}.onnx", which, input_size=4)
    assert _against(source, bad) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("FAIL export-file"))
    tensor = "R" if which == "one-R" else "W"
    assert f"weights l0.{tensor} gate " in line and " elements differ; at l0." in line, err
    assert " in the export vs " in line and " in the source" in line, err


def test_a_faithful_loop_export_passes(keras_pair, capsys):
    source, export, _ = keras_pair
    assert _against(source, export) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "against: gru.onnx (black box: " in out and "its recurrence is a Loop" in out
    rows = [line for line in out.splitlines() if line.startswith("export-file")]
    assert [_status(row) for row in rows] == ["passed", "passed"], out
    assert "file weights" in rows[0] and "10 of 10 weights matched" in rows[0], out


@pytest.mark.parametrize("which", ["one-R", "all-W"])
def test_a_perturbed_loop_export_fails_on_its_outputs(which, keras_pair, capsys):
    source, export, folder = keras_pair
    bad = make.perturb_onnx(export, folder / f"bad-{which}.onnx", which, input_size=5)
    assert _against(source, bad) == 1
    err = capsys.readouterr().err
    assert "FAIL export-file" in err and "at index (" in err, err


def test_a_loop_export_alone_is_refused_saying_so(keras_pair, capsys):
    _, export, _ = keras_pair
    assert main(["parity", "--model", str(export)]) == 2
    err = capsys.readouterr().err
    assert "its recurrence is a Loop" in err and "--against EXPORT" in err, err


def _with_op_before_the_recurrence(export, out, op):
    """The export with `op` (Identity, or Mul by 1) between x and the first recurrent node."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(export))
    first = next(n for n in model.graph.node if n.op_type in ("RNN", "LSTM", "GRU"))
    feeds = next(n for n in model.graph.node if first.input[0] in n.output or n is first)
    x = model.graph.input[0].name
    target = feeds if feeds is not first else first
    slot = list(target.input).index(x)
    if op == "Identity":
        node = helper.make_node("Identity", [x], ["x_before"])
    else:
        model.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
        node = helper.make_node("Mul", [x, "one"], ["x_before"])
    target.input[slot] = "x_before"
    model.graph.node.insert(0, node)
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("op", ["Identity", "Mul"])
def test_an_export_with_ops_before_its_recurrence_is_checked(op, torch_pair, capsys):
    """What the reader cannot map to weights is still checked against its source, as a black
    box; a perturbed one still fails. Alone, an Identity is walked through, a Mul refused."""
    source, export, folder = torch_pair
    before = _with_op_before_the_recurrence(export, folder / f"before-{op}.onnx", op)
    assert _against(source, before) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert ("black box" in out) == (op == "Mul"), out
    bad = make.perturb_onnx(before, folder / f"before-{op}-bad.onnx", "all-W")
    assert _against(source, bad) == 1
    capsys.readouterr()
    alone = main(["parity", "--model", str(before), "--backends", "numpy"])
    err = capsys.readouterr().err
    assert alone == (0 if op == "Identity" else 2), err
    if op == "Mul":
        assert "comes from a Mul node" in err and "--against" in err, err


def test_an_export_baked_at_its_example_length_fails_naming_it(tmp_path, capsys):
    """A dynamo export of a bidirectional LSTM declares T dynamic but reshapes y to the
    example's T (pytorch#191855): it runs only there."""
    _torch()
    pytest.importorskip("onnxscript", reason="onnxscript is not installed")
    net = make.torch_net("lstm", bidirectional=True, batch_first=False, head=0, H=8, seed=6)
    source = make.save_scripted(net, tmp_path / "bi.pt")
    export = make.export_onnx(net, tmp_path / "bi.onnx", dynamo=True, T=20)
    code = _against(source, export)
    err = capsys.readouterr().err
    if code == 0:
        pytest.skip("this torch's dynamo export no longer bakes T: nothing to catch")
    assert code == 1
    assert "declares a dynamic sequence axis but is right only at T=20" in err, err


def test_junit_xml_holds_a_testcase_per_check_and_the_failure(torch_pair, tmp_path, capsys):
    source, export, folder = torch_pair
    bad = make.perturb_onnx(export, folder / "bad-junit.onnx", "one-R")
    assert _against(source, bad, "--junit", str(tmp_path / "j.xml")) == 1
    capsys.readouterr()
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.tag == "testsuites" and int(root.get("failures")) >= 1
    suites = {s.get("name"): s for s in root}
    assert {"model-file", "export-file", "numpy"} <= set(suites)
    failures = [c for c in suites["export-file"] if c.find("failure") is not None]
    assert failures and "weights l0.R" in failures[0].find("failure").get("message")
    passed = [c for c in suites["model-file"] if not list(c)]
    assert passed, ET.tostring(suites["model-file"])


@pytest.mark.parametrize(
    "argv,words",
    [
        (["--against", "x.onnx"], "--against needs --model"),
        (["--inputs", "d"], "--inputs needs --model"),
        (["--model", "m.onnx", "--weights", "w.npz"], "--weights is for --spec without --model"),
        (["--model", "m.onnx", "--cells", "gru"], "--cells picks cells of the default matrix"),
        (["--model", "m.onnx", "--training", "--no-training"], "contradict"),
    ],
)
def test_flags_that_do_not_apply_are_refused(argv, words, capsys):
    assert main(["parity", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def test_inputs_work_for_a_torch_source_and_its_export(torch_pair, tmp_path, capsys):
    import numpy as np

    source, export, _ = torch_pair
    x = np.random.default_rng(5).standard_normal((3, 17, 4)).astype(np.float32)  # [B, T, I]
    np.savez(tmp_path / "x.npz", x=x)
    argv = ["--inputs", str(tmp_path / "x.npz")]
    assert _against(source, export, *argv) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert out.count("passed") >= 2
    (tmp_path / "d").mkdir()
    assert main(["parity", "--model", str(source), "--inputs", str(tmp_path / "d")]) == 2
    assert "holds no input_*.pb" in capsys.readouterr().err


def test_training_parity_on_the_files_own_model_is_opt_in(torch_pair, capsys):
    source, _, _ = torch_pair
    assert main(["parity", "--model", str(source), "--backends", "numpy,torch-cpu"]) == 0
    assert "Training trajectories" not in capsys.readouterr().out
    code = main(["parity", "--model", str(source), "--backends", "numpy,torch-cpu", "--training"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Training trajectories" in out
    rows = [r for r in out.splitlines() if r.startswith("gru ") and "torch-cpu" in r]
    assert rows and rows[0].rstrip().endswith("passed"), out


def test_a_keras_bidirectional_lstm_classifier_through_tf2onnx_reads_and_passes(tmp_path, capsys):
    """tf2onnx writes Keras's Bidirectional(LSTM) + Dense as one bidirectional LSTM node whose
    head reads slices of Y (forward's last step beside backward's first): the final states,
    told by running the file. Alone it reads as LSTM + head; against its source it passes,
    its weights compared; perturbed, it fails."""
    _keras()
    model = make.keras_model("lstm", bidirectional=True, activation=None, seed=9)
    source = tmp_path / "bi.keras"
    model.save(source)
    export = make.export_tf2onnx(model, tmp_path / "bi.onnx")
    assert main(["parity", "--model", str(export), "--backends", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "bidirectional" in out.splitlines()[0] and "head 3" in out.splitlines()[0], out
    assert _against(source, export) == 0, capsys.readouterr()
    assert "(native nodes)" in capsys.readouterr().out
    bad = make.perturb_onnx(export, tmp_path / "bad.onnx", "one-R")
    assert _against(source, bad) == 1
    assert "weights l0.R" in capsys.readouterr().err


def test_an_export_that_bakes_the_last_step_index_fails_naming_its_length(tmp_path, capsys):
    """A final state taken as Gather(y, 4): the example's T - 1 baked in. It runs at longer
    sequences with wrong outputs and fails at shorter ones; the length it is right at is
    found among the graph's integers and named."""
    _torch()
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    net = make.torch_net("lstm", batch_first=False, head=0, H=8, seed=7)
    source = make.save_scripted(net, tmp_path / "lstm.pt")
    export = make.export_onnx(net, tmp_path / "lstm.onnx", T=5)
    model = onnx.load(str(export))
    y = model.graph.output[0].name
    model.graph.initializer.append(numpy_helper.from_array(np.array(4, np.int64), "last"))
    model.graph.node.append(helper.make_node("Gather", [y, "last"], ["h_baked"], axis=0))
    model.graph.output.append(helper.make_tensor_value_info("h_baked", 1, [1, "B", 8]))
    onnx.save(model, str(tmp_path / "baked.onnx"))
    assert _against(source, tmp_path / "baked.onnx") == 1
    err = capsys.readouterr().err
    assert "declares a dynamic sequence axis but is right only at T=5" in err, err


def test_a_source_the_reference_cannot_compute_is_checked_as_it_runs(tmp_path, capsys):
    """LSTM(8) -> LSTM(5) -> Dense: layers of two sizes, which the reference does not compute.
    Alone it is refused naming that; against its export it runs as it is, beside the export
    on the same inputs at every size, outputs compared (a perturbed export fails)."""
    _keras()
    import keras
    import numpy as np

    keras.utils.set_random_seed(11)
    x = keras.Input((None, 4))
    y = keras.layers.LSTM(8, return_sequences=True)(x)
    y = keras.layers.Dense(3)(keras.layers.LSTM(5)(y))
    model = keras.Model(x, y)
    rng = np.random.default_rng(11)
    for weight in model.weights:
        weight.assign(rng.uniform(-0.5, 0.5, weight.shape))
    source = tmp_path / "two.keras"
    model.save(source)
    export = make.export_tf2onnx(model, tmp_path / "two.onnx")
    assert main(["parity", "--model", str(source)]) == 2
    assert "stacks layers of [8, 5] units" in capsys.readouterr().err
    assert _against(source, export) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "not a model the reference computes" in out and "found in the export" in out, out
    bad = make.perturb_onnx(export, tmp_path / "bad.onnx", "all-W")
    assert _against(source, bad) == 1
    assert "~source" in capsys.readouterr().err


@pytest.mark.parametrize("save", ["torchscript", "exported-program"])
def test_torch_layers_of_two_sizes_are_checked_as_they_run(save, tmp_path, capsys):
    """Two nn.GRU of other sizes and a head, as TorchScript or an ExportedProgram: refused
    alone naming the sizes; against an export, run as they are beside it (and a perturbed
    export fails)."""
    _torch()
    import torch

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.GRU(4, 8, batch_first=True)
            self.b = torch.nn.GRU(8, 5, batch_first=True)
            self.head = torch.nn.Linear(5, 3)

        def forward(self, x):
            y, _ = self.a(x)
            y, _ = self.b(y)
            return self.head(y[:, -1])

    torch.manual_seed(5)
    net = Two().eval()
    x = torch.randn(2, 5, 4)
    source = tmp_path / ("two.pt" if save == "torchscript" else "two.pt2")
    if save == "torchscript":
        torch.jit.save(torch.jit.script(net), str(source))
    else:
        torch.export.save(torch.export.export(net, (x,)), str(source))
    export = tmp_path / "two.onnx"
    with make.quiet_export():
        torch.onnx.export(
            net,
            (x,),
            str(export),
            input_names=["x"],
            output_names=["out"],
            opset_version=17,
            dynamic_axes={"x": {0: "B", 1: "T"}},
            dynamo=False,
        )
    assert main(["parity", "--model", str(source)]) == 2
    assert "stacks layers of [8, 5] units" in capsys.readouterr().err
    assert _against(source, export) == 0, capsys.readouterr()
    assert "not a model the reference computes" in capsys.readouterr().out
    bad = make.perturb_onnx(export, tmp_path / "bad.onnx", "all-W", input_size=4)
    assert _against(source, bad) == 1
    capsys.readouterr()
