"""One suite over many machines: a Dask client (runner.py) sends each interleaved group to a
worker (task.py), which times it in a process of its own (group_process.py) through the same
engine as a local run."""
