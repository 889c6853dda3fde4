"""The command line: the demo, the benchmark suite, help and errors, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from refcount_starter.demo import run_cycles


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refcount_starter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_demo_json_shows_the_leak_and_its_fix() -> None:
    """demo --json: the unmanaged starter leaks one process per cycle, the reference-counted none."""
    result = run_cli("demo", "--cycles", "50", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cycles"] == 50
    unmanaged, refcounted = report["unmanaged"], report["refcounted"]
    assert unmanaged["live_after"] - unmanaged["live_before"] == 50
    assert refcounted["live_after"] == refcounted["live_before"]
    assert refcounted["starters_alive_after"] == 0
    assert report["shared"]["live_after"] == report["shared"]["live_before"]
    assert (
        "is gone" in report["stale_copy_error"]
        and "0003-stale-starter-pid-hazard" in report["stale_copy_error"]
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_series_rise_for_unmanaged_and_stay_flat_for_refcounted(backend: str) -> None:
    """The data behind the plot: the unmanaged line rises with the cycles, the other stays at 0."""
    report = anyio.run(lambda: run_cycles(40, sample_every=5), backend=backend)
    unmanaged = [leaked for _, leaked in report.unmanaged_series]
    assert unmanaged == sorted(unmanaged) and unmanaged[-1] > unmanaged[0]
    assert {leaked for _, leaked in report.refcounted_series} == {0}


def test_demo_plot_renders_a_png(tmp_path: Path) -> None:
    """demo --plot FILE.png writes a PNG picture."""
    pytest.importorskip("matplotlib")
    target = tmp_path / "dpp84.png"
    result = run_cli("demo", "--cycles", "20", "--json", "--plot", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_json_has_the_documented_shape() -> None:
    """bench --quick --json --only: one JSON object with oriented ratios per result."""
    result = run_cli("bench", "--quick", "--json", "--only", "pingpong,spawn", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"python", "backend", "results"} <= set(document)
    assert [r["name"] for r in document["results"]] == ["pingpong", "spawn"]
    for r in document["results"]:
        assert {"name", "value", "unit", "baseline", "ratio", "higher_is_better"} <= set(r)
        assert r["ratio"] == pytest.approx(r["value"] / r["baseline"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("bench", "--only", "nope"), "unknown benchmark(s) nope"),
        (("demo", "--cycles", "zero"), "expected a whole number, got 'zero'"),
        (("demo", "--cycles", "0"), "expected a number >= 1, got 0"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_command_line_errors_are_one_clear_line(args: tuple[str, ...], expected: str) -> None:
    """A bad command line is a clear error on stderr with status 2, never a traceback."""
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [(), ("demo",), ("bench",), ("node",)])
def test_help_describes_every_command(command: tuple[str, ...]) -> None:
    """--help works for the program and each subcommand, and names its options."""
    result = run_cli(*command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout
    if command == ("demo",):
        assert "--cycles" in result.stdout and "--plot" in result.stdout and "--nats" in result.stdout
    if command == ("bench",):
        assert "--quick" in result.stdout and "--only" in result.stdout and "--json" in result.stdout
