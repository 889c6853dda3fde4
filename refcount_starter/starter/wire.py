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

for _cls in (
    client.StarterProcess,
    client.StarterLease,
    service.AcquireAndStart,
    service.AcquireRef,
    service.StartChild,
    service.ReleaseOwnerRef,
    service.GetStatistics,
    service.Started,
    service.Unsupported,
    protocol.ReplyAcquired,
    protocol.ReplyRefused,
    protocol.ReplyReleased,
    protocol.Refusal,
    protocol.StarterStatistics,
):
    register_type(_cls, f"rs.starter.{_cls.__name__}")

register_type(errors.StarterRefused, "rs.starter.StarterRefused", fields=("key", "starter", "refusal"))
