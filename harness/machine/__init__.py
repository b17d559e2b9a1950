"""The machine a case is timed on: what it is (environment.py, cpu_limits.py, facts.py: the
environment as the analysis reads it), one benchmark at a time on it (lock.py), and what it can
do as measured (model.py: the best product and the copy bandwidth by working set)."""
