"""Nodes on several machines: codec, remote table (closures), sessions, transport.

The codec needs ``msgspec`` and the NATS transport ``nats-py`` (the ``nats`` extra); they are
imported on first use of their names, so that the remote table (``closures``) and the type
registry (``registry.register_type``) work without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .codec import DecodeError, decode, encode, stand_in
    from .errors import (
        MessageTooLarge,
        NatsAuthenticationError,
        NatsConnectError,
        NodeNameTaken,
        TransportError,
        TransportNeedsAsyncio,
        Unencodable,
    )
    from .natsoptions import NatsOptions
    from .natstransport import NatsTransport, TransportStatistics
    from .registry import register_type, registers
    from .service import RemoteSpawnFailed, spawn_remote, start_spawner

__all__ = [
    "DecodeError",
    "MessageTooLarge",
    "NatsAuthenticationError",
    "NatsConnectError",
    "NatsOptions",
    "NatsTransport",
    "NodeNameTaken",
    "RemoteSpawnFailed",
    "TransportError",
    "TransportNeedsAsyncio",
    "TransportStatistics",
    "Unencodable",
    "decode",
    "encode",
    "register_type",
    "registers",
    "spawn_remote",
    "stand_in",
    "start_spawner",
]

_WHERE = {
    "DecodeError": "codec",
    "decode": "codec",
    "encode": "codec",
    "stand_in": "codec",
    "MessageTooLarge": "errors",
    "NodeNameTaken": "errors",
    "Unencodable": "errors",
    "NatsOptions": "natsoptions",
    "register_type": "registry",
    "registers": "registry",
    "spawn_remote": "service",
    "start_spawner": "service",
    "RemoteSpawnFailed": "service",
    "NatsAuthenticationError": "errors",
    "NatsConnectError": "errors",
    "TransportError": "errors",
    "TransportNeedsAsyncio": "errors",
    "NatsTransport": "natstransport",
    "TransportStatistics": "natstransport",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
