"""The benchmark registry, its options and results, and the runner."""

from __future__ import annotations

import gc
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import attrs

__all__ = [
    "BENCHMARKS",
    "Measure",
    "Options",
    "Result",
    "benchmark",
    "benchmark_names",
    "interleave",
    "run_suite",
]


@attrs.frozen
class Options:
    """How a suite run is sized.

    Args:
        quick: Smaller sizes and fewer rounds, so the whole suite ends within a minute.
        backend: ``"asyncio"`` or ``"trio"``.
        rounds: Interleaved rounds per benchmark (medians are reported).
    """

    quick: bool = False
    backend: str = "asyncio"
    rounds: int = 5

    def size(self, full: int, quick: int) -> int:
        """``full`` for a normal run, ``quick`` for a quick one."""
        return quick if self.quick else full

    @property
    def round_count(self) -> int:
        """Rounds to run: fewer when quick."""
        return min(self.rounds, 3) if self.quick else self.rounds


@attrs.frozen
class Result:
    """One benchmark's outcome.

    Args:
        name: The benchmark's name.
        value: The library's median.
        unit: The unit of ``value`` and ``baseline``.
        baseline: The raw-anyio baseline's median, measured in the same run.
        ratio: Oriented so that above 1 is better than the baseline.
        higher_is_better: Whether a larger ``value`` is better.
        target: The ratio this benchmark is expected to reach, where one is set.
    """

    name: str
    value: float
    unit: str
    baseline: float
    ratio: float
    higher_is_better: bool
    target: float | None = None

    @classmethod
    def compare(
        cls,
        name: str,
        ours: Iterable[float],
        base: Iterable[float],
        unit: str,
        *,
        higher_is_better: bool,
        target: float | None = None,
    ) -> Result:
        """Medians of both series and their oriented ratio."""
        value = statistics.median(ours)
        baseline = statistics.median(base)
        if higher_is_better:
            ratio = value / baseline if baseline else float("inf")
        else:
            ratio = baseline / value if value else float("inf")
        return cls(name, value, unit, baseline, ratio, higher_is_better, target)

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``bench --json`` prints for this result."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "higher_is_better": self.higher_is_better,
            "target": self.target,
        }


#: A benchmark: given the options, returns its results.
Measure = Callable[[Options], Awaitable[list[Result]]]

#: Every benchmark by name, in the order they run.
BENCHMARKS: dict[str, Measure] = {}


def benchmark(name: str) -> Callable[[Measure], Measure]:
    """Register a benchmark under ``name``."""

    def register(fn: Measure) -> Measure:
        if name in BENCHMARKS:
            raise ValueError(f"a benchmark named {name!r} is already registered")
        BENCHMARKS[name] = fn
        return fn

    return register


async def interleave(
    options: Options,
    ours: Callable[[], Awaitable[float]],
    base: Callable[[], Awaitable[float]],
) -> tuple[list[float], list[float]]:
    """Run ``ours`` and ``base`` alternately for the options' rounds; return both series."""
    ours_values: list[float] = []
    base_values: list[float] = []
    for round_ in range(options.round_count):
        # Alternate which goes first, so that warm-up favours neither.
        first, second = (base, ours) if round_ % 2 == 0 else (ours, base)
        for fn in (first, second):
            gc.collect()
            value = await fn()
            (ours_values if fn is ours else base_values).append(value)
    return ours_values, base_values


def _load_all() -> None:
    # Importing a module registers its benchmarks.
    from . import runtime_bench  # noqa: F401

    for module in ("supervisor_bench", "starter_bench", "remote_bench"):
        try:
            __import__(f"{__package__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module}":
                raise


def benchmark_names() -> list[str]:
    """Every benchmark's name, in the order they run (importing the modules that register them)."""
    _load_all()
    return list(BENCHMARKS)


def run_suite(
    names: list[str] | None,
    options: Options,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the named benchmarks (all when ``names`` is None); return the JSON document.

    Raises:
        KeyError: A name is not a benchmark; the message lists the known ones.
    """
    _load_all()
    chosen = names or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        raise KeyError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in chosen:
        if progress is not None:
            progress(name)
        started = time.perf_counter()
        measured = anyio.run(BENCHMARKS[name], options, backend=options.backend)
        if not measured:
            skipped.append(name)  # it could not run here (it logged why)
        for result in measured:
            entry = result.to_json()
            entry["seconds"] = round(time.perf_counter() - started, 3)
            results.append(entry)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": sys.platform,
        "backend": options.backend,
        "quick": options.quick,
        "results": results,
        "skipped": skipped,
    }
