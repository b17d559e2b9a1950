"""Reading a user's ONNX file and checking it is linear in its nodes (issue 25: 100,000
Identity nodes before the recurrence ran for over 400 s; 1k, 2k, 4k nodes took 5.5, 11.8,
28.5 s). A speed backend, so a benchmark here, never a timed assertion; that such a chain is
read right is tests/test_memory_bombs.py's."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rnnbench[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from harness.model_file.check import check_runtime, plan_sizes  # noqa: E402
from harness.model_file.model import open_model  # noqa: E402
from tests import bomb_files  # noqa: E402

NODES = 100_000


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain") / f"identity-{NODES}.onnx"
    bomb_files.identity_chain(path, NODES)
    return path


def test_read_and_check_100k_identity_nodes(benchmark, chain):
    def read_and_check():
        model = open_model(chain)
        return check_runtime("model-file", model.runtime, model, plan_sizes([model.runtime]))

    benchmark.extra_info["nodes"] = NODES + 1
    result = benchmark.pedantic(read_and_check, rounds=3, iterations=1)
    assert result.status == "passed", result.reason
