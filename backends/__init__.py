"""Implementations of the canonical model: one module per framework."""
