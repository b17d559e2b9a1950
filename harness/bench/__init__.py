"""Timing: cases and suites, workloads, the timing core, isolated workers, the results store's
use. May import harness/model, harness/machine, harness/records, harness/parity and
harness/model_file (bench --model) and harness/predict (a solve predicted before it is
timed); backends only through harness/registry.py."""
