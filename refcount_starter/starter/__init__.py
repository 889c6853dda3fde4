"""The reference-counted starter service: one process that (re)starts a child for any number
of supervisors and stops by itself when the last reference goes. See ADR-0002 to ADR-0004.

Use ``spawn_child_starter(me, fn, *args)``; put its ``child_start`` in a ``ChildSpec``.
"""

from . import wire as _wire  # noqa: F401  (registers the types that cross nodes)
from .client import Starter, StarterLease, StarterProcess, spawn_child_starter
from .errors import StarterRefused, StarterUnresponsive
from .protocol import Refusal, StarterState, StarterStatistics

__all__ = [
    "Refusal",
    "Starter",
    "StarterLease",
    "StarterProcess",
    "StarterRefused",
    "StarterState",
    "StarterStatistics",
    "StarterUnresponsive",
    "spawn_child_starter",
]
