"""The benchmark suite behind ``python -m refcount_starter bench``.

Every benchmark runs the library and a raw-anyio baseline in the same process, in
interleaved rounds, and reports the median of each with their ratio, oriented so that a
ratio above 1 is better than the baseline. Absolute numbers drift between machines; ratios
measured in one run are what the targets in the user guide refer to.
"""

from __future__ import annotations

from .suite import BENCHMARKS, Options, Result, benchmark, run_suite

__all__ = ["BENCHMARKS", "Options", "Result", "benchmark", "run_suite"]
