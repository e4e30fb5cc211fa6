"""Benchmark of the sample's worker against the bare SDK on a local scheduler.

Run it with `make bench` (full) or `make bench-quick` (under a minute); see
BENCHMARKS.md for the method and the latest results.
"""
