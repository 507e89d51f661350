"""Benchmarks: one module per benchmark, each runnable as `python -m bench.<name>`; results and the exact
commands go to BENCHMARKS.md.

On top, like the application: may import the core, every stage, `infra/` and `console/`."""

__all__: list[str] = []
