"""Snapshots across nodes: each node runs a snapshot service; an observer asks them all.

The service is a process registered as ``SNAPSHOT_SERVICE`` on its node. An observer sends it
``("rs.snapshot?", reply_to, tag)`` by name (``(SNAPSHOT_SERVICE, node)``, so no pid needs to
be known) and gets back ``("rs.snapshot!", tag, text)``, the node's snapshot as JSON text
with at most ``REMOTE_PROCESSES`` processes (a NATS message is at most 1 MB by default).
Only plain values cross, so the codec needs no registered type. A node that does not answer
within the timeout (not running, or running no service) is shown with an ``error``.

Starting from the nodes it is given, the observer also asks every peer that an answer names
(a NATS transport reports its peers), so one node's name is enough to see the nodes it talks
to.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.to_thread

from ..runtime import Node, Pid, Process
from .collect import take_snapshot
from .document import page_document

__all__ = [
    "REMOTE_PROCESSES",
    "SNAPSHOT_SERVICE",
    "ask_nodes",
    "snapshot_service",
    "start_snapshot_service",
]

_log = logging.getLogger("refcount_starter.observe.cluster")

#: The name the snapshot service is registered under, on every node that runs one.
SNAPSHOT_SERVICE = "refcount_starter.snapshots"
#: How many processes (supervisors, starters and the fullest mailboxes first) an answer carries.
REMOTE_PROCESSES = 1000

_ASK = "rs.snapshot?"
_ANSWER = "rs.snapshot!"
_tags = itertools.count(1)


async def snapshot_service(p: Process, transport: object = None) -> None:
    """Answer snapshot requests from other nodes (the process behind ``SNAPSHOT_SERVICE``).

    Args:
        p: The service's process.
        transport: The node's transport, whose peers and counters the snapshot shows.
    """
    while True:
        message = await p.receive(tuple, where=lambda m: len(m) == 3 and m[0] == _ASK)
        _, reply_to, tag = message
        if type(reply_to) is not Pid or type(tag) is not int:
            _log.warning(
                "node %s: malformed snapshot request %r",
                p.node.name,
                message,
                extra={"node": p.node.name, "pid": str(p.pid)},
            )
            continue
        snapshot = await take_snapshot(p.node, transport=transport)
        text = await anyio.to_thread.run_sync(page_document, [snapshot], REMOTE_PROCESSES)
        # page_document wraps one node as {"nodes": [node]}: send the node itself.
        p.send(reply_to, (_ANSWER, tag, json.dumps(json.loads(text)["nodes"][0])))


def start_snapshot_service(node: Node, transport: object = None) -> Pid:
    """Spawn the snapshot service on ``node`` (one per node), so that observers on other nodes
    see it.

    Args:
        node: A running node.
        transport: The node's transport (its peers and counters are shown).

    Returns:
        The service's pid.

    Raises:
        NameTaken: The node already runs one.
    """
    return node.spawn(snapshot_service, transport, name=SNAPSHOT_SERVICE)


async def ask_nodes(
    me: Process, names: Iterable[str], *, timeout: float = 5.0, follow_peers: bool = True
) -> list[dict[str, Any]]:
    """Ask the snapshot service of each named node (and, with ``follow_peers``, of every
    peer their answers name) for a snapshot.

    Args:
        me: The process that asks (the answers come to its mailbox).
        names: The nodes to ask first.
        timeout: Seconds to wait for all the answers of one round.
        follow_peers: Also ask the peers that the answers name, round after round.

    Returns:
        One JSON document per node, sorted by node name: a snapshot, or
        ``{"node": name, "error": ...}`` for a node that did not answer.
    """
    # Answers that came after an earlier round's timeout: dropped.
    while True:
        try:
            await me.receive(tuple, where=_is_answer, timeout=0)
        except TimeoutError:
            break
    documents: dict[str, dict[str, Any]] = {}
    asked: set[str] = {me.node.name}
    round_ = [name for name in dict.fromkeys(names) if name not in asked]
    while round_:
        waiting: dict[int, str] = {}
        for name in round_:
            asked.add(name)
            tag = next(_tags)
            waiting[tag] = name
            me.send((SNAPSHOT_SERVICE, name), (_ASK, me.pid, tag))
        with anyio.move_on_after(timeout):
            while waiting:
                _, tag, text = await me.receive(tuple, where=_is_answer)
                if tag in waiting:
                    documents[waiting.pop(tag)] = json.loads(text)
        for name in waiting.values():
            documents[name] = {"node": name, "error": f"no answer within {timeout:g} s"}
        round_ = []
        if follow_peers:
            for document in documents.values():
                transport = document.get("transport") or {}
                round_.extend(peer for peer in transport.get("peers", {}) if peer not in asked)
            round_ = list(dict.fromkeys(round_))
    return [documents[name] for name in sorted(documents)]


def _is_answer(message: tuple[Any, ...]) -> bool:
    return len(message) == 3 and message[0] == _ANSWER
