"""The supervisor's types that cross nodes, registered with the codec's type registry.

Imported for its side effect by the package (``refcount_starter.supervisor``), so that every
node that imports the supervisor can decode what another node's supervisor sends: the
client's requests and the replies (child states, statistics, typed errors), the event stream,
the supervisor's exit reasons, and ``ChildSpec`` with its policies and its serializable
starts (``RunClosure``; the starter's ``StarterProcess`` is registered by the starter). A
``LocalStart`` holds a local function and never travels: encoding one raises a ``TypeError``
that says so. The registry needs no msgspec. Wire names are part of the protocol (ADR-0008):
renaming a class is free, renaming its wire name is not.
"""

from __future__ import annotations

from ..remote.registry import refuse_type, register_type
from . import errors, events, messages, reasons, spec, start, state, strategy
from .run_closure import RunClosure

__all__: list[str] = []


def _register(prefix: str, classes: tuple[type, ...]) -> None:
    for cls in classes:
        register_type(cls, f"{prefix}.{cls.__name__}")


_register(
    "rs.supervisor",
    (
        # The client's requests, the failure reply, and what the supervisor sends itself.
        messages.AwaitInit,
        messages.AddChild,
        messages.StartNewChild,
        messages.StartChild,
        messages.RestartChild,
        messages.TerminateChild,
        messages.DeleteChild,
        messages.LookupChild,
        messages.ListChildren,
        messages.GetStatistics,
        messages.Subscribe,
        messages.Unsubscribe,
        messages.Failed,
        messages.RetryRestart,
        # A child's init acknowledgement (a child started through a starter on another node
        # sends it across).
        start.InitAck,
        # Child specs and their policies.
        spec.ChildSpec,
        spec.ChildType,
        spec.RestartPolicy,
        spec.StopTimeout,
        spec.StopImmediately,
        # Strategies, limits and shutdown modes.
        strategy.RestartOrder,
        strategy.RestartLimit,
        strategy.RestartEach,
        strategy.RestartInOrder,
        strategy.RestartRevOrder,
        strategy.RestartOne,
        strategy.RestartAll,
        strategy.RestartLeft,
        strategy.RestartRight,
        strategy.SequentialShutdown,
        strategy.ParallelShutdown,
        # Child states, list entries and statistics.
        state.ChildRunning,
        state.ChildRestarting,
        state.ChildStopped,
        state.ChildStartIgnored,
        state.Child,
        state.SupervisorStatistics,
        # Exit reasons.
        reasons.ReachedMaxRestartIntensity,
        reasons.FailedToStartChild,
        reasons.InitIgnored,
        reasons.InitTimeout,
        # Events.
        events.SupervisedChildStarted,
        events.SupervisedChildStopped,
        events.SupervisedChildDied,
        events.SupervisedChildRestarting,
        events.SupervisedChildStartFailure,
        events.SupervisedChildIgnored,
        events.SupervisorBranchRestarted,
        events.SupervisorIntensityReached,
        events.SupervisorShutdown,
    ),
)

# The remote table is local to each node: only the name and the arguments travel.
register_type(RunClosure, "rs.supervisor.RunClosure", fields=("name", "args"))

# Typed errors travel in ``Failed`` replies, as the attributes their ``__init__`` takes.
register_type(errors.StartFailureDied, "rs.supervisor.StartFailureDied", fields=("key", "reason"))
register_type(errors.StarterGone, "rs.supervisor.StarterGone", fields=("key", "starter", "reason"))
register_type(errors.DuplicateChild, "rs.supervisor.DuplicateChild", fields=("key", "state"))
register_type(errors.AlreadyRunning, "rs.supervisor.AlreadyRunning", fields=("key", "state"))
register_type(errors.BadClosure, "rs.supervisor.BadClosure", fields=("key", "name", "detail"))
register_type(errors.ChildNotFound, "rs.supervisor.ChildNotFound", fields=("key",))
register_type(errors.ChildNotStopped, "rs.supervisor.ChildNotStopped", fields=("key", "state"))
register_type(errors.SupervisorExited, "rs.supervisor.SupervisorExited", fields=("supervisor", "reason"))

refuse_type(
    start.LocalStart,
    "a LocalStart holds a function of this node's memory; for a spec that travels use a "
    "RunClosure (a @remotable function's name and its arguments) or a starter's child_start",
)
