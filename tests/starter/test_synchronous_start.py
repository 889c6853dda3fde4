"""OTP's synchronous start through a starter: the child acknowledges straight to the
supervisor, so a start through a starter succeeds, is ignored or fails like a local one, and
the reference list only changes where the spec itself goes. Every call to a starter is
bounded. See ADR-0009 and ADR-0002."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

from refcount_starter import supervisor
from refcount_starter.runtime import (
    Call,
    Crashed,
    Kill,
    Node,
    NoProc,
    Normal,
    Pid,
    Process,
    ProcessExit,
    Shutdown,
)
from refcount_starter.starter import StarterProcess, spawn_child_starter
from refcount_starter.starter.errors import StarterUnresponsive
from refcount_starter.supervisor import (
    TEMPORARY,
    ChildInitIgnore,
    ChildRunning,
    ChildSpec,
    ChildStartIgnored,
    ChildStatus,
    ChildStopped,
    InitTimeout,
    RestartLimit,
    RestartOne,
    StartFailureDied,
    SupervisedChildStarted,
    SupervisedChildStartFailure,
)

from ..supervisor.helpers import WAIT, next_event, pid_of

pytestmark = pytest.mark.anyio

MANY = RestartLimit(100, 60.0)


async def acks(p: Process, info: Any = None, *, task_status: ChildStatus) -> None:
    """Acknowledges with ``info``, then runs until told to stop."""
    task_status.started(info)
    await p.receive(str)


async def ignores(p: Process, *, task_status: ChildStatus) -> None:
    """Asks to be ignored before it acknowledged."""
    raise ChildInitIgnore()


async def fails(p: Process, *, task_status: ChildStatus) -> None:
    """Fails its start before it acknowledged."""
    raise ProcessExit(Shutdown("no database"))


async def never_acks(p: Process, *, task_status: ChildStatus) -> None:
    """Initialises for ever."""
    await p.receive(type(None))


async def fails_on_attempt(p: Process, attempts: list[int], bad: int, *, task_status: ChildStatus) -> None:
    """The ``bad``-th start fails before it acknowledged; the others run until told."""
    attempts.append(len(attempts) + 1)
    if len(attempts) == bad:
        raise RuntimeError(f"attempt {bad} fails")
    task_status.started(len(attempts))
    message = await p.receive(str)
    if message == "crash":
        raise RuntimeError("crashed")


async def not_a_starter(p: Process) -> None:
    """A live process that takes calls and never answers them."""
    while True:
        await p.receive(Call)


async def answers_junk(p: Process) -> None:
    """A live process that answers every call with something no starter says."""
    while True:
        call = await p.receive(Call)
        p.reply(call, "pong")


async def test_a_start_through_a_starter_returns_after_the_acknowledgement() -> None:
    """start_new_child through a starter answers ``ChildRunning(pid, info)`` with the info the
    child acknowledged with, and the initial list through a starter starts in order."""
    async with Node() as node, node.process() as me, await spawn_child_starter(me, acks, "ready") as starter:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("first", starter.child_start)])
        state = (await sup.list_children())[0].state
        assert isinstance(state, ChildRunning) and state.info == "ready"
        started = await sup.start_new_child(ChildSpec("db", starter.child_start))
        assert isinstance(started, ChildRunning) and started.info == "ready"
        assert node.is_alive(started.pid)
        await sup.terminate_child("db")
        again = await sup.restart_child("db")
        assert isinstance(again, ChildRunning) and again.pid != started.pid
        await sup.shutdown_and_wait()


async def test_sup_start_ignore_child_through_a_starter() -> None:
    """supervisor_SUITE:sup_start_ignore_child through a starter: ignored at once, and the
    supervisor keeps holding its reference until delete_child."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        async with await spawn_child_starter(me, ignores) as starter:
            assert await sup.start_new_child(ChildSpec("db", starter.child_start)) == ChildStartIgnored()
            stats = await starter.statistics()
            assert (sup.pid, "db") in stats.references and stats.children_started == 1
            assert await sup.start_child("db") == ChildStartIgnored()
            assert (sup.pid, "db") in (await starter.statistics()).references
            await sup.delete_child("db")
            stats = await starter.statistics()
            assert stats.references == {} and stats.spurious_releases == 0
        assert await starter.wait() == Normal()
        await sup.shutdown_and_wait()


async def test_sup_start_ignore_temporary_child_through_a_starter() -> None:
    """supervisor_SUITE:sup_start_ignore_temporary_child through a starter: the spec is not
    kept, so its reference is released, and the starter stops once its owner lets go."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        starter = await spawn_child_starter(me, ignores)
        spec = ChildSpec("db", starter.child_start, restart=TEMPORARY)
        assert await sup.start_new_child(spec) == ChildStartIgnored()
        assert await sup.lookup_child("db") is None
        stats = await starter.statistics()
        assert stats.references == {} and stats.spurious_releases == 0
        await starter.release()
        assert await starter.wait() == Normal()
        await sup.shutdown_and_wait()


async def test_sup_start_error_return_through_a_starter() -> None:
    """supervisor_SUITE:sup_start_error_return through a starter: the start fails with the
    child's reason; start_new_child's reference is released, start_child's kept."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        async with await spawn_child_starter(me, fails) as starter:
            with pytest.raises(StartFailureDied) as failed:
                await sup.start_new_child(ChildSpec("db", starter.child_start))
            assert failed.value.reason == Shutdown("no database")
            assert await sup.lookup_child("db") is None
            assert (await starter.statistics()).references == {}
            await sup.add_child(ChildSpec("db", starter.child_start))
            with pytest.raises(StartFailureDied):
                await sup.start_child("db")
            child = await sup.lookup_child("db")
            assert child is not None and child.state == ChildStopped()
            stats = await starter.statistics()
            assert (sup.pid, "db") in stats.references and stats.children_started == 2
            await sup.delete_child("db")
            assert (await starter.statistics()).spurious_releases == 0
        await sup.shutdown_and_wait()
        assert node.process_count == 1


async def test_a_start_timeout_through_a_starter_kills_the_child() -> None:
    """A child started through a starter that never acknowledges is killed at its start
    timeout, and the start fails with ``InitTimeout``; the starter never waited on it."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        async with await spawn_child_starter(me, never_acks) as starter:
            spec = ChildSpec("db", starter.child_start, start_timeout=0.05)
            with pytest.raises(StartFailureDied) as failed:
                await sup.start_new_child(spec)
            assert failed.value.reason == InitTimeout(0.05)
            stats = await starter.statistics()
            assert stats.children_started == 1 and stats.references == {}
        await starter.wait()
        await sup.shutdown_and_wait()
        assert node.process_count == 1


async def test_a_failed_restart_through_a_starter_is_retried_and_counted() -> None:
    """OTP's try_again_restart through a starter: a restart whose child fails before it
    acknowledged is retried, counted, and the reference stays held throughout."""
    async with Node() as node, node.process() as me:
        attempts: list[int] = []
        async with await spawn_child_starter(me, fails_on_attempt, attempts, 2) as starter:
            sup = await supervisor.start(me, RestartOne(MANY), [ChildSpec("db", starter.child_start)])
            await sup.subscribe()
            me.send(await pid_of(sup, "db"), "crash")
            await next_event(me, SupervisedChildStartFailure, key="db")
            started = await next_event(me, SupervisedChildStarted, key="db")
            assert attempts == [1, 2, 3]
            assert await sup.lookup_child("db") is not None
            child = await sup.lookup_child("db")
            assert child is not None and child.state == ChildRunning(started.pid, 3)
            assert (await sup.statistics()).total_restarts == 2
            assert (sup.pid, "db") in (await starter.statistics()).references
            await sup.shutdown_and_wait()


@pytest.mark.parametrize("impostor", [not_a_starter, answers_junk], ids=["silent", "junk"])
async def test_a_pid_that_is_not_a_starter_fails_the_start_without_wedging(impostor: Any) -> None:
    """A ``StarterProcess`` naming a live process that is not a starter (or a starter that
    stopped answering) is a ``StarterUnresponsive`` start failure within its timeout, at the
    add and at a start; the supervisor answers other calls afterwards."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("w", acks)])
        pid = me.spawn(impostor)
        start = StarterProcess(pid, timeout=0.05)
        with pytest.raises(StarterUnresponsive) as failed:
            await sup.start_new_child(ChildSpec("db", start))
        assert failed.value.starter == pid and "starter" in str(failed.value)
        with pytest.raises(StarterUnresponsive):
            await sup.add_child(ChildSpec("db", start))
        assert [c.key for c in await sup.list_children()] == ["w"]
        await sup.shutdown_and_wait()


def test_a_starter_process_timeout_is_validated() -> None:
    """The starter call timeout is a finite positive number of seconds."""
    pid = Pid("n", 1, 1)
    assert StarterProcess(pid).timeout == 5.0
    for bad in (0, -1.0, math.inf):
        with pytest.raises(ValueError, match="timeout"):
            StarterProcess(pid, timeout=bad)
    with pytest.raises(TypeError, match="timeout"):
        StarterProcess(pid, timeout="soon")  # type: ignore[arg-type]


def test_a_starter_process_timeout_too_large_for_a_float_is_refused_as_not_finite() -> None:
    """Regression: an int beyond a float's range raised an untyped OverflowError."""
    with pytest.raises(ValueError, match="finite number of seconds > 0, got 1000"):
        StarterProcess(Pid("n", 1, 1), timeout=10**400)


async def test_spawn_child_starter_refuses_a_plain_def() -> None:
    """A starter's child function must be a coroutine function, named in the error."""

    def plain(p: Process) -> None:
        pass

    async with Node() as node, node.process() as me:
        with pytest.raises(TypeError, match="plain"):
            await spawn_child_starter(me, plain)  # type: ignore[arg-type]
        assert node.process_count == 1


async def test_the_starter_answers_before_the_child_acknowledges() -> None:
    """The starter never waits on a child: while one supervisor waits for its child's
    acknowledgement, the same starter starts another supervisor's child."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne())
        async with await spawn_child_starter(me, never_acks) as starter:
            other = await supervisor.start(me, RestartOne())
            waiting = me.spawn(_start_slowly, sup.pid, starter.child_start)
            with anyio.fail_after(WAIT):
                # Until the starter has spawned the first child (sup now waits on it).
                while (await starter.statistics()).children_started < 1:
                    pass
            with pytest.raises(StartFailureDied) as failed:
                await other.start_new_child(ChildSpec("db", starter.child_start, start_timeout=0.05))
            assert failed.value.reason == InitTimeout(0.05)
            assert (await starter.statistics()).children_started == 2
            assert node.is_alive(waiting)  # still waiting on the first child
            known = {me.pid, sup.pid, other.pid, starter.pid, waiting}
            [slow_child] = [pid for pid in node.processes() if pid not in known]
            node.exit(slow_child, Kill())  # ends the first start (a failure), sooner than its timeout
            assert isinstance(await node.wait(waiting), Crashed)
            await other.shutdown_and_wait()
            await sup.shutdown_and_wait()


async def _start_slowly(p: Process, sup_pid: Pid, start: StarterProcess) -> None:
    await supervisor.Supervisor(sup_pid, p).start_new_child(ChildSpec("slow", start, start_timeout=60.0))


@pytest.mark.parametrize("reason", [Normal(), Shutdown()], ids=["normal", "shutdown"])
async def test_regression_a_node_exit_does_not_make_the_next_restart_fail(reason: Any) -> None:
    """Guards against ``node.exit(starter, ...)`` from user code halting a starter that a
    supervisor holds: the child's next automatic restart goes through the same starter."""
    async with Node() as node, node.process() as me:
        attempts: list[int] = []
        async with await spawn_child_starter(me, fails_on_attempt, attempts, 0) as starter:
            sup = await supervisor.start(me, RestartOne(MANY), [ChildSpec("db", starter.child_start)])
            await sup.subscribe()
            node.exit(starter.pid, reason)
            me.send(await pid_of(sup, "db"), "crash")
            started = await next_event(me, SupervisedChildStarted, key="db")
            assert node.is_alive(started.pid) and node.is_alive(starter.pid)
            assert (await sup.statistics()).total_restarts == 1
            await sup.shutdown_and_wait()


async def test_a_node_exit_kill_stops_a_held_starter_and_restarts_fail() -> None:
    """``node.exit(starter, Kill())`` stops a held starter by force; the next restart then
    fails (and is retried) with ``StarterGone``."""
    async with Node() as node, node.process() as me:
        attempts: list[int] = []
        starter = await spawn_child_starter(me, fails_on_attempt, attempts, 0)
        sup = await supervisor.start(
            me, RestartOne(RestartLimit(3, 60.0)), [ChildSpec("db", starter.child_start)]
        )
        await sup.subscribe()
        node.exit(starter.pid, Kill())
        await starter.wait()
        me.send(await pid_of(sup, "db"), "crash")
        failure = await next_event(me, SupervisedChildStartFailure, key="db")
        assert isinstance(failure.reason, NoProc)  # StarterGone: the starter is dead
        await sup.shutdown_and_wait()
