"""Benchmarks, run by hand: `python -m bench` (the scale table, bench/run.py) and bench/soak.py."""
