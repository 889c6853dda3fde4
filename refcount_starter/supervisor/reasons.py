"""The exit reasons a supervisor and its children add to the runtime's."""

from __future__ import annotations

import attrs

from ..runtime import ExitReason, ProcessExit

__all__ = [
    "ChildInitIgnore",
    "FailedToStartChild",
    "InitIgnored",
    "InitTimeout",
    "ReachedMaxRestartIntensity",
]


@attrs.frozen
class ReachedMaxRestartIntensity(ExitReason):
    """The supervisor gave up: one restart too many within its ``RestartLimit``.

    It stopped all its children (in its shutdown order) before exiting with this reason,
    which is abnormal, so a parent supervisor restarts a permanent or transient child
    supervisor that exits with it (see ADR-0009 for where OTP differs).

    Args:
        key: The child whose exit needed the restart that was one too many.
        reason: That child's exit reason.
    """

    key: str
    reason: ExitReason


@attrs.frozen
class FailedToStartChild(ExitReason):
    """A supervisor could not start one of its initial children and exited.

    Args:
        key: The child.
        reason: Why its start failed.
    """

    key: str
    reason: ExitReason


@attrs.frozen
class InitIgnored(ExitReason):
    """The child asked its supervisor to ignore it (by raising ``ChildInitIgnore``).

    It counts as normal; the supervisor sets the child's state to ``ChildStartIgnored`` (or
    drops a temporary child's spec) and does not restart it.
    """

    normal = True


@attrs.frozen
class InitTimeout(ExitReason):
    """A child did not acknowledge its start within its spec's ``start_timeout``.

    The supervisor killed it; its start failed with this reason (OTP's ``{error, timeout}``).

    Args:
        seconds: The start timeout that expired.
    """

    seconds: float


class ChildInitIgnore(ProcessExit):
    """Raise it in a child (as it starts) to ask the supervisor to ignore the child.

    Cloud Haskell's ``ChildInitIgnore``: the child exits with ``InitIgnored()``. Raised before
    the child acknowledged its start (``task_status.started()``), it is OTP's ``ignore``: the
    supervisor's start answers ``ChildStartIgnored()``. Raised later (or by a function that
    takes no ``task_status``, which is acknowledged as soon as it runs), the child is ignored
    when its exit arrives.
    """

    def __init__(self) -> None:
        super().__init__(InitIgnored())
