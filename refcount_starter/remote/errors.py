"""Typed errors of the NATS transport."""

from __future__ import annotations

from ..runtime.errors import RefcountStarterError

__all__ = [
    "NatsAuthenticationError",
    "NatsConnectError",
    "TransportError",
    "TransportNeedsAsyncio",
    "Unencodable",
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


class Unencodable(RefcountStarterError, TypeError):
    """A value that cannot cross nodes; raised by the codec's ``encode``, so by ``send``,
    ``call`` and ``reply`` towards another node, and nothing crossed.

    The one error encoding raises, whatever the value holds: a type that is not registered
    (or is refused), a ``str`` with a lone surrogate, an ``int`` beyond 4,300 decimal digits,
    nesting deeper than the codec's limit, a cycle, a registered object that lacks one of its
    fields. A ``TypeError``, so that code guarding a send with ``except TypeError`` keeps
    working. Its text holds no lone surrogate, so it can itself cross nodes. See ADR-0008.

    Args:
        path: Where in the value the offending part is, e.g. ``"value.message[2]['k']"``.
        type_name: The offending part's type, qualified by its module.
        why: What is wrong with it and what can travel instead.
    """

    def __init__(self, path: str, type_name: str, why: str) -> None:
        super().__init__(path, type_name, why)
        self.path = path
        self.type_name = type_name
        self.why = why

    def __str__(self) -> str:
        return f"{self.path} (type {self.type_name}) cannot cross nodes: {self.why}"
