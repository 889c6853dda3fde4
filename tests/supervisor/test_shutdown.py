"""Shutdown orders, stop policies, node shutdown and nested supervisors."""

from __future__ import annotations

import contextlib

import anyio
import pytest

from refcount_starter import supervisor
from refcount_starter.runtime import (
    Down,
    ExitReason,
    ExitSignal,
    Kill,
    Killed,
    Node,
    Normal,
    Pid,
    Process,
    ProcessExit,
    Shutdown,
)
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
    SupervisorExited,
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


async def slow_cleanup(p: Process, test: Pid) -> None:
    """Traps exits; on the first exit signal it starts a cleanup that only a second exit
    signal (or its message) ends, and reports both to ``test``."""
    p.trap_exits = True
    first = await p.receive(ExitSignal)
    p.send(test, ("stopping", first.reason))
    second = await p.receive()
    p.send(test, ("then", second))


@pytest.mark.parametrize("how", ["terminate_child", "shutdown"])
async def test_a_supervisor_killed_while_it_stops_a_child_still_takes_it_down(how: str) -> None:
    """Guards against a stop that unlinked the child before signalling it (OTP's shutdown/2
    keeps the link until the DOWN): a supervisor killed while it waits for a trapping child
    still sends it its exit signal through the link, so the child is not left orphaned."""
    async with Node() as node, node.process() as me, node.process() as other:
        sup = await supervisor.start(
            me, RestartOne(), [ChildSpec.worker("c", slow_cleanup, me.pid, shutdown=StopTimeout(60.0))]
        )
        child = await pid_of(sup, "c")
        async with anyio.create_task_group() as tg:
            if how == "terminate_child":
                tg.start_soon(_terminate_quietly, sup.using(other), "c")
            else:
                await sup.shutdown()
            assert await me.receive(tuple, timeout=WAIT) == ("stopping", Shutdown())
            assert node.info(child).links == (sup.pid,)  # still linked while it is stopped
            me.exit(sup.pid, Kill())
            assert await node.wait(sup.pid) == Killed()
        assert await me.receive(tuple, timeout=WAIT) == ("then", ExitSignal(sup.pid, Killed()))
        assert await node.wait(child) == Normal()


async def _terminate_quietly(sup: Supervisor, key: str) -> None:
    with contextlib.suppress(SupervisorExited):
        await sup.terminate_child(key)


async def test_a_stopped_child_leaves_no_link_and_no_exit_signal_behind() -> None:
    """The link kept during the stop goes with the child: the supervisor keeps no link and no
    exit signal of it, whatever the stop policy."""
    async with Node() as node, node.process() as me:
        specs = [
            ChildSpec("t", worker, shutdown=StopTimeout(5.0)),
            ChildSpec("k", worker, shutdown=StopImmediately()),
            ChildSpec("s", stubborn, shutdown=StopTimeout(0.01)),
        ]
        sup = await supervisor.start(me, RestartOne(), specs)
        for key in "tks":
            await sup.terminate_child(key)
        info = node.info(sup.pid)
        assert info.links == (me.pid,) or info.links == ()
        assert info.mailbox_size == 0
        await sup.shutdown_and_wait()


async def signals_back_then_exits(p: Process, reason: ExitReason) -> None:
    """Traps exits; asked to stop, sends its supervisor an exit signal of its own, then exits."""
    p.trap_exits = True
    stop = await p.receive(ExitSignal)
    p.exit(stop.sender, reason)
    raise ProcessExit(Shutdown("cleaned up"))


@pytest.mark.parametrize("reason", [Normal(), Shutdown("from the child")])
async def test_a_child_that_signals_its_supervisor_while_it_stops_leaves_nothing_behind(
    reason: ExitReason,
) -> None:
    """Guards against the exit signals of a stopped child reaching the supervisor's loop as a
    non-child's (which stops it): its own signal and its link's are both flushed."""
    async with Node() as node, node.process() as me:
        specs = [ChildSpec.worker("c", signals_back_then_exits, reason), ChildSpec("w", worker)]
        sup = await supervisor.start(me, RestartOne(), specs)
        sibling = await pid_of(sup, "w")
        await sup.terminate_child("c")
        # Answered after the loop took whatever was left: the supervisor is still up.
        assert [c.key for c in await sup.list_children()] == ["c", "w"]
        assert node.is_alive(sup.pid) and node.is_alive(sibling)
        assert node.info(sup.pid).mailbox_size == 0
        assert (await sup.statistics()).total_restarts == 0
        await sup.shutdown_and_wait()
