"""Benchmarks (not timed tests): `python -m bench`; see bench/README.md."""
