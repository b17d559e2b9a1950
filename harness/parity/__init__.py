"""Parity: each backend against the NumPy reference in a fixed order of checks (checks.py), the
error budget a model's own amplification allows (budget.py), the matrix of cases (cases.py,
run.py), training trajectories, the record and its report (report.py, junit.py). May import
harness/model, harness/onnx and harness/records; the backends only through harness/registry.py."""
