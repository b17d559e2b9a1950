"""Timing: cases and suites, workloads, the timing core, isolated workers, the results store's
use. May import harness/model, harness/machine, harness/records, harness/parity and
harness/model_file (bench --model); backends only through harness/registry.py."""
