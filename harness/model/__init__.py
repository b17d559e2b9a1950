"""The model: its spec, canonical weights, gate layouts, outputs, and what a backend provides."""
