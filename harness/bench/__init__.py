"""Timing: cases and suites, workloads, the timing core, isolated workers, the results store's
use. May import harness/model, harness/machine, harness/records, harness/parity,
harness/model_file (bench --model) and harness/load (the load mode's server); backends only
through harness/registry.py."""
