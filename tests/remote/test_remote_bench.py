"""The NATS benchmarks run against a given server, and skip where they cannot."""

from __future__ import annotations

import anyio
import pytest

from refcount_starter.bench.remote_bench import URL_VARIABLE, nats_burst, nats_large, nats_roundtrip
from refcount_starter.bench.suite import BENCHMARKS, Options, run_suite

from .natsserver import NatsServer
from .nodeproc import url_with_credentials

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]


def test_it_measures_both_sides_on_the_given_server(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_VARIABLE, url_with_credentials(nats_server))
    results = anyio.run(nats_roundtrip, Options(quick=True, rounds=1), backend="asyncio")
    assert [r.name for r in results] == ["nats_roundtrip"]
    assert results[0].value > 0 and results[0].baseline > 0 and results[0].target == 0.77


def test_it_reports_nothing_on_trio() -> None:
    assert anyio.run(nats_roundtrip, Options(quick=True, backend="trio"), backend="trio") == []


@pytest.mark.parametrize(
    ("measure", "name", "unit"),
    [(nats_burst, "nats_burst", "messages/s"), (nats_large, "nats_large", "MiB/s")],
)
def test_the_burst_and_large_benchmarks_measure_both_sides(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, measure: object, name: str, unit: str
) -> None:
    monkeypatch.setenv(URL_VARIABLE, url_with_credentials(nats_server))
    results = anyio.run(measure, Options(quick=True, rounds=1), backend="asyncio")  # type: ignore[arg-type]
    assert [(r.name, r.unit, r.target) for r in results] == [(name, unit, 0.5)]
    assert results[0].value > 0 and results[0].baseline > 0


def test_the_nats_benchmarks_are_registered_in_the_suite() -> None:
    run_suite(["nats_roundtrip"], Options(quick=True, backend="trio"))  # loads every module
    assert {"nats_roundtrip", "nats_burst", "nats_large"} <= set(BENCHMARKS)
