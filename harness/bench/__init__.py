"""Timing: cases and suites, workloads, the timing core, isolated workers, the results store."""
