"""The client API and its typed errors, and the ChildStart lease calls."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from refcount_starter import supervisor
from refcount_starter.remote.closures import RemoteTable, remotable
from refcount_starter.runtime import Crashed, Kill, Node, NoProc, Process, ProcessExit, Shutdown
from refcount_starter.supervisor import (
    SUPERVISOR,
    TEMPORARY,
    AlreadyRunning,
    BadClosure,
    ChildInitIgnore,
    ChildNotFound,
    ChildNotStopped,
    ChildRunning,
    ChildSpec,
    ChildStartIgnored,
    ChildStatus,
    ChildStopped,
    DuplicateChild,
    RestartOne,
    RunClosure,
    StarterGone,
    StartFailureDied,
    SupervisedChildDied,
    SupervisedChildIgnored,
    SupervisedChildStarted,
    SupervisorExited,
    SupervisorStatistics,
)

from .helpers import DiesAtStart, RecordingStart, drain, next_event, pid_of, wait_dead, worker

pytestmark = pytest.mark.anyio


async def test_start_new_child_then_terminate_and_delete() -> None:
    """start_new_child runs the child; terminate stops it; delete removes its spec."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        state = await sup.start_new_child(ChildSpec("w", worker))
        assert isinstance(state, ChildRunning)
        assert node.is_alive(state.pid)
        await sup.terminate_child("w")
        assert not node.is_alive(state.pid)
        child = await sup.lookup_child("w")
        assert child is not None and child.state == ChildStopped()
        await sup.delete_child("w")
        assert await sup.lookup_child("w") is None
        assert await sup.list_children() == []
        await sup.shutdown_and_wait()


async def test_add_child_then_start_child() -> None:
    """add_child keeps the spec stopped; start_child and restart_child start it."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        assert await sup.add_child(ChildSpec("w", worker)) == ChildStopped()
        assert (await sup.statistics()).running == 0
        state = await sup.start_child("w")
        assert isinstance(state, ChildRunning)
        await sup.terminate_child("w")
        again = await sup.restart_child("w")
        assert isinstance(again, ChildRunning) and again.pid != state.pid
        await sup.shutdown_and_wait()


async def test_list_children_in_start_order() -> None:
    """list_children lists children left to right, in the order they were added."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("a", worker), ChildSpec("b", worker)])
        await sup.add_child(ChildSpec("c", worker))
        await sup.start_new_child(ChildSpec("d", worker))
        assert [c.key for c in await sup.list_children()] == ["a", "b", "c", "d"]
        await sup.shutdown_and_wait()


async def test_statistics_counts() -> None:
    """statistics counts defined, running, workers, supervisors and restarts correctly."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me,
            RestartOne(),
            [ChildSpec("a", worker), ChildSpec.supervisor("s", RestartOne(), [ChildSpec("x", worker)])],
        )
        await sup.add_child(ChildSpec("b", worker))
        await sup.subscribe()
        limit = {"max_restarts": 1, "within_seconds": 5.0}
        keys = ("a", "s", "b")
        assert await sup.statistics() == SupervisorStatistics(
            3, 2, 2, 1, 1, 1, 0, **limit, restarts_by_key=tuple((k, 0) for k in keys)
        )
        a = await pid_of(sup, "a")
        me.exit(a, Kill())
        await next_event(me, SupervisedChildStarted, key="a")
        by_key = (("a", 1), ("s", 0), ("b", 0))
        assert await sup.statistics() == SupervisorStatistics(
            3, 2, 2, 1, 1, 1, 1, **limit, restarts_in_window=1, restarts_by_key=by_key
        )
        await sup.terminate_child("s")
        assert await sup.statistics() == SupervisorStatistics(
            3, 1, 2, 1, 1, 0, 1, **limit, restarts_in_window=1, restarts_by_key=by_key
        )
        await sup.delete_child("s")
        assert await sup.statistics() == SupervisorStatistics(
            2, 1, 2, 0, 1, 0, 1, **limit, restarts_in_window=1, restarts_by_key=(("a", 1), ("b", 0))
        )
        await sup.shutdown_and_wait()


async def test_duplicate_child() -> None:
    """Adding a key that exists is DuplicateChild, and the existing child is untouched."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker)])
        pid = await pid_of(sup, "w")
        with pytest.raises(DuplicateChild, match="'w'"):
            await sup.add_child(ChildSpec("w", worker))
        with pytest.raises(DuplicateChild):
            await sup.start_new_child(ChildSpec("w", worker))
        assert await pid_of(sup, "w") == pid
        await sup.shutdown_and_wait()


async def test_duplicate_keys_in_initial_list() -> None:
    """Two initial children with one key are DuplicateChild before anything starts."""
    async with Node() as node, node.process() as me:
        before = node.process_count
        with pytest.raises(DuplicateChild, match="more than once"):
            await supervisor.start(me, RestartOne(), [ChildSpec("w", worker), ChildSpec("w", worker)])
        assert node.process_count == before


async def test_already_running() -> None:
    """start_child and restart_child of a running child are AlreadyRunning."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker)])
        with pytest.raises(AlreadyRunning):
            await sup.start_child("w")
        with pytest.raises(AlreadyRunning):
            await sup.restart_child("w")
        await sup.shutdown_and_wait()


async def test_child_not_found() -> None:
    """Every operation on an unknown key is ChildNotFound; lookup_child returns None."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        for op in (sup.start_child, sup.restart_child, sup.terminate_child, sup.delete_child):
            with pytest.raises(ChildNotFound, match="'nope'"):
                await op("nope")
        assert await sup.lookup_child("nope") is None
        await sup.shutdown_and_wait()


async def test_child_not_stopped() -> None:
    """delete_child of a running child is ChildNotStopped and keeps it running."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker)])
        with pytest.raises(ChildNotStopped, match="terminate it"):
            await sup.delete_child("w")
        assert node.is_alive(await pid_of(sup, "w"))
        await sup.shutdown_and_wait()


async def test_start_that_raises_is_start_failure_died_crashed() -> None:
    """A child whose start raises is StartFailureDied with the exception as Crashed; not kept."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        start = RecordingStart()
        start.fail_starts_after = 0
        with pytest.raises(StartFailureDied) as info:
            await sup.start_new_child(ChildSpec("w", start))
        assert isinstance(info.value.reason, Crashed)
        assert info.value.reason.exc_type == "RuntimeError"
        assert await sup.lookup_child("w") is None
        assert start.calls == [("acquire", "w"), ("start", "w"), ("release", "w")]
        await sup.shutdown_and_wait()


async def test_start_failure_on_start_child_keeps_the_spec() -> None:
    """start_child whose start fails raises StartFailureDied and leaves the child stopped."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        await sup.add_child(ChildSpec("w", DiesAtStart(NoProc())))
        with pytest.raises(StartFailureDied) as info:
            await sup.start_child("w")
        assert info.value.reason == NoProc()
        child = await sup.lookup_child("w")
        assert child is not None and child.state == ChildStopped()
        await sup.shutdown_and_wait()


async def test_initial_child_failure_fails_start_and_stops_the_others() -> None:
    """A failing initial child makes start raise; the children already started are stopped."""
    async with Node() as node, node.process() as me:
        before = set(node.processes())
        start = RecordingStart()
        start.fail_starts_after = 0
        with pytest.raises(StartFailureDied):
            await supervisor.start_link(me, RestartOne(), [ChildSpec("a", worker), ChildSpec("b", start)])
        # The supervisor and "a" are gone, and the linked caller was not taken down.
        for pid in set(node.processes()) - before:
            await node.wait(pid)
        assert set(node.processes()) == before


async def test_bad_closure_at_add_time() -> None:
    """A RunClosure naming an unknown function is BadClosure at add_child, and not added."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        with pytest.raises(BadClosure, match=r"no\.such\.fn"):
            await sup.add_child(ChildSpec("w", RunClosure("no.such.fn")))
        assert await sup.list_children() == []
        await sup.shutdown_and_wait()


async def test_run_closure_starts_the_named_function() -> None:
    """A RunClosure starts the function registered under its name, with its arguments."""
    table = RemoteTable()

    @remotable(name="tests.echo", table=table)
    async def echo(p: Process, tag: str) -> None:
        message = await p.receive()
        p.send(message, tag)

    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        state = await sup.start_new_child(ChildSpec("w", RunClosure("tests.echo", ("hello",), table)))
        assert isinstance(state, ChildRunning)
        me.send(state.pid, me.pid)
        assert await me.receive(timeout=5) == "hello"
        assert RunClosure.of("tests.echo", 1).serializable
        await sup.shutdown_and_wait()


async def test_call_to_dead_supervisor_is_supervisor_exited() -> None:
    """A call to a supervisor that exited raises SupervisorExited with its reason, never hangs."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        assert await sup.shutdown_and_wait() == Shutdown()
        with pytest.raises(SupervisorExited) as info:
            await sup.list_children()
        reason = info.value.reason
        assert isinstance(reason, NoProc) and reason.last_reason == Shutdown()


async def test_shutdown_of_dead_supervisor_is_a_no_op() -> None:
    """shutdown of a gone supervisor does nothing; shutdown_and_wait returns NoProc."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        await sup.shutdown_and_wait()
        await sup.shutdown()
        assert isinstance(await sup.shutdown_and_wait(), NoProc)


async def test_acquire_start_release_calls() -> None:
    """acquire once at add, start at each (re)start, release exactly once at delete."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        await sup.subscribe()
        start = RecordingStart()
        with pytest.raises(DuplicateChild):
            await sup.add_child(ChildSpec("w", worker))
            await sup.add_child(ChildSpec("w", start))
        await sup.delete_child("w")
        assert start.calls == []  # a duplicate key never reaches acquire
        await sup.add_child(ChildSpec("w", start))
        assert start.calls == [("acquire", "w")]
        await sup.start_child("w")
        drain(me)
        me.send(await pid_of(sup, "w"), "crash")
        await next_event(me, SupervisedChildStarted, key="w")
        await sup.terminate_child("w")
        await sup.delete_child("w")
        assert start.calls == [("acquire", "w"), ("start", "w"), ("start", "w"), ("release", "w")]
        await sup.shutdown_and_wait()


async def test_acquire_failure_goes_back_unchanged() -> None:
    """An exception from acquire reaches the caller unchanged and the spec is not added."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        gone = StarterGone("w", me.pid, NoProc(me.pid))
        start = RecordingStart(fail_acquire=gone)
        with pytest.raises(StarterGone) as info:
            await sup.start_new_child(ChildSpec("w", start))
        assert info.value is gone
        assert start.calls == [("acquire", "w")]
        assert await sup.list_children() == []
        await sup.shutdown_and_wait()


async def test_temporary_child_spec_released_when_it_exits() -> None:
    """A temporary child's spec is dropped and released when it exits."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        await sup.subscribe()
        start = RecordingStart()
        state = await sup.start_new_child(ChildSpec("t", start, restart=TEMPORARY))
        assert isinstance(state, ChildRunning)
        me.send(state.pid, "crash")
        await next_event(me, SupervisedChildDied, key="t")
        assert await sup.lookup_child("t") is None
        assert start.count("release") == 1
        await sup.shutdown_and_wait()


async def test_child_init_ignore() -> None:
    """A child that raises ChildInitIgnore is ChildStartIgnored; a temporary one is dropped."""

    async def ignores(p: Process) -> None:
        raise ChildInitIgnore()

    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me)
        await sup.subscribe()
        await sup.start_new_child(ChildSpec("i", ignores))
        await next_event(me, SupervisedChildIgnored, key="i")
        child = await sup.lookup_child("i")
        assert child is not None and child.state == ChildStartIgnored()
        assert (await sup.statistics()).total_restarts == 0
        await sup.start_new_child(ChildSpec("t", ignores, restart=TEMPORARY))
        await next_event(me, SupervisedChildIgnored, key="t")
        assert await sup.lookup_child("t") is None
        await sup.delete_child("i")
        await sup.shutdown_and_wait()


async def test_registered_name() -> None:
    """A child with registered_name is registered under it at each start."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker, registered_name="svc")])
        await sup.subscribe()
        first = await pid_of(sup, "w")
        assert node.whereis("svc") == first
        me.send("svc", "crash")
        second = (await next_event(me, SupervisedChildStarted, key="w")).pid
        assert node.whereis("svc") == second != first
        await sup.shutdown_and_wait()


async def test_handle_using_another_process() -> None:
    """handle.using(other) calls from another process."""
    async with Node() as node, node.process() as me, node.process() as other:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker)])
        assert [c.key for c in await sup.using(other).list_children()] == ["w"]
        assert sup.using(other) == sup
        await sup.shutdown_and_wait()


async def test_supervisor_spec_type() -> None:
    """A nested supervisor's spec is of type SUPERVISOR."""
    spec = ChildSpec.supervisor("s", RestartOne())
    assert spec.type is SUPERVISOR


async def test_everything_stops_when_the_caller_exits_linked() -> None:
    """A supervisor started with link=True stops its children when its caller exits."""
    async with Node() as node:
        async with node.process() as me:
            sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker)], link=True)
            pids = [sup.pid, await pid_of(sup, "w")]
        async with node.process() as watcher:
            await wait_dead(watcher, pids)


async def test_caller_crash_takes_linked_supervisor_down_with_its_reason() -> None:
    """An exit signal from the parent stops the children and the supervisor with that reason."""
    async with Node() as node, node.process() as me:

        async def owner(p: Process) -> None:
            sup = await supervisor.start_link(p, RestartOne(), [ChildSpec("w", worker)])
            p.send(me.pid, (sup.pid, await pid_of(sup, "w")))
            await p.receive()
            raise ProcessExit(Shutdown("owner done"))

        owner_pid = me.spawn(owner)
        sup_pid, child = await me.receive(tuple, timeout=5)
        ref = me.monitor(sup_pid)
        me.send(owner_pid, "go")
        down = await me.receive(where=lambda m: getattr(m, "ref", None) == ref, timeout=5)
        assert down.reason == Shutdown("owner done")
        assert not node.is_alive(child)


async def gated(p: Process, gate: anyio.Event, *, task_status: ChildStatus) -> None:
    """Acknowledges its start once ``gate`` is set, then idles."""
    await gate.wait()
    task_status.started()
    await p.receive()


async def test_a_cancelled_start_link_does_not_come_back_to_its_caller() -> None:
    """Guards against a cancelled ``start(..., link=True)`` that left the link: the
    supervisor, stopped by the cancel once its initial children ran, exited ``Shutdown()``
    over the link into a caller that does not trap exits."""
    gate = anyio.Event()
    async with Node() as node, node.process() as me:
        with anyio.CancelScope() as scope:
            starting = supervisor.start(me, RestartOne(), [ChildSpec.worker("g", gated, gate)], link=True)
            async with anyio.create_task_group() as tg:

                async def cancel_once_the_child_runs() -> None:
                    while node.process_count < 3:  # the caller, the supervisor, its child
                        await anyio.lowlevel.checkpoint()
                    scope.cancel()

                tg.start_soon(cancel_once_the_child_runs)
                await starting
        assert scope.cancelled_caught
        (sup_pid,) = [pid for pid in node.processes() if "supervisor_process" in str(node.info(pid).function)]
        gate.set()
        assert await node.wait(sup_pid) == Shutdown()
        assert me.reason is None and me.info().links == ()


@pytest.mark.parametrize("how", ["async with", "shutdown_and_wait", "shutdown"])
async def test_stopping_a_linked_supervisor_leaves_its_caller_running(how: str) -> None:
    """Guards against a linked caller killed by the stop it asked for (OTP's
    ``supervisor:stop/1`` leaves a linked caller running): the caller is unlinked first, and
    keeps no exit signal."""
    async with Node() as node, node.process() as me:
        if how == "async with":
            async with supervisor.start_link(me, RestartOne(), [ChildSpec("w", worker)]) as sup:
                child = await pid_of(sup, "w")
        else:
            sup = await supervisor.start_link(me, RestartOne(), [ChildSpec("w", worker)])
            child = await pid_of(sup, "w")
            if how == "shutdown":
                await sup.shutdown()
                await node.wait(sup.pid)
            else:
                assert await sup.shutdown_and_wait() == Shutdown()
        assert not node.is_alive(sup.pid) and not node.is_alive(child)
        assert me.reason is None and me.info().links == () and me.queued() == []


class EqualityRaises:
    """A hashable key whose ``==`` raises (its hash collides with the child's key)."""

    def __hash__(self) -> int:
        return hash("w")

    def __eq__(self, other: object) -> bool:
        raise ValueError("cannot compare")


async def test_a_key_that_cannot_be_compared_is_the_callers_error() -> None:
    """Guards against a supervisor that crashed, with its children, on a key whose ``==``
    raises: the caller gets a TypeError naming the key, the supervisor goes on."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", worker)])
        child = await pid_of(sup, "w")
        for ask in (sup.lookup_child, sup.terminate_child, sup.restart_child, sup.delete_child):
            with pytest.raises(TypeError, match=r"hashable and comparable.*ValueError: cannot compare"):
                await ask(EqualityRaises())
        assert node.is_alive(sup.pid) and node.is_alive(child)
        await sup.shutdown_and_wait()
