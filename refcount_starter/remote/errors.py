"""Typed errors of the NATS transport."""

from __future__ import annotations

from ..runtime.errors import RefcountStarterError

__all__ = [
    "NatsAuthenticationError",
    "NatsConnectError",
    "TransportError",
    "TransportNeedsAsyncio",
]


class TransportError(RefcountStarterError, RuntimeError):
    """Base class of the transport's errors."""


class TransportNeedsAsyncio(TransportError):
    """The NATS transport was attached to a node running on another event loop (trio).

    nats-py drives its connection with asyncio tasks, queues and timeouts, so the NATS
    transport works only under asyncio (``anyio.run(main)`` or ``anyio.run(main,
    backend="asyncio")``). The in-memory transport works on both backends.
    """


class NatsConnectError(TransportError):
    """The node could not connect to any NATS server.

    Args:
        servers: The server URLs tried (without credentials).
        cause: What went wrong.
    """

    def __init__(self, servers: list[str], cause: str) -> None:
        super().__init__(servers, cause)
        self.servers = servers
        self.cause = cause

    def __str__(self) -> str:
        return f"could not connect to the NATS server(s) {', '.join(self.servers)}: {self.cause}"


class NatsAuthenticationError(NatsConnectError):
    """The NATS server refused the node's credentials (token, user/password, nkey, TLS)."""

    def __str__(self) -> str:
        return (
            f"the NATS server(s) {', '.join(self.servers)} refused this node's credentials "
            f"({self.cause}); check the token, user/password, nkey seed or client certificate"
        )
