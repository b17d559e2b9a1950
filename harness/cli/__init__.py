"""The `rnnbench` command: one small module per command group. It parses and prints; what a
command does lives below it (harness/model_file/verify.py, harness/bench, harness/analysis).
It may import every package; nothing imports it (but harness/__main__.py)."""
