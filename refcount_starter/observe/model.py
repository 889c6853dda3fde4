"""What a snapshot holds: frozen values of one node's processes, supervision trees and
starters, and their JSON form.

Every value here is ``@attrs.frozen``; ``NodeSnapshot.to_json()`` turns one into plain
``dict``/``list``/``str``/``int`` values that ``json.dumps`` takes as they are. Pids and refs
become their printed form (``"<node.incarnation.serial>"``, ADR-0005).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..runtime import ExitReason, Pid, ProcessInfo, Ref

__all__ = [
    "ChildState",
    "ChildView",
    "NodeSnapshot",
    "ProcessKind",
    "StarterView",
    "SupervisorView",
    "TransportView",
    "reason_json",
]

#: What a process is, as far as the observer can tell from the function it runs.
ProcessKind = Literal["supervisor", "starter", "process"]

#: A child's state, as ``list_children`` gives it (``unknown``: a state this observer does not
#: know, from a newer supervisor).
ChildState = Literal["running", "restarting", "stopped", "ignored", "unknown"]


@attrs.frozen(kw_only=True)
class ChildView:
    """One child of a supervisor.

    Attributes:
        key: The child's key.
        state: ``"running"``, ``"restarting"``, ``"stopped"``, ``"ignored"`` or
            ``"unknown"``.
        pid: The running child (or the one that exited, while ``restarting``), if any.
        type: ``"worker"`` or ``"supervisor"``.
        restart: The restart policy (``"permanent"``, ``"transient"``, ...).
        start: How it starts, in words (``"starter <n.1.4>"``, ``"closure db"``, a
            function's qualified name).
        starter: The starter it starts through, if any: the supervisor holds it by ``key``.
        restarts: Automatic restarts its exits caused.
    """

    key: str
    state: ChildState
    pid: Pid | None
    type: str
    restart: str
    start: str
    starter: Pid | None
    restarts: int = 0


@attrs.frozen(kw_only=True)
class SupervisorView:
    """One supervisor, as its client API answers.

    Attributes:
        pid: The supervisor.
        children: Its children, left to right (start order).
        running: How many children run.
        total_restarts: Automatic restarts since it started.
        max_restarts: Its restart intensity: more restarts than this within
            ``within_seconds`` stop it.
        within_seconds: The period of its restart intensity.
        restarts_in_window: Restarts within the last ``within_seconds``.
        error: Why it could not be asked (it exited, or did not answer in time); the other
            fields are then empty.
    """

    pid: Pid
    children: tuple[ChildView, ...] = ()
    running: int = 0
    total_restarts: int = 0
    max_restarts: int = 0
    within_seconds: float = 0.0
    restarts_in_window: int = 0
    error: str | None = None


@attrs.frozen(kw_only=True)
class StarterView:
    """One reference-counted starter, as it answers ``statistics``.

    Attributes:
        pid: The starter.
        owner: The process that spawned it.
        owner_holds: Whether the owner still holds its first reference.
        holders: Every process holding a reference (the owner included while it holds), sorted.
        references: The reference list, as ``(holder, key, seq)``, sorted.
        spurious_releases: Releases that matched no reference.
        children_started: Children spawned so far.
        error: Why it could not be asked; the other fields are then empty.
    """

    pid: Pid
    owner: Pid | None = None
    owner_holds: bool = False
    holders: tuple[Pid, ...] = ()
    references: tuple[tuple[Pid, str, int], ...] = ()
    spurious_releases: int = 0
    children_started: int = 0
    error: str | None = None


@attrs.frozen(kw_only=True)
class TransportView:
    """The node's way out to its peers, as its transport tells it (a NATS transport does).

    Attributes:
        peers: The peers it has heard of, with the incarnation it knows (``None`` if none
            yet), sorted by name.
        statistics: Its counters (envelopes sent and received, sessions ended, ...).
    """

    peers: tuple[tuple[str, int | None], ...] = ()
    statistics: tuple[tuple[str, int], ...] = ()


@attrs.frozen(kw_only=True)
class NodeSnapshot:
    """One node, as ``Node.snapshot()`` saw it.

    The process table is read a slice at a time (see ``docs/observer.md``): each process's
    entry is exact for its moment, and supervisors and starters are asked afterwards, so a
    tree can show a child that has exited since.

    Attributes:
        node: The node's name.
        incarnation: Its incarnation.
        taken_at: When the snapshot began (``time.time()``).
        duration: Seconds it took.
        processes: Every live process, in spawn order.
        kinds: What each process is (only supervisors and starters are listed).
        registered: The registered names, ``name -> pid``, sorted by name.
        supervisors: Every supervisor of the node, in spawn order.
        starters: Every starter of the node, in spawn order.
        inbound_calls: Calls from other nodes waiting for a reply here.
        transport: Its peers and counters, if its transport tells them.
    """

    node: str
    incarnation: int
    taken_at: float
    duration: float
    processes: tuple[ProcessInfo, ...]
    kinds: tuple[tuple[Pid, ProcessKind], ...]
    registered: tuple[tuple[str, Pid], ...]
    supervisors: tuple[SupervisorView, ...]
    starters: tuple[StarterView, ...]
    inbound_calls: int
    transport: TransportView | None = None

    def kind(self, pid: Pid) -> ProcessKind:
        """What ``pid`` is: ``"supervisor"``, ``"starter"`` or ``"process"``."""
        for known, kind in self.kinds:
            if known == pid:
                return kind
        return "process"

    def to_json(self) -> dict[str, Any]:
        """This snapshot as plain JSON values (``json.dumps`` takes it as it is)."""
        kinds = dict(self.kinds)
        return {
            "node": self.node,
            "incarnation": self.incarnation,
            "taken_at": self.taken_at,
            "duration": self.duration,
            "processes": [_process_json(info, kinds.get(info.pid, "process")) for info in self.processes],
            "registered": {name: str(pid) for name, pid in self.registered},
            "supervisors": [_supervisor_json(view) for view in self.supervisors],
            "starters": [_starter_json(view) for view in self.starters],
            "inbound_calls": self.inbound_calls,
            "transport": None
            if self.transport is None
            else {
                "peers": dict(self.transport.peers),
                "statistics": dict(self.transport.statistics),
            },
        }


def _pid(pid: Pid | Ref | None) -> str | None:
    return None if pid is None else str(pid)


def reason_json(reason: ExitReason | None) -> str | None:
    """An exit reason as one line of text (``None`` stays ``None``)."""
    if reason is None:
        return None
    text = repr(reason)
    return text if len(text) <= 500 else text[:497] + "..."


def _process_json(info: ProcessInfo, kind: str) -> dict[str, Any]:
    return {
        "pid": str(info.pid),
        "kind": kind,
        "status": info.status,
        "mailbox_size": info.mailbox_size,
        "links": [str(pid) for pid in info.links],
        "monitors": [[str(ref), str(pid)] for ref, pid in info.monitors],
        "monitored_by": [[str(ref), str(pid)] for ref, pid in info.monitored_by],
        "trap_exits": info.trap_exits,
        "function": info.function,
        "registered_name": info.registered_name,
        "parent": _pid(info.parent),
        "reason": reason_json(info.reason),
    }


def _supervisor_json(view: SupervisorView) -> dict[str, Any]:
    return {
        "pid": str(view.pid),
        "children": [
            {
                "key": child.key,
                "state": child.state,
                "pid": _pid(child.pid),
                "type": child.type,
                "restart": child.restart,
                "start": child.start,
                "starter": _pid(child.starter),
                "restarts": child.restarts,
            }
            for child in view.children
        ],
        "running": view.running,
        "total_restarts": view.total_restarts,
        "max_restarts": view.max_restarts,
        "within_seconds": view.within_seconds,
        "restarts_in_window": view.restarts_in_window,
        "error": view.error,
    }


def _starter_json(view: StarterView) -> dict[str, Any]:
    return {
        "pid": str(view.pid),
        "owner": _pid(view.owner),
        "owner_holds": view.owner_holds,
        "holders": [str(pid) for pid in view.holders],
        "references": [{"holder": str(h), "key": key, "seq": seq} for h, key, seq in view.references],
        "spurious_releases": view.spurious_releases,
        "children_started": view.children_started,
        "error": view.error,
    }
