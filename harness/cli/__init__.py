"""The `rnnbench` command: one small module per command group."""
