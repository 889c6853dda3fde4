"""What the page and the other nodes get: snapshots as one JSON document, and which
addresses are loopback. Nothing here needs the ``observe`` extra."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .model import NodeSnapshot

__all__ = ["MAX_PAGE_PROCESSES", "is_loopback", "page_document"]

#: The page lists at most this many processes per node (the supervisors, starters and the
#: fullest mailboxes first); the count of all is sent beside them.
MAX_PAGE_PROCESSES = 2000


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page_document(
    snapshots: Sequence[NodeSnapshot | Mapping[str, Any]], max_processes: int = MAX_PAGE_PROCESSES
) -> str:
    """The JSON text the page gets: every node, each with at most ``max_processes`` processes.

    Args:
        snapshots: One snapshot (or snapshot document) per node.
        max_processes: How many processes of each node to send.

    Returns:
        ``{"nodes": [...]}`` as JSON text; each node has ``processes_total`` beside its
        (maybe shortened) ``processes``.
    """
    nodes = []
    for snapshot in snapshots:
        document = snapshot.to_json() if isinstance(snapshot, NodeSnapshot) else dict(snapshot)
        for field in ("processes", "supervisors", "starters"):
            document.setdefault(field, [])
        document.setdefault("registered", {})
        processes = document["processes"]
        document.setdefault("processes_total", len(processes))
        if len(processes) > max_processes:
            ranked = sorted(
                range(len(processes)),
                key=lambda i: (processes[i]["kind"] == "process", -processes[i]["mailbox_size"], i),
            )
            kept = sorted(ranked[:max_processes])
            document["processes"] = [processes[i] for i in kept]
        nodes.append(document)
    return json.dumps({"nodes": nodes})
