"""Remote spawn: a small per-node service process that starts closures for other nodes.

A process asks another node to start a function of the remote table (see ``closures.py``)
with ``spawn_remote``; the node's spawner process (registered as ``SPAWNER``) starts it
linked to and monitored by the asking process before it runs (``spawn_for``), and answers
with its pid. An unknown name is refused with ``BadClosureName``; nothing is unpickled or
imported on request: only functions the node registered can run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs

from ..runtime import Call, Node, Pid, Process, Ref, RefcountStarterError
from ..runtime.process import check_timeout
from .closures import REMOTE_TABLE, RemoteTable, UnknownClosure
from .codec import register_type

__all__ = [
    "INFO",
    "SPAWNER",
    "serve_info",
    "RemoteSpawnFailed",
    "SpawnRefused",
    "SpawnReply",
    "SpawnRequest",
    "serve_spawner",
    "spawn_remote",
    "start_spawner",
]

_log = logging.getLogger("refcount_starter.remote.service")

#: The name the spawner process is registered under on every node that runs one.
SPAWNER = "refcount_starter.spawner"

#: The name of the node command's information process (answers ``Call(..., "statistics")``).
INFO = "refcount_starter.info"


@attrs.frozen
class SpawnRequest:
    """Start ``closure(*args)`` linked to and monitored by ``owner`` under ``ref``."""

    closure: str
    args: tuple[Any, ...]
    owner: Pid
    ref: Ref


@attrs.frozen
class SpawnReply:
    """The spawned process's pid, for the request with ``ref``."""

    ref: Ref
    pid: Pid


@attrs.frozen
class SpawnRefused:
    """The request with ``ref`` was refused: ``why`` says what was wrong."""

    ref: Ref
    why: str


register_type(SpawnRequest, "rs.remote.SpawnRequest")
register_type(SpawnReply, "rs.remote.SpawnReply")
register_type(SpawnRefused, "rs.remote.SpawnRefused")


class RemoteSpawnFailed(RefcountStarterError, RuntimeError):
    """A ``spawn_remote`` that did not start a process.

    Args:
        node: The node asked.
        closure: The function's name in the remote table.
        why: What went wrong (an unknown name, no answer within the timeout).
    """

    def __init__(self, node: str, closure: str, why: str) -> None:
        super().__init__(node, closure, why)
        self.node = node
        self.closure = closure
        self.why = why

    def __str__(self) -> str:
        return f"node {self.node!r} did not start {self.closure!r}: {self.why}"


async def serve_spawner(p: Process, table: RemoteTable = REMOTE_TABLE) -> None:
    """The spawner process: answer ``SpawnRequest``s for ever."""
    async for message in p.messages():
        if type(message) is not SpawnRequest:
            _log.warning("spawner on %s ignored %r", p.pid.node, message)
            continue
        try:
            fn = table.lookup(message.closure)
        except UnknownClosure as exc:
            p.send(message.owner, SpawnRefused(message.ref, str(exc)))
            continue
        try:
            pid = p.spawn_for(message.owner, message.ref, fn, *message.args)
        except Exception as exc:
            p.send(message.owner, SpawnRefused(message.ref, f"{type(exc).__name__}: {exc}"))
            continue
        p.send(message.owner, SpawnReply(message.ref, pid))


def start_spawner(node: Node, table: RemoteTable = REMOTE_TABLE) -> Pid:
    """Start ``node``'s spawner process, registered as ``SPAWNER``; return its pid."""
    return node.spawn(serve_spawner, table, name=SPAWNER)


async def spawn_remote(
    p: Process, node: str, closure: str, *args: Any, timeout: float = 10.0
) -> tuple[Pid, Ref]:
    """Start the remote-table function ``closure(*args)`` on ``node``, linked to and monitored
    by ``p`` before it runs.

    Args:
        p: The asking process; it becomes the new process's link and monitor.
        node: The node to start it on (it must run a spawner: ``start_spawner``; the node
            command does).
        closure: The function's name in ``node``'s remote table.
        args: Its arguments; they must be encodable.
        timeout: Seconds to wait for the answer.

    Returns:
        The new pid and the reference of ``p``'s monitor on it.

    Raises:
        RemoteSpawnFailed: The name is unknown there, or no answer came within ``timeout``
            (the node is unreachable or runs no spawner).
        TypeError: An argument cannot be encoded, or ``timeout`` is not a number.
        ValueError: ``timeout`` is negative or NaN.
    """
    timeout = check_timeout(timeout)  # before the request goes
    ref = p.reserve_monitor()
    p.send((SPAWNER, node), SpawnRequest(closure, tuple(args), p.pid, ref))

    def answers(message: Any) -> bool:
        return type(message) in (SpawnReply, SpawnRefused) and message.ref == ref

    try:
        answer = await p.receive(where=answers, timeout=timeout)
    except TimeoutError:
        p.demonitor(ref)
        raise RemoteSpawnFailed(node, closure, f"no answer within {timeout} s") from None
    if type(answer) is SpawnRefused:
        p.demonitor(ref)
        raise RemoteSpawnFailed(node, closure, answer.why)
    p.bind_monitor(ref, answer.pid)
    return answer.pid, ref


async def serve_info(p: Process, statistics: Callable[[], Any]) -> None:
    """Answer ``Call`` requests ``"statistics"`` with the transport's counters, as a dict,
    and ``"processes"`` with the number of live processes on this node.

    Another node asks with ``send((INFO, node), Call(me.pid, ref, "statistics"))`` and
    receives the ``Reply`` carrying ``ref``.
    """
    async for message in p.messages():
        if type(message) is Call and message.request == "statistics":
            p.reply(message, attrs.asdict(statistics()))
        elif type(message) is Call and message.request == "processes":
            p.reply(message, p.node.process_count)
