"""A skip says what is missing; everything else that goes wrong is an error with a non-zero
exit: a mistyped import inside a backend, a malformed export, an exporter's wrong output, a
results file that cannot be written, a write that dies half way."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness import registry
from harness.bench import engine, group
from harness.cli.main import main
from harness.model.protocol import NotSupported
from harness.model.spec import ModelSpec
from harness.model.weights import init_weights
from harness.records import store as results

TINY_SUITE = (
    'name = "tiny"\nbudget_s = 5\n[timing]\nrounds = 2\nmin_round_s = 0.002\n'
    'pause_s = 0.0\nwarmup_s = 0.0\n[[sweep]]\nbackends = ["numpy"]\n'
    'modes = ["gemm"]\ncell = ["rnn"]\nbatch = [2]\nsteps = [3]\ninput = [4]\nhidden = [5]\n'
)


@pytest.fixture
def mistyped_numpy(monkeypatch):
    """The numpy backend's module path mistyped, as a broken import inside a backend is."""
    entry = registry.BACKENDS["numpy"]
    broken = registry.Entry(
        **{**entry.__dict__, "import_path": "backends.numpy_bakend:NumpyBackend"}
    )
    monkeypatch.setitem(registry.BACKENDS, "numpy", broken)


def test_a_mistyped_import_fails_parity_naming_the_module(mistyped_numpy, capsys):
    argv = ["parity", "--backends", "numpy", "--cells", "rnn", "--dtype", "float32"]
    assert main([*argv, "--no-training"]) == 1
    err = capsys.readouterr().err
    assert "ModuleNotFoundError" in err and "backends.numpy_bakend" in err
    assert "not installed" not in err


def test_a_mistyped_import_fails_bench_naming_the_module(
    mistyped_numpy, tmp_path, monkeypatch, capsys
):
    # the workers must see the broken registry: fork them from this process instead of spawn
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(group.multiprocessing, "get_context", lambda method: fork)
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "r.json"
    assert main(["bench", "--suite", str(suite), "--out", str(out)]) == 1
    (record,) = results.load_results(out).cases
    assert record.status == "error" and "backends.numpy_bakend" in record.reason
    assert "backends.numpy_bakend" in capsys.readouterr().out


def test_an_absent_optional_package_is_still_a_skip(monkeypatch):
    entry = registry.BACKENDS["numpy"]
    absent = registry.Entry(
        **{**entry.__dict__, "import_path": "absent_pkg.mod:X", "requires": ("absent_pkg",)}
    )
    monkeypatch.setitem(registry.BACKENDS, "numpy", absent)
    with pytest.raises(NotSupported, match="absent_pkg is not installed"):
        registry.get_backend("numpy")


def test_an_unwritable_out_is_refused_before_anything_is_measured(tmp_path, capsys, monkeypatch):
    started = []
    monkeypatch.setattr(engine, "measure_group", lambda *a: started.append(a) or [])
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    assert main(["bench", "--suite", str(suite), "--out", "/proc/rnnbench-x.json"]) == 2
    assert "cannot write --out /proc/rnnbench-x.json" in capsys.readouterr().err
    assert started == []
    folder = tmp_path / "a-folder.json"
    folder.mkdir()
    with pytest.raises(results.ResultsError, match="it is a folder"):
        results.check_writable(folder)


def test_a_write_that_dies_half_way_keeps_the_old_file(tmp_path):
    """The file size limit stops the write of the new document after 4 KiB, as a full disk
    would: an atomic write leaves the old file whole; a plain one would leave 4 KiB of the
    new one in its place."""
    path = tmp_path / "r.json"
    script = textwrap.dedent(f"""
        import resource, signal
        from harness.records import store as results
        from harness.bench.suites import load_suite
        doc = results.new_document(load_suite("quick"), {{"machine": "m"}}, "2026-01-01")
        results.save_results({str(path)!r}, doc)
        before = open({str(path)!r}).read()
        doc.cases = [results.CaseRecord(id=c.id, case=c.as_dict(), status="skipped",
                                        reason="x" * 400) for c in load_suite("quick").cases]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            results.save_results({str(path)!r}, doc)
        except OSError as exc:
            print("write failed:", exc.errno)
        assert open({str(path)!r}).read() == before, "the old file was damaged"
        print("old file intact")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "write failed: 27" in done.stdout and "old file intact" in done.stdout  # EFBIG
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def _unknown_op_model(path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_only_known_kernel_gaps_of_onnxruntime_are_skips(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from backends import onnx_export
    from harness.onnx.session import is_kernel_gap

    rnn = ModelSpec("rnn", 3, 4, dtype="float64")  # no RNN kernel for float64 at opset 22
    onnx_export.export("direct", rnn, init_weights(rnn), tmp_path / "rnn.onnx")
    with pytest.raises(Exception) as gap:  # noqa: B017 (ORT raises its own types)
        ort.InferenceSession(str(tmp_path / "rnn.onnx"), providers=["CPUExecutionProvider"])
    assert is_kernel_gap(gap.value), str(gap.value)
    lstm = ModelSpec("lstm", 3, 4, dtype="float64")  # loads, then has no float64 kernel
    prepared = registry.get_backend("ort-direct-cpu").build(lstm, init_weights(lstm))
    with pytest.raises(NotSupported, match="does not support double"):
        prepared.forward(np.zeros((2, 1, 3)))
    _unknown_op_model(tmp_path / "bad.onnx")
    with pytest.raises(Exception) as broken:  # noqa: B017
        ort.InferenceSession(str(tmp_path / "bad.onnx"), providers=["CPUExecutionProvider"])
    assert not is_kernel_gap(broken.value), str(broken.value)


def test_a_malformed_export_is_an_error_not_a_skip(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from backends import onnx_export

    def malformed(exporter, spec, weights, path, example_T=onnx_export.EXAMPLE_T):
        _unknown_op_model(path)
        io = {
            "x": "x",
            "x_layout": "time_major",
            "seq_lens": None,
            "states": [],
            "state_layout": "stacked",
            "outputs": ["y"],
        }
        return onnx_export.Exported(0.0, io)

    monkeypatch.setattr(onnx_export, "export", malformed)
    spec = ModelSpec("rnn", 3, 4)
    prepared = registry.get_backend("ort-direct-cpu").build(spec, init_weights(spec))
    with pytest.raises(Exception) as raised:  # noqa: B017
        prepared.forward(np.zeros((2, 1, 3), np.float32))
    assert not isinstance(raised.value, NotSupported)


def test_an_exporter_that_writes_the_wrong_outputs_is_an_error(monkeypatch, tmp_path):
    pytest.importorskip("onnx")
    from backends import onnx_export

    spec = ModelSpec("rnn", 3, 4)
    monkeypatch.setattr(onnx_export, "output_roles", lambda spec: ["y", "h_n", "extra"])
    with pytest.raises(onnx_export.ExportError, match="expected"):
        onnx_export.export("direct", spec, init_weights(spec), tmp_path / "m.onnx")
