"""Nodes on several machines: codec, remote table (closures), sessions, transport.

The codec needs ``msgspec`` and the NATS transport ``nats-py`` (the ``nats`` extra); they are
imported on first use of their names, so that the remote table works without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .codec import DecodeError, decode, encode, register_type, registers
    from .errors import NatsAuthenticationError, NatsConnectError, TransportError, TransportNeedsAsyncio
    from .natstransport import NatsTransport, TransportStatistics
    from .node_main import run_node

__all__ = [
    "DecodeError",
    "NatsAuthenticationError",
    "NatsConnectError",
    "NatsTransport",
    "TransportError",
    "TransportNeedsAsyncio",
    "TransportStatistics",
    "decode",
    "encode",
    "register_type",
    "registers",
    "run_node",
]

_WHERE = {
    "DecodeError": "codec",
    "decode": "codec",
    "encode": "codec",
    "register_type": "codec",
    "registers": "codec",
    "NatsAuthenticationError": "errors",
    "NatsConnectError": "errors",
    "TransportError": "errors",
    "TransportNeedsAsyncio": "errors",
    "NatsTransport": "natstransport",
    "TransportStatistics": "natstransport",
    "run_node": "node_main",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
