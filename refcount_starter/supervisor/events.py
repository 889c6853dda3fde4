"""The supervisor's event stream (Cloud Haskell's ``MxSupervisor``).

A process subscribes with ``Supervisor.subscribe()``; from then on it receives each event as a
message, in the order the supervisor acted. The supervisor monitors each subscriber and
forgets it when it exits. Tests use the stream to observe the order of stops and starts
instead of sleeping.
"""

from __future__ import annotations

import attrs

from ..runtime import ExitReason, Pid

__all__ = [
    "SupervisedChildDied",
    "SupervisedChildIgnored",
    "SupervisedChildRestarting",
    "SupervisedChildStartFailure",
    "SupervisedChildStarted",
    "SupervisedChildStopped",
    "SupervisorBranchRestarted",
    "SupervisorEvent",
    "SupervisorIntensityReached",
    "SupervisorShutdown",
]


@attrs.frozen
class SupervisorEvent:
    """Base class of the events; ``supervisor`` is the pid of the supervisor that acted."""

    supervisor: Pid


@attrs.frozen
class SupervisedChildStarted(SupervisorEvent):
    """The child ``key`` started as ``pid`` (first start, restart or explicit start)."""

    key: str
    pid: Pid


@attrs.frozen
class SupervisedChildStopped(SupervisorEvent):
    """The supervisor stopped the child ``key`` (``pid``), which exited with ``reason``."""

    key: str
    pid: Pid
    reason: ExitReason


@attrs.frozen
class SupervisedChildDied(SupervisorEvent):
    """The child ``key`` (``pid``) exited by itself with ``reason``."""

    key: str
    pid: Pid
    reason: ExitReason


@attrs.frozen
class SupervisedChildRestarting(SupervisorEvent):
    """The supervisor is about to restart ``key`` (whose last pid was ``pid``) after ``reason``."""

    key: str
    pid: Pid | None
    reason: ExitReason


@attrs.frozen
class SupervisedChildStartFailure(SupervisorEvent):
    """A start of ``key`` failed with ``reason`` (a restart is then retried)."""

    key: str
    reason: ExitReason


@attrs.frozen
class SupervisedChildIgnored(SupervisorEvent):
    """The child ``key`` (``pid``) asked to be ignored (``ChildInitIgnore``)."""

    key: str
    pid: Pid


@attrs.frozen
class SupervisorBranchRestarted(SupervisorEvent):
    """A branch restart for ``key``'s ``reason`` finished; ``keys`` were restarted, in order."""

    key: str
    reason: ExitReason
    keys: tuple[str, ...]


@attrs.frozen
class SupervisorIntensityReached(SupervisorEvent):
    """The restart for ``key`` (after ``reason``) was one too many: the supervisor gives up."""

    key: str
    reason: ExitReason


@attrs.frozen
class SupervisorShutdown(SupervisorEvent):
    """The supervisor stopped all its children and is exiting with ``reason``."""

    reason: ExitReason
