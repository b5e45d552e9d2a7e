"""`python -m bench`: the scale benchmark (bench/run.py)."""

from bench.run import main

raise SystemExit(main())
