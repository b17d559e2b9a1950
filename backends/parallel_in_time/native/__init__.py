"""The quasi-Newton iteration's compiled kernels (quasi_newton.c): C compiled on this machine on
first use, loaded with ctypes. Imports nothing from the rest of rnnbench."""
