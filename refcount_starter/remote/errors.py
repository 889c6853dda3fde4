"""Typed errors of the NATS transport."""

from __future__ import annotations

from ..runtime.errors import RefcountStarterError

__all__ = [
    "MessageTooLarge",
    "NatsAuthenticationError",
    "NatsConnectError",
    "NodeNameTaken",
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


class MessageTooLarge(TransportError):
    """A signal's encoding is larger than the transport's ``max_message_size``.

    Raised by the ``send`` (or ``call``, ``reply``) that tried to send it, before anything was
    queued: nothing was sent, and the session with the other node goes on. A message up to
    the limit is split into fragments of the server's ``max_payload`` and arrives whole
    (ADR-0006).

    Args:
        node: The node it was addressed to.
        size: The size of its encoding, in bytes.
        limit: The transport's ``max_message_size``.
    """

    def __init__(self, node: str, size: int, limit: int) -> None:
        super().__init__(node, size, limit)
        self.node = node
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return (
            f"a message of {self.size} bytes (encoded) for node {self.node!r} is larger than "
            f"this transport's max_message_size of {self.limit} bytes; nothing was sent. "
            "Send a reference to the data instead (a file, an object store key), or raise "
            "max_message_size (RS_NATS_MAX_MESSAGE_SIZE)"
        )


class NodeNameTaken(TransportError):
    """Another live node already uses this node's name on the NATS server (ADR-0012).

    Args:
        name: The node's name.
        holder: The incarnation of the node that holds it.
        why: How this node learned it.
    """

    def __init__(self, name: str, holder: int, why: str) -> None:
        super().__init__(name, holder, why)
        self.name = name
        self.holder = holder
        self.why = why

    def __str__(self) -> str:
        return (
            f"the node name {self.name!r} is taken by a live node (incarnation {self.holder}, "
            f"{self.why}); choose another name or stop that node first"
        )
