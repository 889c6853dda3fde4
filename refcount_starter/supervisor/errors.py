"""Typed errors of the supervisor client API, named after Cloud Haskell's results."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..runtime import ExitReason, NoProc, Pid, RefcountStarterError

if TYPE_CHECKING:
    from .state import ChildRef

__all__ = [
    "AlreadyRunning",
    "BadClosure",
    "ChildNotFound",
    "ChildNotStopped",
    "DuplicateChild",
    "StartFailureDied",
    "StarterGone",
    "SupervisorError",
    "SupervisorExited",
]


class SupervisorError(RefcountStarterError):
    """Base class of the supervisor's typed errors."""


class StartFailureDied(SupervisorError):
    """A child could not be started: its start raised, or the process it needed died.

    Args:
        key: The child's key.
        reason: The exit reason (``Crashed`` with the exception, ``NoProc``, ...).
    """

    def __init__(self, key: str, reason: ExitReason) -> None:
        super().__init__(key, reason)
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        return f"child {self.key!r} failed to start: {self.reason!r}"


class StarterGone(StartFailureDied):
    """The spec's starter process is dead: this copy of the spec is stale.

    Raised at ``add_child``/``start_new_child`` (never later, at a restart): the starter
    stopped when the last supervisor holding it deleted its spec and its owner released it,
    or it was killed, or its node was lost. See docs/ADR/0003-stale-starter-pid-hazard.md.

    Args:
        key: The child's key.
        starter: The starter's pid.
        reason: Why it is unreachable: ``NoProc`` (with when and why it died, where its node
            still remembers) or ``NoConnection``.
    """

    def __init__(self, key: str, starter: Pid, reason: ExitReason) -> None:
        super().__init__(key, reason)
        self.starter = starter

    def __str__(self) -> str:
        why = ""
        if isinstance(self.reason, NoProc) and self.reason.last_reason is not None:
            when = ""
            if self.reason.died_at is not None:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.reason.died_at))
                when = f" at {stamp}"
            why = f"; it exited{when} with {self.reason.last_reason!r}"
        else:
            why = f"; {self.reason!r}"
        return (
            f"child {self.key!r}: its starter {self.starter} is gone{why}. This ChildSpec is a "
            f"stale copy: the starter stops when its owner and every supervisor holding it have "
            f"let go, so a copy added after that cannot bind. Make a new starter with "
            f"spawn_child_starter(), or keep the owner's reference while copies are in flight "
            f"(docs/ADR/0003-stale-starter-pid-hazard.md)."
        )


class DuplicateChild(SupervisorError):
    """A spec's key is already taken in the supervisor (or twice in an initial list).

    Args:
        key: The key.
        state: The state of the child that holds it, or ``None`` for an initial list.
    """

    def __init__(self, key: str, state: ChildRef | None) -> None:
        super().__init__(key, state)
        self.key = key
        self.state = state

    def __str__(self) -> str:
        if self.state is None:
            return f"the key {self.key!r} appears more than once in the initial child list"
        return f"a child with key {self.key!r} already exists ({self.state!r}); delete it first"


class AlreadyRunning(SupervisorError):
    """``start_child``/``restart_child`` of a child that is running or restarting.

    Args:
        key: The child's key.
        state: Its state (``ChildRunning`` or ``ChildRestarting``).
    """

    def __init__(self, key: str, state: ChildRef) -> None:
        super().__init__(key, state)
        self.key = key
        self.state = state

    def __str__(self) -> str:
        return f"child {self.key!r} is already {self.state!r}; terminate it before starting it"


class BadClosure(SupervisorError):
    """A ``RunClosure`` names a function that is not in the remote table.

    Args:
        key: The child's key.
        name: The closure's name.
        detail: What the lookup said.
    """

    def __init__(self, key: str, name: str, detail: str) -> None:
        super().__init__(key, name, detail)
        self.key = key
        self.name = name
        self.detail = detail

    def __str__(self) -> str:
        return f"child {self.key!r}: bad closure {self.name!r}: {self.detail}"


class ChildNotFound(SupervisorError, LookupError):
    """No child with this key in the supervisor.

    Args:
        key: The key.
    """

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no child with key {self.key!r} in this supervisor"


class ChildNotStopped(SupervisorError):
    """``delete_child`` of a child that is still running or restarting.

    Args:
        key: The child's key.
        state: Its state.
    """

    def __init__(self, key: str, state: ChildRef) -> None:
        super().__init__(key, state)
        self.key = key
        self.state = state

    def __str__(self) -> str:
        return f"child {self.key!r} is still {self.state!r}; terminate it before deleting it"


class SupervisorExited(SupervisorError):
    """A call to a supervisor that has exited (or exited during the call), or never was.

    Args:
        supervisor: The supervisor's pid.
        reason: Its exit reason (``NoProc`` when it was unknown or already dead, with its
            last reason where its node remembers; ``NoConnection`` when its node was lost).
    """

    def __init__(self, supervisor: Pid, reason: ExitReason) -> None:
        super().__init__(supervisor, reason)
        self.supervisor = supervisor
        self.reason = reason

    def __str__(self) -> str:
        return f"supervisor {self.supervisor} is not running: it exited with {self.reason!r}"
