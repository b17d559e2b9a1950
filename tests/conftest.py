"""The suite's own machine: every test runs with a lock file of its own (a user's benchmark
never stalls the suite, nor the suite a user's benchmark) and without the GPU probe (importing
torch to ask costs seconds a bench; results then record the GPU as not probed). The tests of
the lock and of the probe set these back for themselves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.machine.environment import NO_GPU_PROBE


@pytest.fixture(autouse=True, scope="session")
def own_lock_and_no_gpu_probe(tmp_path_factory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:  # os.environ: worker processes inherit it
        patch.setenv("RNNBENCH_LOCK", str(tmp_path_factory.mktemp("lock") / "rnnbench.lock"))
        patch.setenv(NO_GPU_PROBE, "1")
        yield


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--parity-json",
        metavar="PATH",
        help="a record of the whole parity matrix (tox -e parity: out/parity.json) for "
        "tests/test_parity_record.py to check row by row",
    )
