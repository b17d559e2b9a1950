"""Parity: each backend against the NumPy reference, in a fixed order of checks."""
