"""The model: its spec (spec.py, the cell variants declared once), canonical weights and their
layouts, outputs, FLOP counts, and what a backend provides (protocol.py). The bottom layer: it
imports nothing of rnnbench but harness/files (a user's weights file is sized before it is
read) and the top-level helpers."""
