"""The starter's own error: a refusal of a request whose reference the starter does not hold."""

from __future__ import annotations

from ..runtime import Crashed, Pid
from ..supervisor.errors import StartFailureDied
from .protocol import Refusal

__all__ = ["StarterRefused", "StarterUnresponsive"]


class StarterRefused(StartFailureDied):
    """The starter is alive but refused this supervisor's request.

    A ``StartFailureDied`` (this lease cannot be used any more), but not a ``StarterGone``:
    the starter still runs, so the spec is not a stale copy and ``except StarterGone`` does
    not catch a refusal. It happens for a start whose reference the starter no longer
    holds (released, or dropped when the starter saw the supervisor go down: a false ``Down``
    after a lost connection), for a late or duplicated acquire, and for a malformed request.
    Deleting the child and adding the spec again acquires a new reference if the starter
    still runs; if it has stopped, that add fails with ``StarterGone`` and only a new starter
    helps. See docs/ADR/0003-stale-starter-pid-hazard.md.

    Args:
        key: The child's key.
        starter: The starter's pid.
        refusal: Why the starter refused.
    """

    def __init__(self, key: str, starter: Pid, refusal: Refusal) -> None:
        super().__init__(key, Crashed(f"{__name__}.StarterRefused", refusal.value))
        self.starter = starter
        self.refusal = refusal

    def __str__(self) -> str:
        return (
            f"child {self.key!r}: its starter {self.starter} refused the request: "
            f"{self.refusal.value}. This lease cannot be used any more; delete the child and "
            f"add the spec again (that acquires a new reference while the starter runs for "
            f"other holders; once it has stopped, the add fails with StarterGone and only a new "
            f"starter from spawn_child_starter() helps) "
            f"(docs/ADR/0003-stale-starter-pid-hazard.md)."
        )


class StarterUnresponsive(StartFailureDied):
    """The process in a ``StarterProcess`` did not answer as a starter in time.

    A live process that is not a starter (a stale pid reused by hand, a wrong pid), or a
    starter that stopped answering: the supervisor's call to it is bounded, so the start (or
    the add) fails with this error instead of wedging the supervisor. See ADR-0002.

    Args:
        key: The child's key.
        starter: The pid the spec names as its starter.
        detail: What went wrong: no answer within the call's timeout, or an answer that is
            not a starter's.
    """

    def __init__(self, key: str, starter: Pid, detail: str) -> None:
        super().__init__(key, Crashed(f"{__name__}.StarterUnresponsive", detail))
        self.starter = starter
        self.detail = detail

    def __str__(self) -> str:
        return (
            f"child {self.key!r}: the process {self.starter} named as its starter did not "
            f"answer as a starter: {self.detail}"
        )
