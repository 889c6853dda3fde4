"""Typed errors of the supervisor client API, named after Cloud Haskell's results."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..runtime import ExitReason, NoProc, Normal, Pid, RefcountStarterError

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
    """The spec's starter process is dead or unreachable.

    Raised at ``add_child``/``start_new_child`` for a stale copy of a spec: the starter
    stopped when the last supervisor holding it deleted its spec and its owner released it.
    Raised at a restart (``start_child``, ``restart_child``, an automatic restart) only when
    the starter was stopped by force (a ``Kill``, a crash) or its node was lost while a
    supervisor still held it. See docs/ADR/0003-stale-starter-pid-hazard.md.

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
        reason = self.reason
        noproc = reason if isinstance(reason, NoProc) else None
        last = noproc.last_reason if noproc is not None else None
        if noproc is not None and last is not None:
            when = ""
            if noproc.died_at is not None:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(noproc.died_at))
                when = f" at {stamp}"
            why = f"; it exited{when} with {last!r}"
        else:
            why = f"; {reason!r}"
        fix = (
            "Make a new starter with spawn_child_starter(), or keep the owner's reference while "
            "copies are in flight (docs/ADR/0003-stale-starter-pid-hazard.md)."
        )
        head = f"child {self.key!r}: its starter {self.starter} is gone{why}."
        if noproc is not None and (last is None or type(last) is Normal):
            # Stopped by its references going (or too long ago for its node to say how).
            return (
                f"{head} This ChildSpec is a stale copy: the starter stops when its owner and "
                f"every supervisor holding it have let go, so a copy added after that cannot "
                f"bind. {fix}"
            )
        return (
            f"{head} It was stopped by force or cut off while references to it were held, so "
            f"no supervisor can start this child through it any more. {fix}"
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
