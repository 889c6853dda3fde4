"""How a snapshot is taken: read the process table a slice at a time, then ask each
supervisor and each starter through its client API.

The table is read without awaiting inside a slice, so each ``ProcessInfo`` is exact; between
slices the node's other tasks run, so that a snapshot of 100,000 processes never stops the
node for more than one slice (the cost is measured in ``docs/observer.md``). Supervisors and
starters are then asked concurrently, each with a timeout: a supervisor busy with a long
start shows as not answering instead of holding the snapshot up.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs

from ..runtime import CallFailed, CallTimeout, Pid, ProcessInfo, ProcessNotAlive
from ..runtime.process import as_seconds
from ..starter.client import StarterProcess
from ..starter.protocol import StarterStatistics
from ..starter.service import GetStatistics as StarterGetStatistics
from ..supervisor import (
    ChildRestarting,
    ChildRunning,
    ChildStartIgnored,
    ChildStopped,
    LocalStart,
    RunClosure,
    Supervisor,
    SupervisorExited,
)
from ..supervisor.state import Child
from .kinds import kind_of
from .model import (
    ChildState,
    ChildView,
    NodeSnapshot,
    ProcessKind,
    StarterView,
    SupervisorView,
    TransportView,
)

if TYPE_CHECKING:
    from ..runtime import Node, Process

__all__ = ["DEFAULT_SLICE", "DEFAULT_TIMEOUT", "take_snapshot"]

#: Processes read between two checkpoints (about a millisecond's work).
DEFAULT_SLICE = 1000
#: Seconds a supervisor or a starter gets to answer.
DEFAULT_TIMEOUT = 2.0
# How many supervisors and starters are asked at once.
_CONCURRENT_QUESTIONS = 32


async def take_snapshot(
    node: Node,
    *,
    transport: object = None,
    timeout: float = DEFAULT_TIMEOUT,
    slice_size: int = DEFAULT_SLICE,
) -> NodeSnapshot:
    """Take a snapshot of ``node`` (what ``Node.snapshot()`` does).

    Args:
        node: A running node.
        transport: The node's transport; one with ``peers()`` and ``statistics()`` (the
            NATS transport) adds its peers and counters to the snapshot.
        timeout: Seconds each supervisor and starter gets to answer; one that does not is
            shown with an ``error`` instead of its children or holders.
        slice_size: How many processes are read between two checkpoints.

    Returns:
        The snapshot. The processes that ask the supervisors and starters are made for the
        snapshot and are not in it.

    Raises:
        TypeError: ``timeout`` is not a number or ``slice_size`` not an int.
        ValueError: ``timeout`` is not positive or ``slice_size`` is below 1.
        NodeNotRunning: The node is not running (its supervisors cannot be asked).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    timeout = as_seconds(timeout)  # an int too large for a float: no limit (ADR-0010)
    if type(slice_size) is not int:
        raise TypeError(f"slice_size must be an int, got {slice_size!r}")
    if slice_size < 1:
        raise ValueError(f"slice_size must be >= 1, got {slice_size!r}")
    taken_at = time.time()
    began = time.perf_counter()
    infos = await _read_table(node, slice_size)
    kinds: list[tuple[Pid, ProcessKind]] = []
    for info in infos:
        kind = kind_of(info.function)
        if kind != "process":
            kinds.append((info.pid, kind))
    registered = []
    for name in sorted(node.registered()):
        pid = node.whereis(name)
        if pid is not None:
            registered.append((name, pid))
    supervisors: dict[Pid, SupervisorView] = {}
    starters: dict[Pid, StarterView] = {}
    if kinds:
        limiter = anyio.CapacityLimiter(_CONCURRENT_QUESTIONS)

        async def ask(pid: Pid, kind: ProcessKind) -> None:
            async with limiter, node.process() as me:
                if kind == "supervisor":
                    supervisors[pid] = await _ask_supervisor(me, pid, timeout)
                else:
                    starters[pid] = await _ask_starter(me, pid, timeout)

        async with anyio.create_task_group() as tg:
            for pid, kind in kinds:
                tg.start_soon(ask, pid, kind)
    return NodeSnapshot(
        node=node.name,
        incarnation=node.incarnation,
        taken_at=taken_at,
        duration=time.perf_counter() - began,
        processes=tuple(infos),
        kinds=tuple(kinds),
        registered=tuple(registered),
        # In spawn order, as the processes are.
        supervisors=tuple(supervisors[pid] for pid, kind in kinds if kind == "supervisor"),
        starters=tuple(starters[pid] for pid, kind in kinds if kind == "starter"),
        inbound_calls=node.inbound_calls,
        transport=_transport_view(transport),
    )


def _transport_view(transport: object) -> TransportView | None:
    peers = getattr(transport, "peers", None)
    statistics = getattr(transport, "statistics", None)
    if not callable(peers) or not callable(statistics):
        return None
    counters = statistics()
    fields = attrs.asdict(counters) if attrs.has(type(counters)) else dict(counters)
    return TransportView(
        peers=tuple(sorted(peers().items())),
        statistics=tuple((name, value) for name, value in fields.items() if type(value) is int),
    )


async def _read_table(node: Node, slice_size: int) -> list[ProcessInfo]:
    pids = node.processes()
    infos: list[ProcessInfo] = []
    info = node.info
    for start in range(0, len(pids), slice_size):
        if start:
            await anyio.lowlevel.checkpoint()
        for pid in pids[start : start + slice_size]:
            try:
                infos.append(info(pid))
            except ProcessNotAlive:
                continue  # it exited while an earlier slice was read
    return infos


async def _ask_supervisor(me: Process, pid: Pid, timeout: float) -> SupervisorView:
    handle = Supervisor(pid, me)
    try:
        with anyio.fail_after(timeout):
            children = await handle.list_children()
            statistics = await handle.statistics()
    except SupervisorExited as exc:
        return SupervisorView(pid=pid, error=f"exited: {exc.reason!r}")
    except TimeoutError:
        return SupervisorView(pid=pid, error=f"no answer within {timeout:g} s")
    restarts = dict(statistics.restarts_by_key)
    return SupervisorView(
        pid=pid,
        children=tuple(_child_view(child, restarts.get(child.key, 0)) for child in children),
        running=statistics.running,
        total_restarts=statistics.total_restarts,
        max_restarts=statistics.max_restarts,
        within_seconds=statistics.within_seconds,
        restarts_in_window=statistics.restarts_in_window,
    )


def _child_view(child: Child, restarts: int = 0) -> ChildView:
    state: ChildState
    pid: Pid | None = None
    match child.state:
        case ChildRunning(pid=running):
            state, pid = "running", running
        case ChildRestarting(pid=last):
            state, pid = "restarting", last
        case ChildStopped():
            state = "stopped"
        case ChildStartIgnored():
            state = "ignored"
        case _:
            # A state of a newer supervisor: shown, rather than failing the whole snapshot.
            state, pid = "unknown", getattr(child.state, "pid", None)
    spec = child.spec
    start: Any = spec.start
    starter = None
    if isinstance(start, StarterProcess):
        starter = start.pid
        described = f"starter {start.pid}"
    elif isinstance(start, RunClosure):
        described = f"closure {start.name}"
    elif isinstance(start, LocalStart):
        fn = getattr(start.fn, "func", start.fn)
        described = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    else:
        described = type(start).__qualname__
    return ChildView(
        key=child.key,
        state=state,
        pid=pid,
        type=spec.type.name.lower(),
        restart=spec.restart.name.lower(),
        start=described,
        starter=starter,
        restarts=restarts,
    )


async def _ask_starter(me: Process, pid: Pid, timeout: float) -> StarterView:
    try:
        statistics = await me.call(pid, StarterGetStatistics(), timeout=timeout)
    except CallFailed as exc:
        return StarterView(pid=pid, error=f"exited: {exc.reason!r}")
    except CallTimeout:
        return StarterView(pid=pid, error=f"no answer within {timeout:g} s")
    if type(statistics) is not StarterStatistics:
        return StarterView(pid=pid, error=f"unexpected answer {statistics!r}")
    return StarterView(
        pid=pid,
        owner=statistics.owner,
        owner_holds=statistics.owner_holds,
        holders=tuple(sorted(statistics.holders)),
        references=tuple(sorted((holder, key, seq) for (holder, key), seq in statistics.references.items())),
        spurious_releases=statistics.spurious_releases,
        children_started=statistics.children_started,
    )
