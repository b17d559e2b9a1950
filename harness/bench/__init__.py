"""Timing: cases and suites, workloads, the timing core, isolated workers, the results store's
use. May import harness/model, harness/machine, harness/records, harness/parity,
harness/model_file (bench --model), harness/load (the load mode's server) and harness/predict (a
solve predicted before it is timed); backends only through harness/registry.py."""
