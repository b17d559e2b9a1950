"""rnnbench: prove recurrent models equal across frameworks, then time them."""

__version__ = "0.1.0"
