"""Helpers of the tests on a NATS cluster (the ``cluster`` fixture is in conftest.py): three
servers on loopback whose routes go through proxies that a test can cut (``LocalCluster``,
in ``refcount_starter.remote.localcluster``)."""

from __future__ import annotations

from typing import Any

from refcount_starter.remote.localcluster import LocalCluster
from refcount_starter.remote.natstransport import NatsTransport

from .conftest import HEARTBEAT_INTERVAL, HEARTBEAT_MISSES


def cluster_transport(cluster: LocalCluster, *servers: int, **options: Any) -> NatsTransport:
    """A transport to the cluster's ``servers`` (tried in that order), with the tests' short
    heartbeats."""
    options.setdefault("heartbeat_interval", HEARTBEAT_INTERVAL)
    options.setdefault("heartbeat_misses", HEARTBEAT_MISSES)
    options.setdefault("reconnect_time_wait", 0.1)
    options.setdefault("ping_interval", 1)
    options.setdefault("randomize_servers", False)
    return NatsTransport([cluster.url(index) for index in servers], **options)


def cluster_url(cluster: LocalCluster, *servers: int) -> str:
    """The ``--nats`` value of a node process that knows ``servers`` (tried in that order)."""
    return ",".join(cluster.url(index) for index in servers)
