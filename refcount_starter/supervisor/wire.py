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
from . import errors, events, messages, reasons, spec, state, strategy
from .run_closure import RunClosure
from .start import InitAck, LocalStart

__all__: list[str] = []


# Each wire name is written out, never derived from the class's name: renaming a class must
# not change the protocol (tests/remote/golden_wire.json pins them).
for _cls, _name in (
    # The client's requests, the failure reply, and what the supervisor sends itself.
    (messages.AwaitInit, "rs.supervisor.AwaitInit"),
    (messages.AddChild, "rs.supervisor.AddChild"),
    (messages.StartNewChild, "rs.supervisor.StartNewChild"),
    (messages.StartChild, "rs.supervisor.StartChild"),
    (messages.RestartChild, "rs.supervisor.RestartChild"),
    (messages.TerminateChild, "rs.supervisor.TerminateChild"),
    (messages.DeleteChild, "rs.supervisor.DeleteChild"),
    (messages.LookupChild, "rs.supervisor.LookupChild"),
    (messages.ListChildren, "rs.supervisor.ListChildren"),
    (messages.GetStatistics, "rs.supervisor.GetStatistics"),
    (messages.Subscribe, "rs.supervisor.Subscribe"),
    (messages.Unsubscribe, "rs.supervisor.Unsubscribe"),
    (messages.Failed, "rs.supervisor.Failed"),
    (messages.RetryRestart, "rs.supervisor.RetryRestart"),
    # A child's init acknowledgement (a child started through a starter on another node
    # sends it across).
    (InitAck, "rs.supervisor.InitAck"),
    # Child specs and their policies.
    (spec.ChildSpec, "rs.supervisor.ChildSpec"),
    (spec.ChildType, "rs.supervisor.ChildType"),
    (spec.RestartPolicy, "rs.supervisor.RestartPolicy"),
    (spec.StopTimeout, "rs.supervisor.StopTimeout"),
    (spec.StopImmediately, "rs.supervisor.StopImmediately"),
    # Strategies, limits and shutdown modes.
    (strategy.RestartOrder, "rs.supervisor.RestartOrder"),
    (strategy.RestartLimit, "rs.supervisor.RestartLimit"),
    (strategy.RestartEach, "rs.supervisor.RestartEach"),
    (strategy.RestartInOrder, "rs.supervisor.RestartInOrder"),
    (strategy.RestartRevOrder, "rs.supervisor.RestartRevOrder"),
    (strategy.RestartOne, "rs.supervisor.RestartOne"),
    (strategy.RestartAll, "rs.supervisor.RestartAll"),
    (strategy.RestartLeft, "rs.supervisor.RestartLeft"),
    (strategy.RestartRight, "rs.supervisor.RestartRight"),
    (strategy.SequentialShutdown, "rs.supervisor.SequentialShutdown"),
    (strategy.ParallelShutdown, "rs.supervisor.ParallelShutdown"),
    # Child states, list entries and statistics.
    (state.ChildRunning, "rs.supervisor.ChildRunning"),
    (state.ChildRestarting, "rs.supervisor.ChildRestarting"),
    (state.ChildStopped, "rs.supervisor.ChildStopped"),
    (state.ChildStartIgnored, "rs.supervisor.ChildStartIgnored"),
    (state.Child, "rs.supervisor.Child"),
    (state.SupervisorStatistics, "rs.supervisor.SupervisorStatistics"),
    # Exit reasons.
    (reasons.ReachedMaxRestartIntensity, "rs.supervisor.ReachedMaxRestartIntensity"),
    (reasons.FailedToStartChild, "rs.supervisor.FailedToStartChild"),
    (reasons.InitIgnored, "rs.supervisor.InitIgnored"),
    (reasons.InitTimeout, "rs.supervisor.InitTimeout"),
    # Events.
    (events.SupervisedChildStarted, "rs.supervisor.SupervisedChildStarted"),
    (events.SupervisedChildStopped, "rs.supervisor.SupervisedChildStopped"),
    (events.SupervisedChildDied, "rs.supervisor.SupervisedChildDied"),
    (events.SupervisedChildRestarting, "rs.supervisor.SupervisedChildRestarting"),
    (events.SupervisedChildStartFailure, "rs.supervisor.SupervisedChildStartFailure"),
    (events.SupervisedChildIgnored, "rs.supervisor.SupervisedChildIgnored"),
    (events.SupervisorBranchRestarted, "rs.supervisor.SupervisorBranchRestarted"),
    (events.SupervisorIntensityReached, "rs.supervisor.SupervisorIntensityReached"),
    (events.SupervisorShutdown, "rs.supervisor.SupervisorShutdown"),
):
    register_type(_cls, _name)


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
    LocalStart,
    "a LocalStart holds a function of this node's memory; for a spec that travels use a "
    "RunClosure (a @remotable function's name and its arguments) or a starter's child_start",
)
