"""What a supervisor says about its children: child states, list entries and statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..runtime import Pid

if TYPE_CHECKING:
    from .spec import ChildSpec

__all__ = [
    "Child",
    "ChildRef",
    "ChildRestarting",
    "ChildRunning",
    "ChildStartIgnored",
    "ChildStopped",
    "SupervisorStatistics",
]


@attrs.frozen
class ChildRunning:
    """The child is running as ``pid``.

    Args:
        pid: The child's pid.
        info: What the child handed to ``task_status.started(info)`` when it acknowledged
            its start (OTP's ``{ok, Pid, Info}``); ``None`` otherwise.
    """

    pid: Pid
    info: Any = None


@attrs.frozen
class ChildRestarting:
    """The child exited and its restart is pending (a delayed restart or a retry).

    Args:
        pid: The pid of the child that exited, if it had started.
    """

    pid: Pid | None


@attrs.frozen
class ChildStopped:
    """The child is not running: never started, terminated, or exited and not restarted."""


@attrs.frozen
class ChildStartIgnored:
    """The child asked to be ignored when it started (``ChildInitIgnore``): OTP's ``ignore``."""


ChildRef = ChildRunning | ChildRestarting | ChildStopped | ChildStartIgnored


@attrs.frozen
class Child:
    """One entry of ``list_children``/``lookup_child``: a child's key, state and spec."""

    key: str
    state: ChildRef
    spec: ChildSpec


@attrs.frozen
class SupervisorStatistics:
    """Counts of a supervisor's children, at the moment it answered.

    Args:
        defined: Child specs the supervisor holds.
        running: Children running now.
        workers: Specs of type ``WORKER``.
        supervisors: Specs of type ``SUPERVISOR``.
        running_workers: Running children of type ``WORKER``.
        running_supervisors: Running children of type ``SUPERVISOR``.
        total_restarts: Automatic restarts since the supervisor started (a branch restart
            and each retry of a failed restart count once, as for the restart limit).
        max_restarts: The restart limit's ``max_restarts`` (the intensity).
        within_seconds: The restart limit's ``within_seconds`` (the period).
        restarts_in_window: Restarts still in the window now: one more than
            ``max_restarts - restarts_in_window`` restarts within the period stops it.
        restarts_by_key: ``(key, count)`` of automatic restarts per child whose exit caused
            them, for the children it holds now, in start order.
    """

    defined: int
    running: int
    workers: int
    supervisors: int
    running_workers: int
    running_supervisors: int
    total_restarts: int
    max_restarts: int = 0
    within_seconds: float = 0.0
    restarts_in_window: int = 0
    restarts_by_key: tuple[tuple[Any, int], ...] = ()
