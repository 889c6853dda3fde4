"""Typed errors of the supervisor client API, named after Cloud Haskell's results."""

from __future__ import annotations

import time

from ..runtime import ExitReason, NoProc, Pid

__all__ = ["StartFailureDied", "StarterGone", "SupervisorError"]


class SupervisorError(Exception):
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
