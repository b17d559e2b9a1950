"""Counted, not timed: the parallel-in-time sweep (parallel_in_time.py) solves a grid of models
by Newton and quasi-Newton iterations and records how many they need, with the work and depth
those iterations cost (parallel_in_time_work.py). It writes its typed record
(harness/records/parallel_in_time.py); it may import harness/model,
harness/records and harness/parity (each solve is compared with its sequential reference)."""
