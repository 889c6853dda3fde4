"""The starter's own error: a refusal, for a holder the starter has written off."""

from __future__ import annotations

from ..runtime import Crashed, Pid
from ..supervisor.errors import StarterGone
from .protocol import Refusal

__all__ = ["StarterRefused"]


class StarterRefused(StarterGone):
    """The starter is alive but refused this supervisor's request.

    A ``StarterGone`` too, because for this supervisor the effect is the same: this copy of
    the spec cannot be used any more. It happens when the starter saw the supervisor go down
    (a lost connection: a false ``Down``), for a start with a lease already released, or
    when the starter is stopping. See docs/ADR/0003-stale-starter-pid-hazard.md.

    Args:
        key: The child's key.
        starter: The starter's pid.
        refusal: Why the starter refused.
    """

    def __init__(self, key: str, starter: Pid, refusal: Refusal) -> None:
        super().__init__(key, starter, Crashed(f"{__name__}.StarterRefused", refusal.value))
        self.refusal = refusal

    def __str__(self) -> str:
        return (
            f"child {self.key!r}: its starter {self.starter} refused the request: "
            f"{self.refusal.value}. This supervisor's copy of the spec cannot be used any more; "
            f"add the spec again, or use a new starter from spawn_child_starter() "
            f"(docs/ADR/0003-stale-starter-pid-hazard.md)."
        )
