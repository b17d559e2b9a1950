"""rnnbench's pytest plugin, registered by the `pytest11` entry point of an installed rnnbench
(no `-p` needed; `-p harness.pytest_plugin` beside the entry point would register it twice).
It gives the fixture `rnnbench_parity`:

    def test_export(rnnbench_parity):
        rnnbench_parity("model.pt", against="model.onnx")

which checks a model file against its export as `rnnbench parity --model --against` does
(harness/model_file/api.py), returns the parity record, and fails the test when the record did not
pass, with the first differing tensor and the count of failures. Importing this module imports
pytest alone: torch, TensorFlow and ONNX are imported when the fixture is called, so that every
pytest run of a project with rnnbench installed starts as fast as it did."""

from __future__ import annotations

import pytest


@pytest.fixture
def rnnbench_parity():
    """check(source, against=None, inputs=None, *, spec=None, backends=None) -> ParityRecord;
    a record that did not pass fails the test."""

    def check(source, against=None, inputs=None, **options):
        from harness.escape import for_terminal
        from harness.model_file.api import check_export, failure_lines
        from harness.parity.report import compared

        record = check_export(source, against, inputs, **options)
        if not record.passed:
            lines = failure_lines(record)
            if compared(record.results) == 0:  # nothing compared, and the first skip's reason
                found = "; ".join(lines[:2])
            else:
                found = f"{len(lines)} failure{'s' if len(lines) > 1 else ''}; first: {lines[0]}"
            what = f"{source}" + (f" against {against}" if against else "")
            pytest.fail(for_terminal(f"rnnbench parity of {what}: {found}"), pytrace=False)
        return record

    return check
