"""The requests a supervisor answers, and the messages it sends itself."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import attrs

from ..runtime import ExitReason, Pid
from .spec import ChildSpec

__all__ = [
    "AddChild",
    "AwaitInit",
    "DeleteChild",
    "Failed",
    "GetStatistics",
    "ListChildren",
    "LookupChild",
    "Request",
    "RestartChild",
    "RetryRestart",
    "StartChild",
    "StartNewChild",
    "Subscribe",
    "TerminateChild",
    "Unsubscribe",
]


@attrs.frozen
class AwaitInit:
    """Answered once the initial children have started (or with the error that stopped it)."""


@attrs.frozen
class AddChild:
    spec: ChildSpec


@attrs.frozen
class StartNewChild:
    spec: ChildSpec


@attrs.frozen
class StartChild:
    key: Hashable


@attrs.frozen
class RestartChild:
    key: Hashable


@attrs.frozen
class TerminateChild:
    key: Hashable


@attrs.frozen
class DeleteChild:
    key: Hashable


@attrs.frozen
class LookupChild:
    key: Hashable


@attrs.frozen
class ListChildren:
    pass


@attrs.frozen
class GetStatistics:
    pass


@attrs.frozen
class Subscribe:
    pid: Pid


@attrs.frozen
class Unsubscribe:
    pid: Pid


Request = (
    AwaitInit
    | AddChild
    | StartNewChild
    | StartChild
    | RestartChild
    | TerminateChild
    | DeleteChild
    | LookupChild
    | ListChildren
    | GetStatistics
    | Subscribe
    | Unsubscribe
)


@attrs.frozen
class Failed:
    """A reply that carries the typed error the client raises."""

    error: Any


@attrs.frozen
class RetryRestart:
    """Sent by the supervisor to itself: retry the pending restart of ``key``.

    ``token`` identifies the pending restart; a retry whose token no longer matches (the
    child was started, terminated or deleted meanwhile) is ignored. ``anchor`` is, for a
    branch restart whose start of ``key`` failed, the child whose exit began it: the retry
    restarts that child's branch again, which holds every child left stopped midway.
    """

    key: str
    token: int
    reason: ExitReason
    anchor: str | None = None
