"""Benchmarks: each prints a table; none is part of the test pass/fail."""
