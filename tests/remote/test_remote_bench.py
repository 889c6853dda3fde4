"""The ``nats_roundtrip`` benchmark runs against a given server, and skips where it cannot."""

from __future__ import annotations

import anyio
import pytest

from refcount_starter.bench.remote_bench import URL_VARIABLE, nats_roundtrip
from refcount_starter.bench.suite import Options

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
