"""A look inside a running system: ``Node.snapshot()``, the ``observe`` command's web page,
and the ``kinds`` registry that tells supervisors and starters apart. See
``docs/observer.md``.

The web page needs the ``observe`` extra (Starlette and Hypercorn); the snapshot needs
nothing beyond the library.
"""

from .collect import take_snapshot
from .kinds import kind_of, register_kind
from .model import ChildView, NodeSnapshot, StarterView, SupervisorView, TransportView

__all__ = [
    "ChildView",
    "NodeSnapshot",
    "StarterView",
    "SupervisorView",
    "TransportView",
    "kind_of",
    "register_kind",
    "take_snapshot",
]
