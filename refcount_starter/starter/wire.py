"""The starter's types that cross nodes, registered with the codec's type registry.

Imported for its side effect by the package (``refcount_starter.starter``), so that a
supervisor on one node can hold a starter on another: ``StarterProcess`` (in a ``ChildSpec``
copy), the call bodies and replies (acquire, start, the owner's release, statistics), the
lease, the refusals and ``StarterRefused``. The release itself is the runtime's
``Shutdown((key, seq))`` exit signal, registered by the codec. The registry needs no msgspec.
"""

from __future__ import annotations

from ..remote.registry import register_type
from . import client, errors, protocol, service

__all__: list[str] = []

# Each wire name is written out, never derived from the class's name (ADR-0008).
for _cls, _name in (
    (client.StarterProcess, "rs.starter.StarterProcess"),
    (client.StarterLease, "rs.starter.StarterLease"),
    (service.AcquireAndStart, "rs.starter.AcquireAndStart"),
    (service.AcquireRef, "rs.starter.AcquireRef"),
    (service.StartChild, "rs.starter.StartChild"),
    (service.ReleaseOwnerRef, "rs.starter.ReleaseOwnerRef"),
    (service.GetStatistics, "rs.starter.GetStatistics"),
    (service.Started, "rs.starter.Started"),
    (service.Unsupported, "rs.starter.Unsupported"),
    (protocol.ReplyAcquired, "rs.starter.ReplyAcquired"),
    (protocol.ReplyRefused, "rs.starter.ReplyRefused"),
    (protocol.ReplyReleased, "rs.starter.ReplyReleased"),
    (protocol.Refusal, "rs.starter.Refusal"),
    (protocol.StarterStatistics, "rs.starter.StarterStatistics"),
):
    register_type(_cls, _name)

register_type(errors.StarterRefused, "rs.starter.StarterRefused", fields=("key", "starter", "refusal"))
register_type(
    errors.StarterUnresponsive, "rs.starter.StarterUnresponsive", fields=("key", "starter", "detail")
)
