"""Benchmarks: one module per benchmark, each runnable as `python -m bench.<name>`; results and the exact
commands go to BENCHMARKS.md."""

__all__: list[str] = []
