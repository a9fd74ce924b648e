"""Benchmarks (`make bench`): the tracker's speed, each figure a ratio against a baseline measured
in the same run on the same Redis. Not tests: one command prints a table and writes latest.json."""
