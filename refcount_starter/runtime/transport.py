"""The one interface through which nodes reach each other, and its in-memory implementation.

A transport carries signals between nodes, in order per pair of nodes, or tells the node
that a peer is gone. The in-memory network connects nodes of one OS process; the NATS
transport (``refcount_starter.remote``) connects OS processes and machines. See ADR-0006.
"""

from __future__ import annotations

from typing import Protocol

from .reasons import NoConnection
from .signals import Signal, destination_node

__all__ = ["InMemoryNetwork", "InMemoryTransport", "NodeHooks", "Transport"]


class NodeHooks(Protocol):
    """What a transport may call on the node it serves."""

    @property
    def name(self) -> str: ...

    @property
    def incarnation(self) -> int: ...

    def deliver(self, signal: Signal) -> None:
        """Apply a signal that arrived from another node."""

    def undeliverable(self, signal: Signal, reason: NoConnection) -> None:
        """A signal this node sent could not be delivered."""

    def peer_down(self, node: str) -> None:
        """Every link and monitor across to ``node`` fires ``NoConnection``."""


class Transport(Protocol):
    """Carries signals to other nodes, in the order sent, or reports the peer gone."""

    async def attach(self, node: NodeHooks) -> None:
        """Start serving ``node``; called when the node starts."""

    def send(self, signal: Signal) -> None:
        """Send a signal to the node that ``destination_node(signal)`` names; never blocks.

        A signal that cannot be delivered is reported through ``node.undeliverable``.
        """

    async def detach(self) -> None:
        """Stop serving the node; its peers see ``peer_down``."""


class InMemoryNetwork:
    """Nodes of one OS process, connected directly: a signal is applied at once, in order.

    Example::

        net = InMemoryNetwork()
        async with Node("a", transport=net.transport()) as a, Node("b", transport=net.transport()) as b:
            ...
    """

    def __init__(self) -> None:
        self._nodes: dict[str, NodeHooks] = {}

    def transport(self) -> InMemoryTransport:
        """A transport for one node on this network."""
        return InMemoryTransport(self)

    @property
    def node_names(self) -> list[str]:
        """The names of the nodes attached now."""
        return list(self._nodes)

    def disconnect(self, name: str) -> None:
        """Cut the node ``name`` off, as a crash or a partition would, while it keeps running.

        Both sides see the other go: every peer gets ``peer_down(name)`` and the cut-off node
        gets ``peer_down`` for every peer, so each link and monitor across fires
        ``NoConnection``; later signals from the cut-off node are undeliverable. Its name is
        free again, for a new incarnation.

        Raises:
            ValueError: No node of that name is attached.
        """
        node = self._nodes.pop(name, None)
        if node is None:
            raise ValueError(f"no node named {name!r} is attached to this network")
        for peer in list(self._nodes.values()):
            peer.peer_down(name)
            node.peer_down(peer.name)

    def _attach(self, node: NodeHooks) -> None:
        if node.name in self._nodes:
            raise ValueError(f"a node named {node.name!r} is already attached to this network")
        self._nodes[node.name] = node

    def _detach(self, node: NodeHooks) -> None:
        if self._nodes.get(node.name) is node:
            del self._nodes[node.name]
            for peer in list(self._nodes.values()):
                peer.peer_down(node.name)

    def _send(self, source: NodeHooks, signal: Signal) -> None:
        peer = self._nodes.get(destination_node(signal))
        if peer is None or self._nodes.get(source.name) is not source:
            source.undeliverable(signal, NoConnection(destination_node(signal)))
        else:
            peer.deliver(signal)


class InMemoryTransport:
    """One node's attachment to an ``InMemoryNetwork``."""

    def __init__(self, network: InMemoryNetwork) -> None:
        self._network = network
        # Kept after detach, so that a late signal is reported undeliverable to its node.
        self._node: NodeHooks | None = None

    async def attach(self, node: NodeHooks) -> None:
        self._network._attach(node)
        self._node = node

    def send(self, signal: Signal) -> None:
        if self._node is None:
            raise RuntimeError("this transport is not attached to a running node")
        # After detach (or disconnect) the network no longer holds this node: undeliverable.
        self._network._send(self._node, signal)

    async def detach(self) -> None:
        if self._node is not None:
            self._network._detach(self._node)
