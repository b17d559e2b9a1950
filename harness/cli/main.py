"""The `rnnbench` command. Start with `rnnbench bench` (time a suite, or --model FILE) and
`rnnbench report` (the answer, from results files); `rnnbench parity --model FILE --against
EXPORT` checks an export in CI. Each command's --help says more."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from harness import registry
from harness.analysis.compare import GateError
from harness.bench.suites import SuiteError
from harness.cli import bench, load, parallel_in_time, parity, report, tools
from harness.cli.errors import UsageError, apply_memory_budget, check_outputs
from harness.machine.lock import LockError
from harness.model.errors import BadInput
from harness.model.protocol import NotSupported
from harness.model.spec import SpecError
from harness.model.weights import WeightsError
from harness.records.store import ResultsError
from harness.terminal import say


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    parity.add_parser(sub)
    tools.add_parsers(sub)
    bench.add_parser(sub)
    load.add_parser(sub)
    report.add_parsers(sub)
    parallel_in_time.add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with _environment_kept():  # --memory-budget reaches workers; not the caller's next command
        return _run(args)


def _run(args) -> int:
    try:
        apply_memory_budget(args)
        check_outputs(args)
        return args.run(args)
    except (
        UsageError,
        BadInput,
        SpecError,
        WeightsError,
        registry.UnknownBackend,
        NotSupported,
        SuiteError,
        ResultsError,
        GateError,
        LockError,
    ) as exc:
        say(f"rnnbench: error: {exc}", err=True)
        return 2
    except BrokenPipeError:  # `rnnbench parity | head`
        sys.stderr.close()
        return 0


@contextlib.contextmanager
def _environment_kept():
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
