"""Who may say what: a signal from another node against the node that sent it (pure).

The subject and the envelope tell which node sent a signal (the server holds each node to
its own subjects where every node has a user of its own, ADR-0006); the signal itself names
processes. A node speaks only for its own processes: every pid that a signal presents as
its source must be of the node that sent it, and the signal must be for this node. So
whoever holds one node's credentials cannot, inside its own well-sequenced envelopes,
report another node's process dead, send an exit signal, link, monitor or reply in its
name, or make this node pass such a claim on under its own name.

A plain message is the process's own business, except for the runtime's messages that
processes act on as facts (``ExitSignal``, ``Down``, ``Call``): one of those that names a
process of another node as its source is refused too. A ``Reply`` names no process, so it
cannot be checked this way (docs/nats.md says so).

Nothing here does I/O or logs: the transport drops, counts and logs what this refuses.
"""

from __future__ import annotations

from typing import Any

from ..runtime.pid import Pid, Ref
from ..runtime.reasons import Down, ExitSignal
from ..runtime.signals import (
    Call,
    CallSignal,
    DemonitorSignal,
    DownSignal,
    MessageSignal,
    MonitorSignal,
    NamedMessageSignal,
    Signal,
)

__all__ = ["forgery"]


def forgery(signal: Signal, origin: str, here: str) -> str | None:
    """What ``signal``, received on node ``here`` from node ``origin``, claims that
    ``origin`` may not say; None when it may be delivered.

    Refused: a signal for another node; a source pid (the sender of a message, link,
    unlink, exit signal, monitor, demonitor, call or reply; the dead process of a ``Down``)
    of another node, or not a pid (only a message may have no sender); a monitor, demonitor
    or call under a reference of another node (references name their watcher's node); a
    message that imitates the runtime's ``ExitSignal``, ``Down`` or ``Call`` from a process
    of another node.

    A few attribute reads and comparisons: it runs for every signal received.
    """
    # Any: the classes are told apart by exact type (as Table.deliver does), which mypy
    # does not narrow through a local; each branch reads only fields its classes have.
    s: Any = signal
    cls = type(s)
    if cls is NamedMessageSignal:
        if s.node != here:
            return f"a message for node {s.node!r:.100}"
    else:
        to = s.to
        if type(to) is not Pid or to.node != here:
            return f"{cls.__name__} for {to!r:.100}, not for a process of this node"
    claimed = s.pid if cls is DownSignal else s.sender
    if type(claimed) is not Pid:
        if claimed is None and (cls is MessageSignal or cls is NamedMessageSignal):
            return _imitation(s.message, origin)
        return f"{cls.__name__} whose source is {claimed!r:.100}, not a pid"
    if claimed.node != origin:
        return f"{cls.__name__} from {claimed!r:.100}, a process of another node"
    if cls is MessageSignal or cls is NamedMessageSignal:
        # The common case, a message of the process's own, without a call.
        kind = type(s.message)
        if kind is not ExitSignal and kind is not Call and kind is not Down:
            return None
        return _imitation(s.message, origin)
    if cls is CallSignal or cls is MonitorSignal or cls is DemonitorSignal:
        ref = s.ref
        if type(ref) is not Ref or ref.node != origin:
            return f"{cls.__name__} under the reference {ref!r:.100} of another node"
    return None


def _imitation(message: Any, origin: str) -> str | None:
    # The runtime's own messages that processes act on: a starter takes an ExitSignal as a
    # release, a supervisor a Down or an ExitSignal as a child's exit, a server a Call as a
    # request to answer. Anything else is left to the process.
    kind = type(message)
    claimed: object
    if kind is ExitSignal or kind is Call:
        claimed = message.sender
    elif kind is Down:
        claimed = message.pid
    else:
        return None
    if type(claimed) is Pid and claimed.node == origin:
        return None
    return f"a message that imitates {kind.__name__} from {claimed!r:.100}"
