"""The OTP parity checklist (erlang-otp-supervisor.md, D.1): one test per item, named after it."""

from __future__ import annotations

import pytest

from refcount_starter import supervisor
from refcount_starter.runtime import Down, Killed, Node, NoProc, Normal
from refcount_starter.supervisor import (
    INTRINSIC,
    PERMANENT,
    TEMPORARY,
    TRANSIENT,
    AlreadyRunning,
    BadClosure,
    ChildNotFound,
    ChildNotStopped,
    ChildRestarting,
    ChildSpec,
    ChildStopped,
    DuplicateChild,
    ParallelShutdown,
    ReachedMaxRestartIntensity,
    RestartAll,
    RestartLimit,
    RestartOne,
    RestartRight,
    RunClosure,
    StartFailureDied,
    StopTimeout,
    SupervisedChildDied,
    SupervisedChildRestarting,
    SupervisedChildStarted,
    SupervisedChildStartFailure,
    SupervisedChildStopped,
    SupervisorBranchRestarted,
    SupervisorExited,
)

from .helpers import WAIT, RecordingStart, drain, next_event, pid_of, recorder, stubborn, worker

pytestmark = pytest.mark.anyio

MANY = RestartLimit(100, 60.0)


async def test_strategies_with_their_behaviours_including_non_running_siblings() -> None:
    """D.1 strategies: one_for_all / rest_for_one restart their branch, non-running permanent
    and transient siblings included, temporary running siblings dropped."""
    async with Node() as node, node.process() as me:
        specs = [
            ChildSpec("a", worker),
            ChildSpec("b", worker, restart=TRANSIENT),
            ChildSpec("c", worker),
            ChildSpec("t", worker, restart=TEMPORARY),
        ]
        sup = await supervisor.start(me, RestartRight(MANY), specs)
        await sup.subscribe()
        a = await pid_of(sup, "a")
        await sup.terminate_child("c")
        me.send(await pid_of(sup, "b"), "crash")
        event = await next_event(me, SupervisorBranchRestarted, key="b")
        assert event.keys == ("b", "c")
        assert await pid_of(sup, "a") == a
        assert [c.key for c in await sup.list_children()] == ["a", "b", "c"]
        await sup.shutdown_and_wait()


async def test_restart_types() -> None:
    """D.1 restart types: permanent always, transient on abnormal only, temporary never."""
    async with Node() as node, node.process() as me:
        specs = [
            ChildSpec("p", worker, restart=PERMANENT),
            ChildSpec("tr", worker, restart=TRANSIENT),
            ChildSpec("te", worker, restart=TEMPORARY),
        ]
        sup = await supervisor.start(me, RestartOne(MANY), specs)
        await sup.subscribe()
        me.send(await pid_of(sup, "p"), "exit")
        await next_event(me, SupervisedChildStarted, key="p")
        me.send(await pid_of(sup, "tr"), "exit")
        await next_event(me, SupervisedChildDied, key="tr")
        me.send(await pid_of(sup, "te"), "crash")
        await next_event(me, SupervisedChildDied, key="te")
        states = {c.key: c.state for c in await sup.list_children()}
        assert set(states) == {"p", "tr"} and states["tr"] == ChildStopped()
        await sup.restart_child("tr")
        me.send(await pid_of(sup, "tr"), "crash")
        await next_event(me, SupervisedChildStarted, key="tr")
        await sup.shutdown_and_wait()


async def test_intensity_more_than_maxr_in_the_window_terminates() -> None:
    """D.1 intensity: MaxR restarts are survived, the next one terminates the supervisor."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(RestartLimit(1, 60.0)), [ChildSpec("a", worker)])
        await sup.subscribe()
        ref = me.monitor(sup.pid)
        me.send(await pid_of(sup, "a"), "crash")
        await next_event(me, SupervisedChildStarted, key="a")
        drain(me)
        me.send(await pid_of(sup, "a"), "crash")
        down = await me.receive(Down, where=lambda m: m.ref == ref, timeout=WAIT)
        assert isinstance(down.reason, ReachedMaxRestartIntensity)


async def test_failed_restart_retries_count() -> None:
    """D.1 intensity: every retry of a failed restart counts."""
    async with Node() as node, node.process() as me:
        start = RecordingStart()
        start.fail_starts_after = 1
        sup = await supervisor.start(me, RestartOne(RestartLimit(2, 60.0)), [ChildSpec("a", start)])
        ref = me.monitor(sup.pid)
        me.send(await pid_of(sup, "a"), "crash")
        await me.receive(Down, where=lambda m: m.ref == ref, timeout=WAIT)
        assert start.starts == 3  # the first start, then 2 failed restarts; the third is too many


async def test_one_multi_child_restart_counts_once() -> None:
    """D.1 intensity: a one_for_all restart of three children counts once."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me, RestartAll(RestartLimit(1, 60.0)), [ChildSpec(k, worker) for k in "abc"]
        )
        await sup.subscribe()
        me.send(await pid_of(sup, "b"), "crash")
        await next_event(me, SupervisorBranchRestarted)
        assert (await sup.statistics()).total_restarts == 1
        assert node.is_alive(sup.pid)
        await sup.shutdown_and_wait()


async def test_shutdown_protocol_monitor_signal_timeout_kill_flush() -> None:
    """D.1 shutdown protocol: Shutdown, wait, Kill; the child's link signal is flushed, so the
    supervisor (which traps exits) stays up."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("s", stubborn, shutdown=StopTimeout(0.05))])
        await sup.subscribe()
        await sup.terminate_child("s")
        assert (await next_event(me, SupervisedChildStopped, key="s")).reason == Killed()
        assert (await sup.statistics()).running == 0
        assert node.is_alive(sup.pid)
        await sup.shutdown_and_wait()


async def test_sequential_reverse_order_shutdown() -> None:
    """D.1 shutdown: children stop one at a time in reverse start order."""
    log: list[str] = []
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec.worker(k, recorder, k, log) for k in "abc"])
        await sup.shutdown_and_wait()
    assert log == ["c", "b", "a"]


async def test_parallel_group_shutdown() -> None:
    """D.1 simple_one_for_one's group shutdown: ParallelShutdown signals all at once."""
    log: list[str] = []
    async with Node() as node, node.process() as me:
        specs = [ChildSpec.worker(k, recorder, k, log) for k in "abc"]
        sup = await supervisor.start(me, RestartOne(), specs, shutdown=ParallelShutdown())
        await sup.subscribe()
        await sup.shutdown_and_wait()
        stopped = [e for e in drain(me) if isinstance(e, SupervisedChildStopped)]
    assert sorted(log) == ["a", "b", "c"]
    assert {e.reason for e in stopped} == {Normal()}


async def test_error_vocabulary() -> None:
    """D.1 error vocabulary (A.8), as typed exceptions."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec("a", worker)])
        with pytest.raises(DuplicateChild):
            await sup.add_child(ChildSpec("a", worker))
        with pytest.raises(AlreadyRunning):
            await sup.start_child("a")
        with pytest.raises(ChildNotStopped):
            await sup.delete_child("a")
        with pytest.raises(ChildNotFound):
            await sup.terminate_child("zz")
        with pytest.raises(BadClosure):
            await sup.start_new_child(ChildSpec("c", RunClosure("not.registered")))
        failing = RecordingStart()
        failing.fail_starts_after = 0
        with pytest.raises(StartFailureDied):
            await sup.start_new_child(ChildSpec("f", failing))
        await sup.shutdown_and_wait()
        with pytest.raises(SupervisorExited) as info:
            await sup.statistics()
        assert isinstance(info.value.reason, NoProc)


async def test_which_children_order() -> None:
    """D.1 which_children: list_children is in start order (Cloud Haskell's); reversed it is OTP's."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(me, RestartOne(), [ChildSpec(k, worker) for k in "abc"])
        await sup.start_new_child(ChildSpec("d", worker))
        keys = [c.key for c in await sup.list_children()]
        assert keys == ["a", "b", "c", "d"]
        assert keys[::-1] == ["d", "c", "b", "a"]  # OTP's newest first
        await sup.shutdown_and_wait()


async def test_auto_shutdown_rules() -> None:
    """D.1 auto_shutdown (A.7), as INTRINSIC: it fires only when the child exits normally by
    itself, not on terminate_child, not on a crash (restarted instead)."""
    async with Node() as node, node.process() as me:
        sup = await supervisor.start(
            me, RestartOne(MANY), [ChildSpec("i", worker, restart=INTRINSIC), ChildSpec("o", worker)]
        )
        await sup.subscribe()
        ref = me.monitor(sup.pid)
        await sup.terminate_child("i")
        await sup.restart_child("i")
        me.send(await pid_of(sup, "i"), "crash")
        await next_event(me, SupervisedChildStarted, key="i")
        assert node.is_alive(sup.pid)
        other = await pid_of(sup, "o")
        me.send(await pid_of(sup, "i"), "exit")
        down = await me.receive(Down, where=lambda m: m.ref == ref, timeout=WAIT)
        assert down.reason == Normal()
        assert not node.is_alive(other)


async def test_restarting_state_errors_from_delete_and_restart() -> None:
    """D.1 the restarting state: delete_child is ChildNotStopped, restart_child AlreadyRunning."""
    async with Node() as node, node.process() as me:
        start = RecordingStart()
        start.fail_starts_after = 1
        spec = ChildSpec("a", start, restart_delay=60.0)
        sup = await supervisor.start(me, RestartOne(RestartLimit(5, 60.0)), [spec])
        await sup.subscribe()
        me.send(await pid_of(sup, "a"), "crash")
        await next_event(me, SupervisedChildRestarting, key="a")
        await next_event(me, SupervisedChildStartFailure, key="a")
        child = await sup.lookup_child("a")
        assert child is not None and isinstance(child.state, ChildRestarting)
        with pytest.raises(ChildNotStopped):
            await sup.delete_child("a")
        with pytest.raises(AlreadyRunning):
            await sup.restart_child("a")
        await sup.terminate_child("a")
        await sup.delete_child("a")
        assert start.count("release") == 1
        await sup.shutdown_and_wait()
