"""Benchmarks: `python -m bench [audit|guard|export]`. Not tests; see bench/README.md."""
