"""ONNX's own backend node tests for RNN, GRU and LSTM, written as onnx ships them in its test
data (model.onnx and test_data_set_0/input_*.pb, output_*.pb), generated from the case
definitions that the onnx package itself carries (onnx.backend.test.case.node)."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

RECURRENT = ("rnn", "gru", "lstm")


def write_node_tests(folder: Path) -> dict[str, Path]:
    """name -> the test's folder, for every RNN/GRU/LSTM node test of the installed onnx."""
    from onnx import numpy_helper

    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = [c for c in collect_testcases(None) if any(k in c.name for k in RECURRENT)]
    out = {}
    for case in cases:
        if case.model.graph.node[0].op_type not in ("RNN", "GRU", "LSTM"):
            continue
        test = folder / case.name
        data = test / "test_data_set_0"
        data.mkdir(parents=True, exist_ok=True)
        (test / "model.onnx").write_bytes(case.model.SerializeToString())
        inputs, outputs = case.data_sets[0]
        graph = case.model.graph
        for kind, values, names in (
            ("input", inputs, graph.input),
            ("output", outputs, graph.output),
        ):
            for k, value in enumerate(values):
                tensor = numpy_helper.from_array(value, names[k].name)
                (data / f"{kind}_{k}.pb").write_bytes(tensor.SerializeToString())
        out[case.name] = test
    return out
