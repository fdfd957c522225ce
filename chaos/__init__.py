"""Faults under load, proven by history: `make chaos` (python -m chaos).

A separate program, like bench/: the product never imports it.
"""
