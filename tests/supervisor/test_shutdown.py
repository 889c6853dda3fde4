"""Shutdown orders, stop policies, node shutdown and nested supervisors."""

from __future__ import annotations

import anyio
import pytest

from refcount_starter import supervisor
from refcount_starter.runtime import Down, ExitSignal, Kill, Killed, Node, Normal, Process
from refcount_starter.supervisor import (
    LEFT_TO_RIGHT,
    ChildSpec,
    ChildStopped,
    ParallelShutdown,
    ReachedMaxRestartIntensity,
    RestartLimit,
    RestartOne,
    SequentialShutdown,
    StopImmediately,
    StopTimeout,
    SupervisedChildDied,
    SupervisedChildStarted,
    SupervisedChildStopped,
    Supervisor,
)

from .helpers import WAIT, next_event, pid_of, recorder, stubborn, wait_dead, worker

pytestmark = pytest.mark.anyio


def recorders(keys: str, log: list[str]) -> list[ChildSpec]:
    return [ChildSpec.worker(k, recorder, k, log) for k in keys]


async def test_sequential_shutdown_is_right_to_left_by_default() -> None:
    """SequentialShutdown() stops children in reverse start order, as OTP."""
    log: list[str] = []
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), recorders("abc", log))
        await sup.start_new_child(ChildSpec.worker("d", recorder, "d", log))
        await sup.shutdown_and_wait()
    assert log == ["d", "c", "b", "a"]


async def test_sequential_shutdown_left_to_right() -> None:
    """SequentialShutdown(LEFT_TO_RIGHT) stops children in start order."""
    log: list[str] = []
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me, RestartOne(), recorders("abc", log), shutdown=SequentialShutdown(LEFT_TO_RIGHT)
        )
        await sup.shutdown_and_wait()
    assert log == ["a", "b", "c"]


async def rendezvous(p: Process, key: str, arrived: list[str], everyone: anyio.Event, size: int) -> None:
    """On its stop signal, waits until every sibling got its own: only a parallel stop ends well."""
    p.trap_exits = True
    await p.receive(ExitSignal)
    arrived.append(key)
    if len(arrived) == size:
        everyone.set()
    await everyone.wait()


async def test_parallel_shutdown_signals_all_at_once() -> None:
    """ParallelShutdown signals every child before waiting for any."""
    arrived: list[str] = []
    everyone = anyio.Event()
    async with Node() as node, node.process() as me:
        specs = [
            ChildSpec(
                "a", supervisor.LocalStart(rendezvous, ("a", arrived, everyone, 3)), shutdown=StopTimeout(30)
            ),
            ChildSpec(
                "b", supervisor.LocalStart(rendezvous, ("b", arrived, everyone, 3)), shutdown=StopTimeout(30)
            ),
            ChildSpec(
                "c", supervisor.LocalStart(rendezvous, ("c", arrived, everyone, 3)), shutdown=StopTimeout(30)
            ),
        ]
        sup = await supervisor.start(me, RestartOne(), specs, shutdown=ParallelShutdown())
        await sup.subscribe()
        await sup.shutdown_and_wait()
        reasons = [e.reason for e in me.queued() if isinstance(e, SupervisedChildStopped)]
    assert sorted(arrived) == ["a", "b", "c"]
    assert reasons == [Normal()] * 3


async def test_parallel_shutdown_kills_the_slow() -> None:
    """Under ParallelShutdown a child that ignores Shutdown is killed after its timeout."""
    log: list[str] = []
    async with Node() as node, node.process() as me:
        specs = [ChildSpec("s", stubborn, shutdown=StopTimeout(0.05)), *recorders("ab", log)]
        sup = await supervisor.start(me, RestartOne(), specs, shutdown=ParallelShutdown())
        await sup.subscribe()
        await sup.shutdown_and_wait()
        stopped = {e.key: e.reason for e in me.queued() if isinstance(e, SupervisedChildStopped)}
    assert stopped == {"s": Killed(), "a": Normal(), "b": Normal()}


async def test_stop_timeout_then_kill() -> None:
    """StopTimeout sends Shutdown, waits, then kills a child that does not stop."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("s", stubborn, shutdown=StopTimeout(0.05))])
        await sup.subscribe()
        pid = await pid_of(sup, "s")
        await sup.terminate_child("s")
        stopped = await next_event(me, SupervisedChildStopped, key="s")
        assert stopped.reason == Killed() and not node.is_alive(pid)
        await sup.shutdown_and_wait()


async def test_stop_immediately_kills() -> None:
    """StopImmediately kills the child at once."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("s", stubborn, shutdown=StopImmediately())])
        await sup.subscribe()
        await sup.terminate_child("s")
        assert (await next_event(me, SupervisedChildStopped, key="s")).reason == Killed()
        await sup.shutdown_and_wait()


async def test_node_shutdown_stops_the_children_in_order() -> None:
    """Leaving the node stops a supervisor, which stops its children right to left."""
    log: list[str] = []
    async with Node() as node, node.process() as me:
        await supervisor.start(me, RestartOne(), recorders("abc", log))
    assert log == ["c", "b", "a"]
    assert node.process_count == 0


async def test_nested_supervisor_stops_its_subtree_in_order() -> None:
    """A supervisor child stops its own children (in its order) when its parent stops it."""
    log: list[str] = []
    async with Node() as node, node.process() as me:
        sub = ChildSpec.supervisor("sub", RestartOne(), recorders("xy", log))
        sup = await supervisor.start(me, RestartOne(), [sub, *recorders("w", log)])
        await sup.shutdown_and_wait()
        assert node.processes() == [me.pid]
    assert log == ["w", "y", "x"]


async def test_nested_supervisor_restarts_its_own_children() -> None:
    """A crash inside a child supervisor is handled there; the parent does not notice."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me, RestartOne(), [ChildSpec.supervisor("sub", RestartOne(), [ChildSpec("x", worker)])]
        )
        sub = Supervisor(await pid_of(sup, "sub"), me)
        await sub.subscribe()
        me.send(await pid_of(sub, "x"), "crash")
        await next_event(me, SupervisedChildStarted, key="x")
        assert (await sup.statistics()).total_restarts == 0
        assert (await sub.statistics()).total_restarts == 1
        await sup.shutdown_and_wait()
        assert node.processes() == [me.pid]


async def test_nested_intensity_escalates_to_the_parent() -> None:
    """A child supervisor that gives up exits ReachedMaxRestartIntensity; its parent restarts it."""
    async with Node() as node, node.process() as me:
        nested = ChildSpec.supervisor("sub", RestartOne(RestartLimit(0, 5.0)), [ChildSpec("x", worker)])
        sup = await supervisor.start(me, RestartOne(RestartLimit(5, 60.0)), [nested])
        await sup.subscribe()
        sub = Supervisor(await pid_of(sup, "sub"), me)
        x = await pid_of(sub, "x")
        me.exit(x, Kill())
        died = await next_event(me, SupervisedChildDied, key="sub")
        assert isinstance(died.reason, ReachedMaxRestartIntensity) and died.reason.key == "x"
        started = await next_event(me, SupervisedChildStarted, key="sub")
        again = Supervisor(started.pid, me)
        assert [c.key for c in await again.list_children()] == ["x"]
        await sup.shutdown_and_wait()
        assert node.processes() == [me.pid]


async def test_unlinked_supervisor_outlives_its_caller() -> None:
    """A supervisor started without link keeps running when its caller exits."""
    async with Node() as node:
        async with node.process() as me:
            sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker)])
        assert node.is_alive(sup.pid)
        async with node.process() as other:
            handle = sup.using(other)
            child = await handle.lookup_child("w")
            assert child is not None and child.state != ChildStopped()
            ref = other.monitor(sup.pid)
            await handle.shutdown()
            await other.receive(Down, where=lambda m: m.ref == ref, timeout=WAIT)
            await wait_dead(other, [sup.pid])
