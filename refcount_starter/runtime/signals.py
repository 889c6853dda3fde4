"""The signals that travel between nodes, as frozen values.

Within a node, signals are applied directly; a signal for a pid of another node becomes one
of these values and goes through the node's transport, which delivers the signals from one
node to another in the order they were sent (or ends the connection).
"""

from __future__ import annotations

from typing import Any

import attrs

from .pid import Pid, Ref
from .reasons import ExitReason

__all__ = [
    "Call",
    "CallSignal",
    "DemonitorSignal",
    "DownSignal",
    "ExitSignalSent",
    "LinkSignal",
    "MessageSignal",
    "MonitorSignal",
    "NamedMessageSignal",
    "Reply",
    "ReplySignal",
    "Signal",
    "UnlinkSignal",
]


@attrs.frozen
class Call:
    """A request sent by ``call``; answer it with ``Process.reply(call, value)``.

    Args:
        sender: The caller.
        ref: The reference the reply must carry.
        request: The request itself.
    """

    sender: Pid
    ref: Ref
    request: Any


@attrs.frozen
class Reply:
    """The answer to a ``Call``.

    Args:
        ref: The ``Call``'s reference.
        value: The value the callee passed to ``reply``.
    """

    ref: Ref
    value: Any


@attrs.frozen
class MessageSignal:
    sender: Pid | None
    to: Pid
    message: Any


@attrs.frozen
class NamedMessageSignal:
    sender: Pid | None
    node: str
    name: str
    message: Any


@attrs.frozen
class LinkSignal:
    sender: Pid
    to: Pid


@attrs.frozen
class UnlinkSignal:
    sender: Pid
    to: Pid


@attrs.frozen
class ExitSignalSent:
    """An exit signal: from a link when ``linked`` is true, from ``exit()`` otherwise."""

    sender: Pid
    to: Pid
    reason: ExitReason
    linked: bool


@attrs.frozen
class MonitorSignal:
    sender: Pid
    to: Pid
    ref: Ref


@attrs.frozen
class DemonitorSignal:
    sender: Pid
    to: Pid
    ref: Ref


@attrs.frozen
class DownSignal:
    to: Pid
    ref: Ref
    pid: Pid
    reason: ExitReason


@attrs.frozen
class CallSignal:
    """A call to a process of another node, with the caller's monitor on it, in one signal.

    The callee's node sets the monitor (``ref``, watched by ``sender``) and delivers
    ``Call(sender, ref, request)``; for a dead callee it answers with a ``DownSignal``, as a
    ``MonitorSignal`` would. See ADR-0006.
    """

    sender: Pid
    to: Pid
    ref: Ref
    request: Any


@attrs.frozen
class ReplySignal:
    """The reply to a ``CallSignal``; it also ends the call's monitor.

    The replier's node drops the monitor as it sends this, and the caller's node drops its
    side as it delivers ``Reply(ref, value)``, so no demonitor crosses the network.
    """

    sender: Pid
    to: Pid
    ref: Ref
    value: Any


Signal = (
    MessageSignal
    | NamedMessageSignal
    | LinkSignal
    | UnlinkSignal
    | ExitSignalSent
    | MonitorSignal
    | DemonitorSignal
    | DownSignal
    | CallSignal
    | ReplySignal
)


def destination_node(signal: Signal) -> str:
    """The name of the node a signal is for."""
    if isinstance(signal, NamedMessageSignal):
        return signal.node
    return signal.to.node
