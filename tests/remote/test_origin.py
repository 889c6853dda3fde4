"""``origin.forgery``: a node speaks only for its own processes (pure, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from refcount_starter.remote.origin import forgery
from refcount_starter.runtime import Call, Down, ExitSignal, Pid, Ref, Reply, Shutdown
from refcount_starter.runtime import signals as sig

HERE = "t"
ORIGIN = "evil"
OTHER = "w1"

mine = Pid(HERE, 1, 7)
theirs = Pid(ORIGIN, 2, 3)
third = Pid(OTHER, 3, 4)
their_node = Pid(ORIGIN, 2, 0)  # the node itself, serial 0
their_ref = Ref(ORIGIN, 2, 9)
my_ref = Ref(HERE, 1, 9)
third_ref = Ref(OTHER, 3, 9)
reason = Shutdown("x")


def legitimate() -> list[Any]:
    return [
        sig.MessageSignal(theirs, mine, "hi"),
        sig.MessageSignal(None, mine, "anonymous"),
        sig.NamedMessageSignal(theirs, HERE, "name", "hi"),
        sig.NamedMessageSignal(None, HERE, "name", "hi"),
        sig.LinkSignal(theirs, mine),
        sig.UnlinkSignal(theirs, mine),
        sig.ExitSignalSent(theirs, mine, reason, True),
        sig.ExitSignalSent(their_node, mine, reason, False),
        sig.MonitorSignal(theirs, mine, their_ref),
        sig.DemonitorSignal(theirs, mine, their_ref),
        sig.DownSignal(mine, my_ref, theirs, reason),
        sig.DownSignal(mine, my_ref, Pid(ORIGIN, 1, 3), reason),  # a stale pid of its own
        sig.CallSignal(theirs, mine, their_ref, "request"),
        sig.ReplySignal(theirs, mine, my_ref, "value"),
        sig.MessageSignal(theirs, mine, ExitSignal(theirs, reason)),
        sig.MessageSignal(theirs, mine, Down(their_ref, theirs, reason)),
        sig.MessageSignal(theirs, mine, Call(theirs, their_ref, "statistics")),
        sig.NamedMessageSignal(their_node, HERE, "info", Call(their_node, their_ref, "statistics")),
        # A Reply names no process: it cannot be checked (docs/nats.md says so).
        sig.MessageSignal(theirs, mine, Reply(third_ref, "value")),
    ]


@pytest.mark.parametrize("signal", legitimate(), ids=repr)
def test_a_node_may_speak_for_its_own_processes(signal: Any) -> None:
    """Signals whose sources are processes (or the node itself) of the sending node pass."""
    assert forgery(signal, ORIGIN, HERE) is None


def forged() -> list[Any]:
    return [
        sig.MessageSignal(third, mine, "hi"),
        sig.NamedMessageSignal(third, HERE, "name", "hi"),
        sig.LinkSignal(third, mine),
        sig.UnlinkSignal(third, mine),
        sig.ExitSignalSent(third, mine, reason, True),
        sig.ExitSignalSent(Pid(OTHER, 3, 0), mine, reason, False),
        sig.MonitorSignal(third, mine, their_ref),
        sig.DemonitorSignal(third, mine, their_ref),
        sig.DownSignal(mine, my_ref, third, reason),
        sig.CallSignal(third, mine, their_ref, "request"),
        sig.ReplySignal(third, mine, my_ref, "value"),
        # A reference of another node: it would take over that node's monitor.
        sig.MonitorSignal(theirs, mine, third_ref),
        sig.DemonitorSignal(theirs, mine, third_ref),
        sig.CallSignal(theirs, mine, third_ref, "request"),
        # For another node: this node would pass it on, or answer for it, in its own name.
        sig.DownSignal(third, third_ref, theirs, reason),
        sig.MonitorSignal(theirs, third, their_ref),
        sig.CallSignal(theirs, third, their_ref, "request"),
        sig.LinkSignal(theirs, third),
        sig.MessageSignal(theirs, third, "hi"),
        sig.NamedMessageSignal(theirs, OTHER, "name", "hi"),
        # Not a pid where one must be (the codec builds signals without checking types).
        sig.LinkSignal(None, mine),  # type: ignore[arg-type]
        sig.ExitSignalSent("evil", mine, reason, False),  # type: ignore[arg-type]
        sig.DownSignal(mine, my_ref, None, reason),  # type: ignore[arg-type]
        sig.MessageSignal(theirs, "t", "hi"),  # type: ignore[arg-type]
        sig.MonitorSignal(theirs, mine, "ref"),  # type: ignore[arg-type]
        # A plain message that imitates the runtime's own, from another node's process.
        sig.MessageSignal(theirs, mine, ExitSignal(third, Shutdown(("k", 3)))),
        sig.MessageSignal(None, mine, ExitSignal(third, reason)),
        sig.MessageSignal(theirs, mine, Down(my_ref, third, reason)),
        sig.MessageSignal(theirs, mine, Call(third, my_ref, "request")),
        sig.NamedMessageSignal(theirs, HERE, "starter", ExitSignal(third, reason)),
        sig.MessageSignal(theirs, mine, ExitSignal(None, reason)),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("signal", forged(), ids=repr)
def test_a_node_cannot_speak_for_another_nodes_processes(signal: Any) -> None:
    """Regression: a peer posed as another node inside its own envelopes. Every claim of a
    source on another node, of another node's reference, or of a target on another node is
    refused, with a reason."""
    why = forgery(signal, ORIGIN, HERE)
    assert isinstance(why, str) and why
